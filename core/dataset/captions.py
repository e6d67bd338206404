"""Captions for mocap that only has (content, style) labels, written to read like HumanML3D's human captions.

The Bandai-Namco clips carry a content ("wave-left-hand") and a style ("tired"), never free text, while the
text encoder is trained on sentences. Each content has several phrasings; a caption picks one, a subject
("a person", "an old man") and a way to say the style (adjective in the subject, adverb, clause), so the
model sees many sentences per label. A content's side ("left"/"right") is read from its name and filled into
its phrasings, so the mirrored clip (mirror_content) gets captions with the other side. No torch.
"""
import re
from dataclasses import dataclass

import numpy as np

# Label vocabularies in the order of the archive's cfg/content_label.txt and cfg/style_label.txt (the JSON
# annotations index into these).
CONTENTS = {
    1: ("walk", "run", "dash", "walk-back", "walk-left", "walk-right", "bow", "bye", "guide", "byebye",
        "respond", "call", "punch", "kick", "slash", "dance-long", "dance-short"),
    2: ("walk", "walk-turn-left", "walk-turn-right", "run", "wave-both-hands", "wave-left-hand",
        "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand"),
}
STYLES = {
    1: ("normal", "happy", "sad", "angry", "proud", "not-confident", "masculinity", "feminine", "childish", "old",
        "tired", "active", "musical", "giant", "chimpira"),
    2: ("active", "elderly", "exhausted", "feminine", "masculine", "normal", "youthful"),
}

