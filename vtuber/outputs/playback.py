"""Playback: what the audience actually hears, and when.

The voice stage makes audio when it is *ready*; playback decides when it is *heard*:
a reply starts when its first audio is ready or when the previous reply ends, each
clause right after the previous one, or later if it was not ready in time (an
underrun). Playback emits the events captions, lip sync and "latency as heard" hang on:

    PlaybackStarted -> ClausePlaying (each clause) -> PlaybackFinished (or cut short)
    Underrun (a clause came too late: audible silence inside a reply)

Two kinds, one set of events:
- `SimulatedPlayback` (rehearsal, bench): a timeline on the session clock; events fire
  at the session time the audio would start and end (clock timers, so the fast clock
  can jump over audio that is just playing).
- `SpeakerPlayback` (`vtuber.outputs.speaker`): a real sound device; events come from
  the audio callback, as the samples go out.

`flush(turn_id)` is the cancellation hook: the turn's queued audio is dropped, the
turn ends at once with what was heard so far (`PlaybackFinished(cut_short=True)`).
`trim(turn_id)` ends a reply early but gently: after the clause being heard (a paid
message or a mention is waiting); its later audio is dropped and none is taken any more.
`busy_until()` tells the director when the speaker will be free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vtuber.clock import Clock, Timer
from vtuber.events import (
    AudioChunk,
    ClausePlaying,
    PlaybackFinished,
    PlaybackStarted,
    ReplyClause,
    ReplyFinished,
    Underrun,
)

GAP_TOLERANCE_S = 0.005


@dataclass
class _Reply:
    turn_id: int
    texts: dict[int, str] = field(default_factory=dict)  # clause index -> text
    started: list[int] = field(default_factory=list)  # clause indexes heard (at least in part)
    openers: set[int] = field(default_factory=set)  # clause indexes that are her opener, not her answer
    done: bool = False
    trimmed: str = ""  # why it ends after the clause being heard (no more audio is taken)

    def heard_text(self) -> str:
        return " ".join(self.texts.get(i, "") for i in self.started).strip()


class Playback:
    """Common bookkeeping: clause texts, what was heard, the end of each reply.

    A subclass queues audio (`_queue_audio`), drops it (`_drop_audio`) and calls
    `_clause_started`, `_underrun` and `_reply_ended` as the audio plays."""

    def __init__(self, clock: Clock, emit: Callable[[object], None]):
        self.clock = clock
        self.emit = emit
        self._replies: dict[int, _Reply] = {}
        self.underruns = 0

    # --- fed by the pipeline (synchronous, non-blocking) ------------------------------

    def feed(self, ev: object) -> None:
        if isinstance(ev, ReplyClause):
            r = self._reply(ev.turn_id)
            r.texts[ev.index] = ev.text
            if ev.opener:
                r.openers.add(ev.index)
        elif isinstance(ev, AudioChunk):
            r = self._reply(ev.turn_id)
            if not r.done and not r.trimmed and len(ev.samples):
                self._queue_audio(ev)
        elif isinstance(ev, ReplyFinished):  # the voice passed it: no more audio will come
            r = self._reply(ev.turn_id)
            if not r.done and not r.trimmed:
                self._all_queued(r)

    def _reply(self, turn_id: int) -> _Reply:
        if turn_id not in self._replies:
            self._replies[turn_id] = _Reply(turn_id)
        return self._replies[turn_id]

    def flush(self, turn_id: int, reason: str = "cancelled") -> str:
        """Stop the turn's audio now; returns what was heard of it."""
        r = self._reply(turn_id)
        if r.done:
            return r.heard_text()
        self._drop_audio(turn_id)
        self._finish(r, self.clock.now(), cut_short=True, reason=reason)
        return r.heard_text()

    def trim(self, turn_id: int, reason: str) -> float | None:
        """End the reply after the clause now being heard; the session time it ends, or
        None when nothing of its answer is heard yet (only its opener: "Hmm," alone answers
        nothing), or it is over, or already trimmed."""
        r = self._replies.get(turn_id)
        if r is None or r.done or r.trimmed or all(i in r.openers for i in r.started):
            return None
        end = self._trim_audio(turn_id)
        if end is not None:
            r.trimmed = reason
        return end

    def heard_text(self, turn_id: int) -> str:
        r = self._replies.get(turn_id)
        return r.heard_text() if r is not None else ""

    # --- called by subclasses as audio plays --------------------------------------------

    def _clause_started(self, turn_id: int, index: int, t: float, duration: float) -> None:
        r = self._reply(turn_id)
        if r.done:
            return
        if not r.started:
            self.emit(PlaybackStarted(turn_id, t))
        r.started.append(index)
        self.emit(ClausePlaying(turn_id, index, r.texts.get(index, ""), t, duration))

    def _underrun(self, turn_id: int, t: float, gap_s: float) -> None:
        self.underruns += 1
        self.emit(Underrun(turn_id, t, gap_s))

    def _reply_ended(self, turn_id: int, t: float) -> None:
        r = self._reply(turn_id)
        if not r.done:
            self._finish(r, t)

    def _finish(self, r: _Reply, t: float, cut_short: bool = False, reason: str = "") -> None:
        r.done = True
        self.emit(PlaybackFinished(r.turn_id, t, r.heard_text(), cut_short, reason))
        # A finished reply is kept a while (done) so late audio of a cut turn is ignored.
        if len(self._replies) > 64:  # forget old finished turns
            for tid in [k for k, v in self._replies.items() if v.done][:32]:
                del self._replies[tid]

    # --- for subclasses ---------------------------------------------------------------

    def _queue_audio(self, ev: AudioChunk) -> None:
        raise NotImplementedError

    def _drop_audio(self, turn_id: int) -> None:
        raise NotImplementedError

    def _all_queued(self, r: _Reply) -> None:
        """The reply's last audio is queued (or it had none)."""
        raise NotImplementedError

    def _trim_audio(self, turn_id: int) -> float | None:
        """Drop the turn's audio after the clause playing, end the reply there; when (None: cannot)."""
        return None

    def busy_until(self) -> float:
        """Session time the queued audio ends (<= now when the speaker is free)."""
        raise NotImplementedError

    def playing(self) -> list[int]:
        """Turns whose audio is queued or playing (not yet finished or cut)."""
        return [tid for tid, r in self._replies.items() if not r.done]

    def idle(self) -> bool:
        return not self.playing()

    def start(self) -> None:
        pass

    def close(self, drain: bool = True) -> None:
        pass


