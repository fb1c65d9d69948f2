"""What may be said on stream: the output gate every clause passes BEFORE it is spoken.

The gate sees each clause after the LLM and before TTS, the overlay or chat. A
clause with a banned word is replaced by a safe line and the event is logged.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

from vtuber.events import Turn

log = logging.getLogger("vtuber.safety")

SAFE_LINE = "Let's keep it friendly, chat!"


def normalise(text: str) -> str:
    """NFKC + casefold, so look-alike widths and cases match."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass
class OutputGate:
    banned_words: tuple[str, ...] = ()
    safe_line: str = SAFE_LINE
    blocked: list[tuple[int, str, str]] = field(default_factory=list)  # (turn id, clause, reason)

    def __post_init__(self) -> None:
        words = [re.escape(normalise(w)) for w in self.banned_words if w.strip()]
        self._pattern = re.compile(r"\b(" + "|".join(words) + r")\b") if words else None

    def check(self, clause: str, turn: Turn | None = None) -> str:
        """The clause if it may be said, else the safe line."""
        if self._pattern is not None:
            m = self._pattern.search(normalise(clause))
            if m:
                reason = f"banned word '{m.group(1)}'"
                self.blocked.append((turn.id if turn else 0, clause, reason))
                log.warning("blocked a clause before speech (%s)", reason)
                return self.safe_line
        return clause
