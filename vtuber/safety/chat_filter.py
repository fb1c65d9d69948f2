"""Incoming chat, screened with the banned-word matcher before the co-host reads it."""

from __future__ import annotations

from collections.abc import Iterable

from vtuber.safety.banned import BannedWords

REMOVED = "[message removed]"
MASK = "***"


class ChatFilter:
    """Screens incoming chat before the co-host reads it.

    mode "skip": a message with a banned word is dropped.
    mode "sanitise": each banned occurrence is replaced by "***"; if that still
    leaves a banned word readable (e.g. "heheckck" -> "he***ck"), the whole
    message becomes "[message removed]".
    """

    MODES = ("skip", "sanitise")

    def __init__(self, banned: BannedWords | Iterable[str], mode: str = "skip"):
        if mode not in self.MODES:
            raise ValueError(f"chat filter mode must be one of {self.MODES}, not {mode!r}")
        self.banned = banned if isinstance(banned, BannedWords) else BannedWords(banned)
        self.mode = mode

    def apply(self, text: str) -> tuple[str | None, str | None]:
        """(text to use, or None to skip it; reason, or None if the text was clean)."""
        hits = self.banned.hits(text)
        if not hits:
            return text, None
        reason = f"banned word '{hits[0].entry}'"
        if self.mode == "skip":
            return None, reason
        out, last = [], 0
        for h in hits:
            out.append(text[last : h.start])
            out.append(MASK)
            last = h.end
        out.append(text[last:])
        cleaned = "".join(out)
        if self.banned.find(cleaned) is not None:
            return REMOVED, reason
        return cleaned, reason
