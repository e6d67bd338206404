"""Captions generated from (content, style) labels: variety, sides, mirroring, style words."""
import re

import numpy as np
import pytest

from core.dataset.captions import (CONTENTS, STYLE_WORDS, STYLES, captions_for, content_side, every_caption,
                                   make_caption, mirror_caption, mirror_content, phrasings, verb_forms)

ALL_CONTENTS = sorted({c for contents in CONTENTS.values() for c in contents})
SIDE = re.compile(r"\b(left|right)\b")


def _labels():
    return [(content, style) for d in CONTENTS for content in CONTENTS[d] for style in STYLES[d]]


def _style_cues(style):
    words = STYLE_WORDS[style]
    return words.subjects + words.adverbs + words.clauses


def test_every_label_has_ten_phrasings_and_captions_come_from_them():
    rng = np.random.default_rng(0)
    for content in ALL_CONTENTS:
        assert len(set(phrasings(content))) >= 10, content
    for content, style in _labels():
        possible = set(every_caption(content, style))
        captions = captions_for(content, style, 6, rng)
        assert len(set(captions)) == 6, (content, style, captions)
        assert all(c.removesuffix(".") in possible for c in captions), (content, style, captions)


def test_captions_use_every_phrasing_and_every_sentence_shape():
    rng = np.random.default_rng(4)
    captions = [make_caption("wave-left-hand", "normal", rng) for _ in range(600)]
    for phrase in phrasings("wave-left-hand"):
        forms = verb_forms(phrase)
        words = forms["third"].split("{p}")[0].strip()
        assert any(words in c for c in captions), phrase
    imperative = np.mean([c.split()[0] in {p.split()[0] for p in phrasings("wave-left-hand")} for c in captions])
    progressive = np.mean([" is " in c for c in captions])
    assert 0.05 < imperative < 0.15 and 0.12 < progressive < 0.3


def test_verb_phrases_are_conjugated_in_every_clause():
    forms = verb_forms("raise {p} {side} hand and wave")
    assert forms == {"third": "raises {p} {side} hand and waves", "ing": "raising {p} {side} hand and waving",
                     "imperative": "raise {p} {side} hand and wave"}
    assert verb_forms("walk forward, then turn left")["ing"] == "walking forward, then turning left"
    assert verb_forms("run ahead")["ing"] == "running ahead" and verb_forms("dance")["third"] == "dances"
    assert verb_forms("cup {p} hands around {p} mouth and shout")["ing"] == \
        "cupping {p} hands around {p} mouth and shouting"
    assert verb_forms("dance with lots of steps and arm moves")["third"] == "dances with lots of steps and arm moves"


def test_side_words_match_the_content():
    rng = np.random.default_rng(1)
    for content, style in _labels():
        _, side = content_side(content)
        for caption in captions_for(content, style, 6, rng):
            assert set(SIDE.findall(caption)) == ({side} if side else set()), (content, caption)


def test_sided_contents_mirror_to_their_other_side():
    assert mirror_content("wave-left-hand") == "wave-right-hand"
    assert mirror_content("raise-up-right-hand") == "raise-up-left-hand"
    assert mirror_content("walk-turn-left") == "walk-turn-right"
    assert mirror_content("walk-right") == "walk-left"
    for d, contents in CONTENTS.items():
        for content in contents:
            mirrored = mirror_content(content)
            assert mirrored in contents and mirror_content(mirrored) == content
            # the mirrored clip's captions are exactly the mirrored captions of the source
            assert sorted(mirror_caption(p) for p in phrasings(content)) == sorted(phrasings(mirrored))
            if content_side(content)[1] is None:
                assert mirrored == content


def test_mirror_caption_swaps_side_words_only():
    text = "A man waves his Left hand, then steps to the RIGHT and turns leftwards with a right-handed grip"
    mirrored = mirror_caption(text)
    assert mirrored == ("A man waves his Right hand, then steps to the LEFT and turns rightwards with a "
                        "left-handed grip")
    assert mirror_caption(mirrored) == text
    untouched = "someone stands upright, bright and alert, eats the leftovers and leaves right away"
    assert mirror_caption(untouched) == untouched


def test_style_is_said_in_most_captions_and_normal_rarely():
    rng = np.random.default_rng(2)
    for style in STYLE_WORDS:
        captions = [make_caption("walk", style, rng) for _ in range(200)]
        said = np.mean([any(cue in c for cue in _style_cues(style)) for c in captions])
        if style == "normal":
            assert said < 0.4
        else:
            assert said > 0.8, style


def test_subjects_fit_the_style_and_pronouns_fit_the_subject():
    rng = np.random.default_rng(3)
    for style, banned in (("feminine", r"\bman\b|\bhis\b"), ("masculinity", r"\bwoman\b|\bher\b"),
                          ("masculine", r"\bwoman\b|\bher\b")):
        for _ in range(100):
            assert not re.search(banned, make_caption("wave-left-hand", style, rng))
    for _ in range(300):
        caption = make_caption("raise-up-right-hand", "happy", rng)
        if re.search(r"\b(woman|she)\b", caption):
            assert " his " not in caption and " their " not in caption, caption
        elif re.search(r"\b(man|he|guy)\b", caption):
            assert " her " not in caption and " their " not in caption, caption


def test_captions_are_reproducible_from_the_seed():
    first = captions_for("bow", "proud", 3, np.random.default_rng(7))
    assert first == captions_for("bow", "proud", 3, np.random.default_rng(7))
    assert first != captions_for("bow", "proud", 3, np.random.default_rng(8))


def test_unknown_labels_are_named():
    with pytest.raises(ValueError, match="content 'moonwalk'"):
        make_caption("moonwalk", "normal", np.random.default_rng(0))
    with pytest.raises(ValueError, match="style 'sleepy'"):
        make_caption("walk", "sleepy", np.random.default_rng(0))
