"""The one scripted language model for unit tests: the language-model port, saying what the test scripts.

Never in a test that proves the pipeline works (that is the real model's job); here so a
mechanism (a cancel, a cap, the gate, a fallback) happens every time.

- `replies`: one entry per call, the last one repeating; an entry is a string (streamed
  word by word, "word " pieces) or a list of pieces (streamed as given). Or a function
  `messages -> entry` to answer each prompt differently.
- Faults, so reliability tests can script them: `delay` seconds before each piece;
  `hold_at` pieces into a reply (every reply, or only the calls in `hold_calls`) it waits
  up to `hold_s` for a cancel (a hang when nobody cancels); `faults = {call: (piece,
  exception)}` raises there.
- What it saw and did: `seen` (the messages of every call), `calls`, `produced` (pieces
  yielded), `stopped` (per call: ended by a cancel), `holding` (set once a hold starts).

Like a real backend it never clears `cancel` itself: the mind does when a turn starts, so
a cancel that comes before the first piece wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator


def pieces_of(entry) -> list[str]:
    """A reply entry as its stream pieces: a string word by word, a list as given."""
    if isinstance(entry, str):
        return [word + " " for word in entry.split()]
    return list(entry)


class ScriptedLLM:
    """A scripted `vtuber.ports.LanguageModel` (see the module's note)."""

    name = "scripted"

    def __init__(
        self,
        replies,
        *,
        delay: float = 0.0,
        hold_at: int | None = None,
        hold_calls: set[int] | None = None,
        hold_s: float = 30.0,
        faults: dict[int, tuple[int, BaseException]] | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ):
        self.replies = replies
        self.delay = delay
        self.hold_at = hold_at
        self.hold_calls = hold_calls
        self.hold_s = hold_s
        self.faults = dict(faults or {})
        self._count = count_tokens or (lambda text: len(text.split()))
        self.cancel = threading.Event()
        self.holding = threading.Event()
        self.seen: list[list[dict]] = []
        self.calls = 0
        self.produced = 0
        self.stopped: list[bool] = []
        self.warmed: list[list[dict]] = []

    def _entry(self, call: int, messages: list[dict]):
        if callable(self.replies):
            return self.replies(messages)
        return self.replies[min(call, len(self.replies) - 1)]

    def warm(self, prefix: list[dict]) -> None:
        self.warmed.append(prefix)

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        self.seen.append(messages)
        call = self.calls
        self.calls += 1
        pieces = pieces_of(self._entry(call, messages))[:max_tokens]
        holds = self.hold_at is not None and (self.hold_calls is None or call in self.hold_calls)
        fault = self.faults.get(call)
        stopped = False
        try:
            for i, piece in enumerate(pieces):
                if holds and i == self.hold_at:
                    self.holding.set()
                    self.cancel.wait(self.hold_s)
                if fault is not None and i == fault[0]:
                    raise fault[1]
                if self.cancel.is_set():
                    stopped = True
                    return
                if self.delay:
                    time.sleep(self.delay)
                self.produced += 1
                yield piece
        finally:
            self.stopped.append(stopped)

    def close(self) -> None:
        pass
