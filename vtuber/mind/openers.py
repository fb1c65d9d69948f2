"""Openers: a short reaction in her voice, said the moment a reply starts.

A reply's first words take the model a few hundred milliseconds to write and Piper a
hundred more to voice. An opener ("Hmm,", "Aww,", "Oh,") is chosen from the message
alone, its audio is made ahead of time (`VoiceStage.render_ahead`), and it plays at once
while the model writes the reply. The model is not told (handed the opener as the start
of its reply, the bundled model answered worse); a reaction of its own at the reply's
start is taken off instead, so she never says two.

The opener fits the message's mood: a question gets a thinking sound, sad news a
sympathetic one, a greeting a greeting. A persona names her own (`openers:` in the
persona file, by mood) or turns them off (`openers: {}`); English and Korean have
built-in ones, other languages none.
"""

from __future__ import annotations

import re

MOODS = ("question", "greeting", "sad", "other")

DEFAULT_OPENERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "question": ("Hmm,", "Ooh,"),
        "greeting": ("Oh,",),
        "sad": ("Aww,",),
        "other": ("Oh,", "Ha,"),
    },
    "ko": {
        "question": ("음,", "오,"),
        "greeting": ("와,",),
        "sad": ("아이고,",),
        "other": ("오,", "하하,"),
    },
}

_GREETING = re.compile(
    r"^\W*((hi+|hey+|hello+|heya|hiya|yo|howdy|good (morning|evening|afternoon)|first time)\b|안녕)", re.I
)
_SAD = re.compile(
    r"\b(sad|rough|awful|terrible|tired|sick|lonely|bad day|hard day|lost my|failed|miss (him|her|them)|cry|crying|"
    r"stressed|depressed|exhausted|hurts?)\b|힘들|슬퍼|우울|아파",
    re.I,
)
_QUESTION = re.compile(r"\?\s*$|^\W*(what|which|who|whom|whose|when|where|why|how|can|could|would|will|do|does|did|is|are|should)\b", re.I)


def mood(text: str) -> str:
    """The message's mood, as far as an opener cares: question, greeting, sad or other."""
    text = text.strip()
    if _SAD.search(text):
        return "sad"
    if _GREETING.search(text):
        return "greeting"
    if _QUESTION.search(text):
        return "question"
    return "other"


class Openers:
    """Chooses the opener for a message (by its mood, taking turns among a mood's lines)."""

    def __init__(self, lines: dict[str, tuple[str, ...]]):
        self.lines = {m: tuple(l for l in lines.get(m, ()) if l.strip()) for m in MOODS}
        self._turn = 0

    @classmethod
    def for_persona(cls, configured: dict[str, tuple[str, ...]] | None, language: str) -> Openers:
        """The persona's own openers, or her language's built-in ones (`configured` None)."""
        return cls(DEFAULT_OPENERS.get(language, {}) if configured is None else configured)

    def all(self) -> list[str]:
        """Every opener she may say (to render ahead)."""
        return [line for m in MOODS for line in self.lines[m]]

    def pick(self, text: str) -> str:
        """The opener for this message ("" when her persona has none for its mood)."""
        choices = self.lines[mood(text)]
        if not choices:
            return ""
        self._turn += 1
        return choices[self._turn % len(choices)]


_REACTION = re.compile(
    r"^\s*((oh+|ooh+|ah+|aw+|ha(ha)*|hmm+|wow|whoa|yay|oh wow|oh my|음+|오+|아+|와+|하하+|헉)\s*[,!.…]+"
    r"|(oh+|ooh+|ah+|aw+)(?=\s+(hi|hey|hello|wow|yes|yeah|no|my)\b))\s*",
    re.I,
)


# Words that start a sentence but are no name: after an opener they go on in lower case
# ("Hmm, the answer is..." not "Hmm, The answer is...").
_PLAIN_STARTS = frozenset(
    """a an the this that these those it it's its there there's here here's you you're your we we're our
    my let's what what's how who when where why yes no not so and but or if oh well thank thanks
    good great nice sure maybe one two three some any every all that's hello hi hey welcome wow""".split()
)


def strip_reaction(text: str) -> str:
    """The text without a reaction at its start ("Oh, I love tea!" -> "I love tea!"; "Oh!"
    -> ""): said after an opener, it would be a second one."""
    return _REACTION.sub("", text, count=1)


def after_opener(line: str) -> str:
    """A line said after an opener: its own leading reaction taken off ("Hmm, let me think
    about that one." -> "let me think about that one."), unless that is all it is, and its
    first word in lower case where it is no name ("The merch link..." -> "the merch link...")."""
    line = strip_reaction(line).strip() or line
    first = line.split(maxsplit=1)[0] if line.split() else ""
    if first.rstrip(",.!?").casefold().replace("’", "'") in _PLAIN_STARTS and first[:1].isupper():
        return line[:1].lower() + line[1:]
    return line
