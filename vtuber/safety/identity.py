"""Identity: a reply must speak as the persona, never name her as someone else or
speak for another role ("User: ...")."""

from __future__ import annotations

import re
import unicodedata

from vtuber.safety.forms import _FUNCTION_WORDS, _known_word

# Role names a reply must never speak as, at the start of a clause ("User: ...").
_ROLES = frozenset("user assistant system human ai bot chat viewer streamer narrator moderator mod".split())
_CLAIM = re.compile(
    r"(?<![\w'’])(?:(?i:i\s*['’]?\s*m|i\s+am|my\s+name\s*['’]?\s*s|my\s+name\s+is|call\s+me)"
    r"|(?i:as\s+the)(?:\s+[a-z]+){1,2})\s+([A-Z][a-z]+)(?![\w'’])(?!\s*['’]s\b)"
)
_TAG = re.compile(r"^\W*([A-Za-z][\w]*)\s*:(?:\s|$)")


def _is_name_like(word: str) -> bool:
    """A capitalised word that could be a name: not an adjective or adverb ("Sorry",
    "Back", "Here", "Going") and not a function word."""
    low = word.lower()
    if low in _FUNCTION_WORDS:
        return False
    from lemminflect import getAllLemmas

    tags = getAllLemmas(low)
    return not ({"ADJ", "ADV"} & set(tags)) and not low.endswith("ing")


class IdentityCheck:
    """Finds a clause that breaks the persona's identity (see `OutputGate`): it names
    her as someone else ("I'm Max", "call me Bob", "as the pirate Bob") or starts
    speaking for another role ("User:", "Sam:"). No check without a persona name."""

    def __init__(self, persona_name: str = ""):
        self.persona_name = persona_name
        self._own_names = {w.lower() for w in re.findall(r"[^\W\d_]+", persona_name)}

    def reason(self, clause: str) -> str | None:
        """"identity: ..." when `clause` breaks the identity, else None."""
        if not self.persona_name:
            return None
        text = unicodedata.normalize("NFKC", clause)
        tag = _TAG.match(text)
        if tag:
            who = tag.group(1)
            if who.lower() in _ROLES or (
                who[0].isupper() and who.lower() not in self._own_names and not _known_word(who.lower())
            ):
                return f"identity: speaks as '{who}'"
        for m in _CLAIM.finditer(text):
            name = m.group(1)
            if name.lower() not in self._own_names and _is_name_like(name):
                return f"identity: claims to be '{name}'"
        return None