# Phrasings per content, with the side of sided contents as "{side}". "{s}" is the subject, "{p}" its
# possessive; the style's adverb or clause, if any, is appended. What the clips show was checked on the data:
# walk-left/right drift 10-25 degrees off straight ahead without turning, bye waves one hand, byebye both,
# respond raises one hand, guide gestures with one hand, call uses both hands near the head.
PHRASINGS = {
    "walk": ("{s} walks forward", "{s} walks straight ahead", "{s} takes several steps forward",
             "{s} is walking forward", "{s} walks in a straight line", "{s} walks ahead at a steady pace"),
    "run": ("{s} runs forward", "{s} jogs forward", "{s} is running straight ahead", "{s} runs in a straight line",
            "{s} runs ahead", "{s} runs a short distance forward"),
    "dash": ("{s} sprints forward", "{s} dashes ahead", "{s} runs forward as fast as possible",
             "{s} is sprinting straight ahead", "{s} bursts into a sprint", "{s} races forward at full speed"),
    "walk-back": ("{s} walks backward", "{s} walks backwards", "{s} steps back several times",
                  "{s} is walking backwards", "{s} moves backward step by step", "{s} takes a few steps back"),
    "walk-{side}": ("{s} walks diagonally forward to the {side}", "{s} walks forward, veering to the {side}",
                    "{s} walks ahead and drifts toward the {side}", "{s} is walking forward and to the {side}",
                    "{s} walks forward at an angle to the {side}", "{s} walks slightly to {p} {side}"),
    "walk-turn-{side}": ("{s} walks forward and turns {side}", "{s} walks and makes a {side} turn",
                         "{s} turns to the {side} while walking", "{s} walks in a curve to the {side}",
                         "{s} is walking and turning to {p} {side}", "{s} walks forward, then turns {side}"),
    "bow": ("{s} bows", "{s} bows forward", "{s} bends at the waist in a bow", "{s} is bowing", "{s} takes a bow",
            "{s} bows {p} head and upper body"),
    "bye": ("{s} waves goodbye", "{s} waves one hand to say goodbye", "{s} says bye with a wave of the hand",
            "{s} is waving goodbye", "{s} raises a hand and waves goodbye", "{s} waves farewell with one hand"),
    "byebye": ("{s} waves goodbye with both hands", "{s} waves bye-bye with both arms",
               "{s} raises both hands and waves goodbye", "{s} is waving goodbye with both hands",
               "{s} waves both hands to say bye-bye", "{s} says goodbye waving both arms"),
    "guide": ("{s} gestures with one hand to show the way", "{s} points the way with an open hand",
              "{s} guides someone with a sweep of the arm", "{s} is showing someone the way",
              "{s} extends an arm to direct someone", "{s} motions with a hand for someone to go ahead"),
    "respond": ("{s} raises a hand in response", "{s} puts a hand up to answer", "{s} responds by raising a hand",
                "{s} is raising a hand to reply", "{s} lifts one hand up to answer a call",
                "{s} raises one arm as if to say here"),
    "call": ("{s} calls out to someone", "{s} calls to someone in the distance",
             "{s} shouts to get someone's attention", "{s} is calling out to a friend", "{s} calls someone over",
             "{s} calls out with {p} hands near {p} face"),
    "punch": ("{s} throws a punch", "{s} punches forward", "{s} punches the air", "{s} is punching",
              "{s} strikes with a fist", "{s} jabs forward with a fist"),
    "kick": ("{s} kicks", "{s} kicks forward", "{s} kicks with one leg", "{s} is kicking", "{s} throws a kick",
             "{s} lifts a leg and kicks"),
    "slash": ("{s} slashes with a sword", "{s} swings a sword", "{s} makes a slashing motion",
              "{s} is slashing with a blade", "{s} cuts through the air with a sword", "{s} swings an imaginary sword"),
    "dance-long": ("{s} dances", "{s} is dancing", "{s} performs a long dance", "{s} does a dance routine",
                   "{s} dances for a while", "{s} moves to the rhythm of music"),
    "dance-short": ("{s} does a short dance", "{s} dances briefly", "{s} performs a short dance",
                    "{s} is doing a short dance", "{s} does a quick dance routine", "{s} dances for a moment"),
    "wave-both-hands": ("{s} waves both hands", "{s} waves with both arms", "{s} raises both hands and waves",
                        "{s} is waving both arms", "{s} waves both hands back and forth",
                        "{s} lifts both arms and waves them"),
    "wave-{side}-hand": ("{s} waves {p} {side} hand", "{s} waves with {p} {side} hand",
                         "{s} raises {p} {side} hand and waves", "{s} waves hello with the {side} hand",
                         "{s} is waving {p} {side} hand", "{s} lifts {p} {side} arm and waves it"),
    "raise-up-both-hands": ("{s} raises both hands", "{s} lifts both arms up", "{s} puts both hands up in the air",
                            "{s} raises both arms above {p} head", "{s} is raising both hands",
                            "{s} throws both arms up"),
    "raise-up-{side}-hand": ("{s} raises {p} {side} hand", "{s} lifts {p} {side} arm up",
                             "{s} puts {p} {side} hand up in the air", "{s} raises the {side} arm above {p} head",
                             "{s} is raising {p} {side} hand", "{s} holds {p} {side} hand up"),
}

# Subjects that say nothing about the style; the gendered styles restrict them.
PLAIN_SUBJECTS = ("a person", "the person", "someone", "a man", "a woman", "the figure")
_MALE_SUBJECTS = tuple(s for s in PLAIN_SUBJECTS if s != "a woman")
_FEMALE_SUBJECTS = tuple(s for s in PLAIN_SUBJECTS if s != "a man")


@dataclass(frozen=True)
class Style:
    """How captions say one style: subjects that carry it, adverbs, clauses; `omit` is the chance it goes
    unsaid (high for 'normal', which HumanML3D's captions rarely mention)."""
    subjects: tuple[str, ...] = ()
    adverbs: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    plain: tuple[str, ...] = PLAIN_SUBJECTS
    omit: float = 0.1


_OLD = Style(("an old man", "an elderly person", "an old woman", "an elderly man"),
             ("slowly", "stiffly", "feebly"),
             ("like an old person", "like an elderly person", "with the stiffness of old age"))
