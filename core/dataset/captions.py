"""Captions for mocap that only has (content, style) labels, written to read like HumanML3D's human captions.

The Bandai-Namco clips carry a content ("wave-left-hand") and a style ("tired"), never free text, while the
text encoder is trained on sentences. Each content has several phrasings; a caption picks one, a subject
("a person", "an old man") and a way to say the style (adjective in the subject, adverb, clause), so the
model sees many sentences per label. A content's side ("left"/"right") is read from its name and filled into
its phrasings, so the mirrored clip (mirror_content) gets captions with the other side. No torch.
"""
import functools
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

# Verb phrases per content, in the base form ("walk forward") so that each can be said in several sentence
# shapes (verb_forms): "a man walks forward", "a man is walking forward", "walk forward". The verbs to
# conjugate are the first word and the word after each " and "/", then "; "{side}" is the content's side,
# "{p}" the subject's possessive. What the clips show was checked on the data: walk-left/right drift 10-25
# degrees off straight ahead without turning, bye waves one hand, byebye both, respond raises one hand,
# guide gestures with one hand, call uses both hands near the head.
PHRASINGS = {
    "walk": ("walk forward", "walk straight ahead", "take several steps forward", "walk in a straight line",
             "walk ahead at a steady pace", "stroll forward", "move forward on foot", "walk a few meters ahead",
             "march forward", "step forward one foot after the other", "wander straight ahead",
             "walk forwards at an even speed"),
    "run": ("run forward", "jog forward", "run straight ahead", "run in a straight line", "run ahead",
            "run a short distance forward", "jog ahead at a steady pace", "trot forward", "run forwards",
            "jog in a straight line", "move forward at a run", "break into a jog and keep going straight"),
    "dash": ("sprint forward", "dash ahead", "run forward as fast as possible", "burst into a sprint",
             "race forward at full speed", "sprint straight ahead", "run very fast in a straight line",
             "dash forward at top speed", "charge forward at full speed", "rush ahead as quickly as possible"),
    "walk-back": ("walk backward", "walk backwards", "step back several times", "move backward step by step",
                  "take a few steps back", "back up", "retreat backwards", "walk in reverse",
                  "back away slowly", "step backwards without turning around", "move back a few paces",
                  "walk back while still facing forward"),
    "walk-{side}": ("walk diagonally forward to the {side}", "walk forward, veering to the {side}",
                    "walk ahead and drift toward the {side}", "walk forward and to the {side}",
                    "walk forward at an angle to the {side}", "walk slightly to {p} {side}",
                    "walk on a slant toward the {side}", "walk forward while bearing {side}",
                    "head diagonally {side} on foot", "walk ahead, angling off to the {side}"),
    "walk-turn-{side}": ("walk forward and turn {side}", "walk and make a {side} turn",
                         "turn to the {side} while walking", "walk in a curve to the {side}",
                         "walk and turn to {p} {side}", "walk forward, then turn {side}",
                         "walk and change direction to the {side}", "walk around a corner to the {side}",
                         "walk, turning ninety degrees to the {side}", "walk ahead and swing to the {side}",
                         "take a {side} turn while walking", "walk and curve round toward {p} {side}"),
    "bow": ("bow", "bow forward", "bend at the waist in a bow", "take a bow", "bow with {p} head and upper body",
            "bend {p} upper body forward and straighten up again", "bow politely", "bow deeply",
            "lean forward from the hips to greet someone", "make a respectful bow", "bow down and come back up",
            "tilt {p} torso forward in a bow"),
    "bye": ("wave goodbye", "wave one hand to say goodbye", "say bye with a wave of the hand",
            "raise a hand and wave goodbye", "wave farewell with one hand", "wave a hand to see someone off",
            "bid farewell with a wave", "wave bye to someone", "lift one hand and wave it side to side",
            "say goodbye by waving a hand", "wave a single hand in farewell"),
    "byebye": ("wave goodbye with both hands", "wave bye-bye with both arms", "raise both hands and wave goodbye",
               "wave both hands to say bye-bye", "say goodbye waving both arms", "wave farewell with both hands",
               "lift both arms and wave goodbye", "wave both hands side to side to say goodbye",
               "bid farewell with both hands waving", "wave two hands in farewell"),
    "guide": ("gesture with one hand to show the way", "point the way with an open hand",
              "guide someone with a sweep of the arm", "show someone the way",
              "extend an arm to direct someone", "motion with a hand for someone to go ahead",
              "hold out an arm to point the direction", "indicate the way with a hand",
              "invite someone forward with an open palm", "sweep one arm out to the side to show the way"),
    "respond": ("raise a hand in response", "put a hand up to answer", "respond by raising a hand",
                "raise a hand to reply", "lift one hand up to answer a call", "raise one arm as if to say here",
                "put one hand up as a reply", "answer with a raised hand", "hold up one hand in reply",
                "lift an arm to signal a response"),
    "call": ("call out to someone", "call to someone in the distance", "shout to get someone's attention",
             "call out to a friend", "call someone over", "call out with {p} hands near {p} face",
             "cup {p} hands around {p} mouth and shout", "yell to someone far away",
             "shout with both hands by {p} mouth", "lean forward and call out loudly"),
    "punch": ("throw a punch", "punch forward", "punch the air", "strike with a fist", "jab forward with a fist",
              "throw a few punches", "hit the air with {p} fists", "box the air in front", "punch straight out",
              "throw a quick punch in front of {p} body"),
    "kick": ("kick", "kick forward", "kick with one leg", "throw a kick", "lift a leg and kick",
             "kick out in front", "kick high with one foot", "swing a leg up in a kick", "kick the air",
             "do a few kicks", "strike forward with a foot", "kick hard with one leg"),
    "slash": ("slash with a sword", "swing a sword", "make a slashing motion", "cut through the air with a sword",
              "swing an imaginary sword", "slash with a blade held in both hands", "strike with a sword",
              "swing a sword down in front", "hack at the air with a sword", "wield a sword and slash"),
    "dance-long": ("dance", "perform a long dance", "do a dance routine", "dance for a while",
                   "move to the rhythm of music", "dance with lots of steps and arm moves", "dance around",
                   "bust a few dance moves", "perform a dance", "dance energetically for some time"),
    "dance-short": ("do a short dance", "dance briefly", "perform a short dance", "do a quick dance routine",
                    "dance for a moment", "do a little dance", "dance a few steps", "make a few dance moves",
                    "bounce to the music briefly", "do a brief dance in place"),
    "wave-both-hands": ("wave both hands", "wave with both arms", "raise both hands and wave", "wave both arms",
                        "wave both hands back and forth", "lift both arms and wave them",
                        "wave both hands above {p} head", "wave two hands in the air",
                        "wave with both of {p} hands", "hold up both arms and wave them side to side"),
    "wave-{side}-hand": ("wave {p} {side} hand", "wave with {p} {side} hand", "raise {p} {side} hand and wave",
                         "wave hello with the {side} hand", "lift {p} {side} arm and wave it",
                         "wave the {side} arm", "greet someone by waving {p} {side} hand",
                         "wave {p} {side} hand back and forth", "hold up {p} {side} hand and wave it",
                         "wave with the {side} hand above the shoulder"),
    "raise-up-both-hands": ("raise both hands", "lift both arms up", "put both hands up in the air",
                            "raise both arms above {p} head", "throw both arms up", "lift both hands overhead",
                            "hold both arms up high", "reach up with both arms", "put both arms up",
                            "stretch both hands up toward the sky"),
    "raise-up-{side}-hand": ("raise {p} {side} hand", "lift {p} {side} arm up", "put {p} {side} hand up in the air",
                             "raise the {side} arm above {p} head", "hold {p} {side} hand up",
                             "reach up with the {side} hand", "lift the {side} hand overhead",
                             "put up {p} {side} arm", "stretch {p} {side} arm up high",
                             "raise {p} {side} arm straight up"),
}
# Verbs whose last consonant doubles before -ing ("run" -> "running"); the rest follow the spelling rules.
_DOUBLING = {"run", "jog", "step", "hop", "skip", "sit", "get", "put", "cut", "stop", "drop", "trot", "jab", "cup",
             "tap", "clap", "flap", "grab", "spin", "dip", "swim", "hit", "bob", "nod", "shrug", "plan"}