class SimulatedPlayback(Playback):
    """Playback on the session clock, without a device (rehearsal and bench)."""

    def __init__(self, clock: Clock, emit: Callable[[object], None]):
        super().__init__(clock, emit)
        self._cursor = 0.0  # when the simulated speaker is free again
        self._timers: dict[int, list[Timer]] = {}
        self._end: dict[int, float] = {}  # turn -> end of its audio so far
        self._spans: dict[int, list[tuple[float, float]]] = {}  # turn -> (start, end) of each clause

    def _at(self, turn_id: int, t: float, callback) -> None:
        self._timers.setdefault(turn_id, []).append(self.clock.call_at(t, callback))

    def _queue_audio(self, ev: AudioChunk) -> None:
        start = max(ev.t, self._cursor)
        prev_end = self._end.get(ev.turn_id)
        if prev_end is not None and ev.t - prev_end > GAP_TOLERANCE_S:
            gap = ev.t - prev_end
            self._at(ev.turn_id, prev_end, lambda: self._underrun(ev.turn_id, prev_end, gap))
        dur = ev.duration
        self._cursor = start + dur
        self._end[ev.turn_id] = self._cursor
        self._spans.setdefault(ev.turn_id, []).append((start, start + dur))
        self._at(ev.turn_id, start, lambda: self._clause_started(ev.turn_id, ev.clause_index, start, dur))

    def _all_queued(self, r: _Reply) -> None:
        end = self._end.get(r.turn_id, max(self.clock.now(), self._cursor))
        self._at(r.turn_id, end, lambda: self._ended(r.turn_id, end))

    def _ended(self, turn_id: int, t: float) -> None:
        self._timers.pop(turn_id, None)
        self._end.pop(turn_id, None)
        self._spans.pop(turn_id, None)
        self._reply_ended(turn_id, t)

    def _trim_audio(self, turn_id: int) -> float | None:
        now = self.clock.now()
        spans = [sp for sp in self._spans.get(turn_id, []) if sp[0] <= now + 1e-9]
        if not spans or turn_id not in self._end:
            return None
        end = max(spans[-1][1], now)
        # Every pending wake-up of this turn is for a later clause (or its old end): gone.
        for timer in self._timers.pop(turn_id, []):
            timer.cancel()
        self._end[turn_id] = end
        self._spans[turn_id] = spans
        self._cursor = max([now, *self._end.values()])
        self._at(turn_id, end, lambda: self._ended(turn_id, end))
        return end

    def _drop_audio(self, turn_id: int) -> None:
        self._spans.pop(turn_id, None)
        for timer in self._timers.pop(turn_id, []):
            timer.cancel()
        if self._end.pop(turn_id, None) is not None:
            # The speaker is free once what other turns still have queued has played.
            self._cursor = max([self.clock.now(), *self._end.values()])

    def busy_until(self) -> float:
        return self._cursor