_ACTIVE = Style(("an energetic person", "a lively man", "an energetic woman", "an active person"),
                ("energetically", "briskly", "vigorously"),
                ("full of energy", "in an energetic way", "with lots of energy"))
_MASCULINE = Style(("a macho man", "a manly man", "a tough-looking man", "a masculine person"),
                   ("boldly", "manfully"), ("in a masculine way", "in a manly manner", "like a macho man"),
                   plain=_MALE_SUBJECTS)
_FEMININE = Style(("a graceful woman", "a feminine woman", "an elegant lady", "a feminine person"),
                  ("gracefully", "elegantly", "daintily"),
                  ("in a feminine way", "in a feminine manner", "like a graceful lady"), plain=_FEMALE_SUBJECTS)
STYLE_WORDS = {
    "normal": Style(adverbs=("normally", "casually"), clauses=("in a relaxed way", "in an ordinary way"),
                    omit=0.75),
    "happy": Style(("a happy person", "a cheerful man", "a joyful woman", "a smiling person"),
                   ("happily", "cheerfully", "joyfully"), ("in a happy mood", "looking cheerful", "full of joy")),
    "sad": Style(("a sad person", "a gloomy man", "a sad woman", "a sorrowful person"),
                 ("sadly", "gloomily", "dejectedly"),
                 ("with a sad, drooping posture", "looking sad", "as if something bad happened")),
    "angry": Style(("an angry person", "a furious man", "an angry woman", "an irritated person"),
                   ("angrily", "furiously", "irritably"), ("in an angry way", "looking angry", "full of rage")),
    "proud": Style(("a proud person", "a proud man", "a confident woman", "a self-assured person"),
                   ("proudly", "confidently", "haughtily"),
                   ("with the chest puffed out", "in a proud manner", "with great confidence")),
    "not-confident": Style(("a timid person", "an insecure man", "a shy woman", "an unsure person"),
                           ("timidly", "hesitantly", "shyly", "nervously"),
                           ("without confidence", "in an insecure way", "with little confidence")),
    "masculinity": _MASCULINE,
    "masculine": _MASCULINE,
    "feminine": _FEMININE,
    "childish": Style(("a child", "a little kid", "a playful child", "a young child"),
                      ("childishly", "playfully"), ("like a child", "in a childish way", "like a little kid")),
    "old": _OLD,
    "elderly": _OLD,
    "tired": Style(("a tired person", "an exhausted man", "a weary woman", "a tired man"),
                   ("wearily", "tiredly", "sluggishly"),
                   ("as if exhausted", "looking tired", "with no energy to spare")),
    "exhausted": Style(("an exhausted person", "an exhausted man", "a worn-out woman", "a completely drained person"),
                       ("wearily", "sluggishly", "laboriously"),
                       ("as if completely exhausted", "looking worn out", "barely able to keep going")),
    "active": _ACTIVE,
    "musical": Style(("a performer", "a stage actor", "a theatrical performer", "a musical actor"),
                     ("theatrically", "rhythmically", "dramatically"),
                     ("like in a musical", "with exaggerated, theatrical movements", "as if performing on stage")),
    "giant": Style(("a giant", "a huge giant", "a heavy giant", "an enormous man"),
                   ("heavily", "ponderously", "lumberingly"),
                   ("like a giant", "with big, heavy movements", "like a huge, heavy creature")),
    "chimpira": Style(("a thug", "a street punk", "a delinquent", "a young hoodlum"),
                      ("menacingly", "arrogantly", "cockily"), ("like a thug", "with a swagger", "in a thuggish way")),
    "youthful": Style(("a young person", "a young man", "a young woman", "a youthful person"),
                      ("youthfully", "lightly", "nimbly"),
                      ("with youthful energy", "in a youthful way", "like a young person")),
}

