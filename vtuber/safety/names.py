"""User names, read the way people read them: "MrPotatoHead" is "Mr Potato Head".

The gate checks a name for banned entries (`BannedWords.find_in_name`), the canary and
the system prompt (`OutputGate.name_reason`) on the words `split_name` finds in it.
"""

from __future__ import annotations

import re
import unicodedata

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_name(name: str) -> str:
    """A user name split into the words people read in it: "MrPotatoHead" -> "Mr Potato
    Head", "xX_d4rn_Xx" -> "x X d4rn X x", "potatolover99" -> "potatolover 99".
    Digits between letters stay (leet: "d4rn"); runs of 2+ digits at a piece's ends split."""
    out = []
    for piece in re.split(r"[\W_]+", unicodedata.normalize("NFKC", name)):
        piece = re.sub(r"^(\d{2,})(?=\D)|(?<=\D)(\d{2,})$", r" \1\2 ", piece)
        out.append(_CAMEL.sub(" ", piece))
    return " ".join(" ".join(out).split())