_VERB_POSITION = re.compile(r"(^|\band |, then )([a-z-]+)")
# Words after "and"/", then" that are verbs of a second clause ("raise a hand and wave"), not nouns ("steps and
# arm moves"): the phrasings' first words and these.
_SECOND_VERBS = {"wave", "come", "straighten", "shout", "turn", "keep", "go", "look", "stop", "return", "drift",
                 "change", "curve"}
_VERBS = {phrase.split()[0].rstrip(",") for options in PHRASINGS.values() for phrase in options} | _SECOND_VERBS


def _third_person(verb: str) -> str:
    if verb in ("do", "go"):
        return verb + "es"
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _present_participle(verb: str) -> str:
    if verb in _DOUBLING:
        return verb + verb[-1] + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


@functools.lru_cache(maxsize=None)
def verb_forms(phrase: str) -> dict[str, str]:
    """A base-form verb phrase in the sentence shapes captions use: third person ("walks forward"),
    progressive ("walking forward", after "is" or "while") and imperative (the phrase itself)."""
    def conjugate(form):
        def verb(match):
            word = match.group(2)
            first = match.start() == 0
            return match.group(1) + (form(word) if first or word in _VERBS else word)
        return _VERB_POSITION.sub(verb, phrase)
    return {"third": conjugate(_third_person), "ing": conjugate(_present_participle), "imperative": phrase}