_POSSESSIVE = {"man": "his", "woman": "her", "lady": "her"}
# "left"/"right" as a side, alone or inside "leftward(s)", "left-hand", "lefthanded"...; "right" followed by
# "away"/"now" means "immediately" and is not a side.
_SIDE_WORD = re.compile(r"(?<![a-z])(left|right)(?=(?:wards?|hand(?:ed)?|most)?(?![a-z]))(?!\s+(?:away|now)\b)",
                        re.IGNORECASE)
_SIDE_SWAP = {"left": "right", "right": "left"}


def _swap_side(match: re.Match) -> str:
    word = match.group(1)
    swapped = _SIDE_SWAP[word.lower()]
    return swapped.upper() if word.isupper() else swapped.capitalize() if word[0].isupper() else swapped


def mirror_caption(text: str) -> str:
    """The caption of the mirrored motion: every left/right word swapped (case kept), nothing else changed."""
    return _SIDE_WORD.sub(_swap_side, text)


def mirror_content(content: str) -> str:
    """The content label of a mirrored clip: wave-left-hand <-> wave-right-hand; sideless labels stay."""
    return mirror_caption(content)


def content_side(content: str) -> tuple[str, str | None]:
    """('wave-{side}-hand', 'left') for a sided content, (content, None) otherwise; raises for unknown ones."""
    sides = [m.group(1) for m in _SIDE_WORD.finditer(content)]
    key = _SIDE_WORD.sub("{side}", content) if sides else content
    if key not in PHRASINGS or len(sides) > 1:
        raise ValueError(f"no caption phrasings for content '{content}' (known: {', '.join(sorted(PHRASINGS))})")
    return key, sides[0] if sides else None


def _style(style: str) -> Style:
    if style not in STYLE_WORDS:
        raise ValueError(f"no caption words for style '{style}' (known: {', '.join(sorted(STYLE_WORDS))})")
    return STYLE_WORDS[style]


def phrasings(content: str) -> tuple[str, ...]:
    """The content's phrasings with its side filled in ("{s}" and "{p}" still open)."""
    key, side = content_side(content)
    return tuple(p.replace("{side}", side) for p in PHRASINGS[key]) if side else PHRASINGS[key]


def _compose(phrasing: str, style: str, rng: np.random.Generator) -> str:
    """Fill a phrasing with a subject and one way of saying the style (or none)."""
    words = _style(style)
    subject, manner = str(rng.choice(words.plain)), ""
    if rng.random() >= words.omit:
        ways = ["manner"] + (["subject", "both"] if words.subjects else [])
        way = ways[rng.integers(len(ways))]
        if way != "manner":
            subject = str(rng.choice(words.subjects))
        if way == "both" and not phrasing.startswith("{s} is "):  # "a tired man wearily walks forward"
            subject += " " + str(rng.choice(words.adverbs))
        elif way == "manner":
            options = words.adverbs + words.clauses
            manner = str(options[rng.integers(len(options))])
    possessive = next((_POSSESSIVE[w] for w in subject.split() if w in _POSSESSIVE), "their")
    text = phrasing.format(s=subject, p=possessive)
    if manner:
        text += (", " if manner.startswith(("looking", "full", "barely")) else " ") + manner
    return text + ("." if rng.random() < 0.7 else "")


def make_caption(content: str, style: str, rng: np.random.Generator) -> str:
    """One random caption of a (content, style) label."""
    return _compose(str(rng.choice(phrasings(content))), style, rng)


def captions_for(content: str, style: str, n: int, rng: np.random.Generator) -> list[str]:
    """n distinct random captions of a (content, style) label, each from a different phrasing while there
    are phrasings left."""
    options = phrasings(content)
    captions: list[str] = []
    for attempt in range(100 * n):
        if attempt % len(options) == 0:
            order = rng.permutation(len(options))
        caption = _compose(options[order[attempt % len(options)]], style, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == n:
                return captions
    raise ValueError(f"could not make {n} distinct captions for ({content}, {style})")
