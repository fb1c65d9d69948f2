"""Reasoning models think before they answer; only the answer may leave the backend.

DeepSeek-R1 distills, Qwen3, QwQ and the like write `<think> ... </think>` before the
answer (or send the thinking in a separate `reasoning_content` / `reasoning` field of
the server's stream, which the remote backend never passes on). `ThinkFilter` sits in
the backend layer, between the model's raw text and the mind, so the mind, the gate,
the voice and the transcript only ever see the answer:

- tags split across pieces ("<th", "ink>") are held back until they are whole;
- `starts_thinking`: some chat templates open the `<think>` in the prompt, so the
  model's text starts inside the thinking with no opening tag. Then text is held until
  `</think>` (all of it was thinking) or the end of the stream (no thinking at all: the
  held text is the answer);
- a `</think>` that comes without an opening tag while `starts_thinking` is off cannot
  be unsaid; the tag itself is dropped and `stray_close` counts it, so the caller can
  say once that `starts_thinking` is wanted for this model.

Thinking time (first thinking text to the end of the thinking) is measured apart,
for the bench.
"""

from __future__ import annotations

import time

OPEN = "<think>"
CLOSE = "</think>"
HELD_LIMIT = 64 * 1024  # characters held while it is not yet known whether they are thinking


def _partial_tail(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is the start of one of `tags`."""
    best = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), 0, -1):
            if text.endswith(tag[:n]):
                best = max(best, n)
                break
    return best


class ThinkFilter:
    def __init__(self, starts_thinking: bool = False, clock=time.perf_counter):
        self.clock = clock
        self.buf = ""
        self.thinking = starts_thinking
        self.undecided = starts_thinking  # thinking without a tag seen yet: keep the text
        self.held = ""
        self.after_think = False  # strip the blank lines that follow </think>
        self.think_start: float | None = None
        self.think_end: float | None = None
        self.thought_chars = 0
        self.stray_close = 0

    @property
    def thinking_s(self) -> float:
        if self.think_start is None:
            return 0.0
        end = self.think_end if self.think_end is not None else self.clock()
        return max(end - self.think_start, 0.0)

    def reasoning(self, text: str) -> None:
        """Thinking that came in a separate field of the stream: counted, never passed on."""
        if text:
            self._think_started()
            self.thought_chars += len(text)
            self.think_end = self.clock()

    def _think_started(self) -> None:
        if self.think_start is None:
            self.think_start = self.clock()

    def feed(self, piece: str) -> str:
        """The answer text in `piece` (may be empty while thinking or while a tag is partial)."""
        self.buf += piece
        out = []
        while self.buf:
            if self.thinking:
                self._think_started()
                i = self.buf.find(CLOSE)
                if i >= 0:
                    self.thought_chars += i
                    self.buf = self.buf[i + len(CLOSE) :]
                    self.thinking = self.undecided = False
                    self.held = ""
                    self.think_end = self.clock()
                    self.after_think = True
                    continue
                keep = _partial_tail(self.buf, (CLOSE, OPEN) if self.undecided else (CLOSE,))
                gone = self.buf[: len(self.buf) - keep]
                self.thought_chars += len(gone)
                if self.undecided:
                    j = (self.held + self.buf).find(OPEN)
                    if j >= 0:  # an explicit opening tag after all: what came before it is the answer
                        text = self.held + self.buf
                        self.thinking = self.undecided = False
                        self.held, self.buf = "", text
                        self.think_start = None
                        self.thought_chars = 0
                        continue
                    self.held += gone
                    if len(self.held) > HELD_LIMIT:
                        self.held = self.held[-HELD_LIMIT:]
                self.buf = self.buf[len(gone) :]
                break
            i = self.buf.find(OPEN)
            j = self.buf.find(CLOSE)
            if j >= 0 and (i < 0 or j < i):
                self.stray_close += 1
                out.append(self._answer(self.buf[:j]))
                self.buf = self.buf[j + len(CLOSE) :]
                self.after_think = True
                continue
            if i >= 0:
                out.append(self._answer(self.buf[:i]))
                self.buf = self.buf[i + len(OPEN) :]
                self.thinking = True
                self._think_started()
                continue
            keep = _partial_tail(self.buf, (OPEN, CLOSE))
            out.append(self._answer(self.buf[: len(self.buf) - keep]))
            self.buf = self.buf[len(self.buf) - keep :]
            break
        return "".join(out)

    def _answer(self, text: str) -> str:
        if self.after_think:
            text = text.lstrip()
            if text:
                self.after_think = False
        return text

    def end(self) -> str:
        """The stream ended: what is still held that belongs to the answer."""
        if self.undecided:  # never a tag: the model did not think, all of it was the answer
            text = self.held + self.buf
            self.held = self.buf = ""
            self.think_start = None
            self.thought_chars = 0
            return text
        if self.thinking:  # cut off while thinking: nothing of it is said
            self.thought_chars += len(self.buf)
            self.buf = ""
            if self.think_end is None:
                self.think_end = self.clock()
            return ""
        text, self.buf = self._answer(self.buf), ""
        return text


def strip_thinking(pieces, starts_thinking: bool = False, filt: ThinkFilter | None = None):
    """Filter a stream of text pieces (a generator); `filt` to read its numbers afterwards."""
    filt = filt or ThinkFilter(starts_thinking)
    for piece in pieces:
        text = filt.feed(piece)
        if text:
            yield text
    text = filt.end()
    if text:
        yield text


NO_THINK = "/no_think"  # Qwen3's switch; a template that does not know it sees a harmless word


def no_think(messages: list[dict]) -> list[dict]:
    """The messages with the system prompt asking the model not to think (`llm.think = false`)."""
    if not messages or messages[0].get("role") != "system" or NO_THINK in messages[0].get("content", ""):
        return messages
    first = dict(messages[0])
    first["content"] = first["content"].rstrip() + " " + NO_THINK
    return [first, *messages[1:]]
