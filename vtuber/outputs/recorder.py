"""Per-turn timings and the session's reply audio, derived from the event stream.

The recorder places reply audio the way a speaker plays it: a reply starts when
its first audio is ready (or when the previous reply ends), each clause right
after the previous one, or later if it was not ready in time (a gap: audible
silence inside a reply, counted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from vtuber.events import (
    AudioChunk,
    FirstToken,
    ReplyClause,
    ReplyFinished,
    ReplyStarted,
    Turn,
    TurnDropped,
    Utterance,
)

GAP_TOLERANCE_S = 0.005


@dataclass
class TurnRecord:
    id: int
    kind: str
    user: str
    input_text: str
    t_input: float
    t_queued: float
    t_picked: float
    reply_text: str = ""
    t_first_token: float | None = None
    t_first_clause: float | None = None
    t_first_audio: float | None = None
    t_done: float | None = None
    t_speech_start: float | None = None
    endpoint_s: float | None = None
    asr_s: float | None = None
    tokens: int = 0
    llm_s: float = 0.0
    truncated: bool = False
    audio_s: float = 0.0
    play_start: float | None = None
    play_end: float | None = None
    gaps: int = 0
    gap_s: float = 0.0
    clauses: list[dict] = field(default_factory=list)

    def stages(self) -> dict[str, float | None]:
        """Latencies in seconds (None where a stage does not apply)."""

        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(b - a, 0.0)

        return {
            "input_to_first_audio": d(self.t_input, self.t_first_audio),
            "endpoint": self.endpoint_s,
            "asr": self.asr_s,
            "queue_wait": d(self.t_queued, self.t_picked),
            "llm_first_token": d(self.t_picked, self.t_first_token),
            "first_clause": d(self.t_picked, self.t_first_clause),
            "tts_first_chunk": d(self.t_first_clause, self.t_first_audio),
            "tokens_per_s": (self.tokens / self.llm_s) if self.llm_s > 0 else None,
        }

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items()}
        out["stages"] = self.stages()
        return out


class Recorder:
    """An output: observes every event, keeps turn records, dropped inputs and the reply audio."""

    def __init__(self) -> None:
        self.records: dict[int, TurnRecord] = {}
        self.dropped: list[TurnDropped] = []
        self.heard: list[Utterance] = []
        self._audio: list[tuple[float, np.ndarray]] = []  # (session start time, int16 samples)
        self.sample_rate = 22050
        self._cursor = 0.0  # when the speaker is free again

    def __call__(self, ev: object) -> None:
        if isinstance(ev, ReplyStarted):
            self._start(ev.turn)
        elif isinstance(ev, FirstToken):
            self.records[ev.turn_id].t_first_token = ev.t
        elif isinstance(ev, ReplyClause):
            r = self.records[ev.turn_id]
            if r.t_first_clause is None:
                r.t_first_clause = ev.t
            r.clauses.append({"index": ev.index, "text": ev.text, "t_text": ev.t})
        elif isinstance(ev, AudioChunk):
            self._chunk(ev)
        elif isinstance(ev, ReplyFinished):
            r = self.records[ev.turn_id]
            r.reply_text, r.t_done, r.tokens, r.llm_s, r.truncated = ev.text, ev.t, ev.n_tokens, ev.llm_s, ev.truncated
        elif isinstance(ev, TurnDropped):
            self.dropped.append(ev)
        elif isinstance(ev, Utterance):
            self.heard.append(ev)

    def _start(self, turn: Turn) -> None:
        r = TurnRecord(turn.id, turn.kind, turn.user, turn.text, turn.t_input, turn.t_queued, turn.t_picked)
        if isinstance(turn.source, Utterance):
            u = turn.source
            r.t_speech_start, r.endpoint_s, r.asr_s = u.t_start, u.endpoint_s, u.asr_s
        self.records[turn.id] = r

    def _chunk(self, ev: AudioChunk) -> None:
        r = self.records[ev.turn_id]
        self.sample_rate = ev.sample_rate
        if not len(ev.samples):  # nothing to hear: not the first audio, not a gap filler
            return
        if r.t_first_audio is None:
            r.t_first_audio = ev.t
            start = max(ev.t, self._cursor)
            r.play_start = start
        else:
            start = max(ev.t, self._cursor)
            late = ev.t - self._cursor
            if late > GAP_TOLERANCE_S:
                r.gaps += 1
                r.gap_s += late
        dur = ev.duration
        self._cursor = start + dur
        r.play_end = self._cursor
        r.audio_s += dur
        for c in r.clauses:
            if c["index"] == ev.clause_index:
                c.update(t_audio=ev.t, play_start=start, duration=dur)
        if len(ev.samples):
            self._audio.append((start, ev.samples))

    def finished(self) -> list[TurnRecord]:
        return [r for r in sorted(self.records.values(), key=lambda r: r.id) if r.t_done is not None]

    def timeline(self, min_duration: float = 0.0) -> np.ndarray:
        """All reply audio on one int16 track, each clause at the time it would have played."""
        end = max([min_duration] + [s + len(x) / self.sample_rate for s, x in self._audio])
        track = np.zeros(int(end * self.sample_rate) + 1, dtype=np.int32)
        for start, x in self._audio:
            i = int(round(start * self.sample_rate))
            track[i : i + len(x)] += x
        return np.clip(track, -32768, 32767).astype(np.int16)