# Subjects that say nothing about the style; the gendered styles restrict them.
PLAIN_SUBJECTS = ("a person", "the person", "someone", "a man", "a woman", "the figure", "a human", "the man",
                  "the woman", "somebody", "he", "she", "the character", "a guy")
_MALE_SUBJECTS = tuple(s for s in PLAIN_SUBJECTS if s not in ("a woman", "the woman", "she"))
_FEMALE_SUBJECTS = tuple(s for s in PLAIN_SUBJECTS if s not in ("a man", "the man", "he", "a guy"))


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

_POSSESSIVE = {"man": "his", "woman": "her", "lady": "her", "he": "his", "she": "her", "guy": "his"}
IMPERATIVE_SHARE = 0.1  # captions said as a command ("wave your left hand"), as users type prompts
PROGRESSIVE_SHARE = 0.2  # captions in the form "a man is waving his left hand"
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
    """The content's verb phrases with its side filled in ("{p}" still open)."""
    key, side = content_side(content)
    return tuple(p.replace("{side}", side) for p in PHRASINGS[key]) if side else PHRASINGS[key]


def possessive_of(subject: str) -> str:
    """The possessive that goes with a subject ("a tired man" -> "his"; "their" when it says no gender)."""
    return next((_POSSESSIVE[w] for w in subject.split() if w in _POSSESSIVE), "their")


def _sentence(phrasing: str, shape: str, subject: str, manner: str) -> str:
    """One caption without its final full stop: the phrasing in `shape` ("third", "ing" or "imperative"),
    `subject` (which may end in an adverb) in front unless imperative, the manner words after."""
    forms = verb_forms(phrasing)
    if shape == "imperative":
        text = forms["imperative"].format(p="your")
    else:
        text = f"{subject} {'is ' if shape == 'ing' else ''}{forms[shape]}".format(p=possessive_of(subject))
    if manner:
        text += (", " if manner.startswith(("looking", "full", "barely")) else " ") + manner
    return text


def _compose(phrasing: str, style: str, rng: np.random.Generator) -> str:
    """Fill a phrasing in a random sentence shape with a subject and one way of saying the style (or none)."""
    words = _style(style)
    draw = rng.random()
    shape = "imperative" if draw < IMPERATIVE_SHARE else "ing" if draw < IMPERATIVE_SHARE + PROGRESSIVE_SHARE \
        else "third"
    subject, manner = str(rng.choice(words.plain)), ""
    if rng.random() >= words.omit:
        ways = ["manner"] + (["subject", "both"] if words.subjects and shape != "imperative" else [])
        way = ways[rng.integers(len(ways))]
        if way != "manner":
            subject = str(rng.choice(words.subjects))
        if way == "both" and shape == "third":  # "a tired man wearily walks forward"
            subject += " " + str(rng.choice(words.adverbs))
        elif way == "manner":
            options = words.adverbs + words.clauses
            manner = str(options[rng.integers(len(options))])
    return _sentence(phrasing, shape, subject, manner) + ("." if rng.random() < 0.7 else "")


def every_caption(content: str, style: str):
    """Every caption (without its final full stop) that make_caption can give for this label: what the
    prompt benchmark checks its prompts against, so that no benchmark prompt was ever a training caption."""
    words = _style(style)
    subjects = words.plain + words.subjects
    manners = ("",) + words.adverbs + words.clauses
    for phrasing in phrasings(content):
        for manner in manners:
            yield _sentence(phrasing, "imperative", "", manner)
            for subject in subjects:
                yield _sentence(phrasing, "third", subject, manner)
                yield _sentence(phrasing, "ing", subject, manner)
        for subject in words.subjects:
            for adverb in words.adverbs:
                yield _sentence(phrasing, "third", f"{subject} {adverb}", "")


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
