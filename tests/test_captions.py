"""Captions generated from (content, style) labels: variety, sides, mirroring, style words."""
import re

import numpy as np
import pytest

from core.dataset.captions import (CONTENTS, STYLE_WORDS, STYLES, captions_for, content_side, make_caption,
                                   mirror_caption, mirror_content, phrasings)

ALL_CONTENTS = sorted({c for contents in CONTENTS.values() for c in contents})
SIDE = re.compile(r"\b(left|right)\b")


def _labels():
    return [(content, style) for d in CONTENTS for content in CONTENTS[d] for style in STYLES[d]]


def _phrasings_matched(caption, content, style):
    """Indices of the content's phrasings that the caption is built from (subject, adverb, manner filled)."""
    words = STYLE_WORDS[style]
    alternatives = lambda options: "|".join(map(re.escape, options))  # noqa: E731
    subject = f"(?:{alternatives(words.plain + words.subjects)})(?: (?:{alternatives(words.adverbs)}))?"
    manner = f"(?:,? (?:{alternatives(words.adverbs + words.clauses)}))?"
    return [i for i, p in enumerate(phrasings(content))
            if re.fullmatch(re.escape(p).replace(r"\{s\}", subject).replace(r"\{p\}", "(?:his|her|their)")
                            + manner + r"\.?", caption)]


def _style_cues(style):
    words = STYLE_WORDS[style]
    return words.subjects + words.adverbs + words.clauses


def test_every_label_has_six_distinct_phrasings():
    rng = np.random.default_rng(0)
    for content in ALL_CONTENTS:
        assert len(set(phrasings(content))) >= 6, content
    for content, style in _labels():
        captions = captions_for(content, style, 6, rng)
        assert len(set(captions)) == 6, (content, style, captions)
        # each caption is one phrasing filled in, and six captions use six different phrasings
        used = [_phrasings_matched(c, content, style) for c in captions]
        assert all(len(u) == 1 for u in used), (content, style, captions, used)
        assert len({u[0] for u in used}) == 6


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
        if re.search(r"\bwoman\b", caption):
            assert " her " in caption and " his " not in caption
        elif re.search(r"\bman\b", caption):
            assert " his " in caption and " her " not in caption


def test_captions_are_reproducible_from_the_seed():
    first = captions_for("bow", "proud", 3, np.random.default_rng(7))
    assert first == captions_for("bow", "proud", 3, np.random.default_rng(7))
    assert first != captions_for("bow", "proud", 3, np.random.default_rng(8))


def test_unknown_labels_are_named():
    with pytest.raises(ValueError, match="content 'moonwalk'"):
        make_caption("moonwalk", "normal", np.random.default_rng(0))
    with pytest.raises(ValueError, match="style 'sleepy'"):
        make_caption("walk", "sleepy", np.random.default_rng(0))
