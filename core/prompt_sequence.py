"""A prompt that chains actions ("a person walks forward, then bows") as the segments it chains.

MoMask conditions one motion on one sentence, and a sentence of two actions in order gives a motion of
neither. Splitting it where the words say "then" lets the sequence generator (core.sequence) make each
action under its own prompt, one continuous motion. The subject of the first part carries over to parts
that start with a verb ("bows" -> "a person bows"), since captions always have one. Numpy-free, torch-free.
"""
import re

# "then" in its usual spellings, "after that", "afterwards", "and finally", "before ...ing" is left alone
# (it names the order backwards and is rare in prompts).
_SEPARATOR = re.compile(r"\s*(?:[,;.]\s*|\s)(?:and\s+)?(?:then|after\s+that|afterwards|and\s+finally|finally)\b[,]?\s*"
                        r"|\s*;\s*", re.IGNORECASE)
_SUBJECT = re.compile(r"^(?:(?:a|an|the)\s+(?:\w+\s+){0,2}?(?:person|man|woman|figure|character|guy|girl|boy|kid|child|"
                      r"human|lady|people|dancer|player|fighter|soldier)|someone|somebody|he|she|they|it)\b",
                      re.IGNORECASE)
_PRONOUNS = {"he", "she", "they", "it"}


def split_sequence(prompt: str) -> list[str]:
    """The prompt's parts in order (one part when it chains nothing); empty parts are dropped."""
    parts = [p.strip(" ,.;") for p in _SEPARATOR.split(prompt.strip())]
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return [prompt.strip()]
    subject = _SUBJECT.match(parts[0])
    if subject is None:
        return parts
    said = subject.group(0)
    return [parts[0]] + [p if _SUBJECT.match(p) else f"{said} {p}" for p in parts[1:]]
