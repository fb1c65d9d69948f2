"""Per-turn timings and the session's reply audio, derived from the event stream.

Two first-audio times per turn: when it was *ready* (`AudioChunk`) and when it was
*heard* (`PlaybackStarted`, from the speaker or the simulated playback: queueing
behind earlier replies included). The reply audio is placed where playback played
it (`ClausePlaying`), and a reply cut short (`PlaybackFinished(cut_short=True)`)
keeps only what was heard; gaps are playback's underruns. The audio goes to a
`WavTrack` as each reply ends (written as the session goes, memory flat however long
it runs): only the reply still playing is held in memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vtuber.events import (
    AudioChunk,
    ClausePlaying,
    FirstToken,
    PlaybackFinished,
    PlaybackStarted,
    ReplyClause,
    ReplyFinished,
    ReplyStarted,
    Turn,
    TurnCancelled,
    TurnDropped,
    Underrun,
    Utterance,
    UtteranceRetracted,
)
from vtuber.outputs.track import WavTrack


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
    t_reply_audio: float | None = None  # the first audio of the model's own words (after any opener)
    opener: str = ""  # the reaction said at once while the model wrote (vtuber.mind.openers)
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
    t_first_heard: float | None = None
    heard_text: str = ""
    cut_short: bool = False
    cancel_reason: str = ""
    quality: list[str] = field(default_factory=list)  # quality flags of the reply
    suppressed: str = ""  # a first clause the mind did not speak, and why
    attempts: int = 1  # LLM generations the reply took
    clauses: list[dict] = field(default_factory=list)

    def stages(self) -> dict[str, float | None]:
        """Latencies in seconds (None where a stage does not apply)."""

        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(b - a, 0.0)

        return {
            "input_to_first_audio": d(self.t_input, self.t_first_audio),
            "input_to_first_heard": d(self.t_input, self.t_first_heard),
            "endpoint": self.endpoint_s,
            "asr": self.asr_s,
            "queue_wait": d(self.t_queued, self.t_picked),
            "llm_first_token": d(self.t_picked, self.t_first_token),
            "first_clause": d(self.t_picked, self.t_first_clause),
            "tts_first_chunk": d(self.t_first_clause, self.t_reply_audio),
            "input_to_reply_audio": d(self.t_input, self.t_reply_audio),
            "tokens_per_s": (self.tokens / self.llm_s) if self.llm_s > 0 else None,
        }

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items()}
        out["stages"] = self.stages()
        return out


class Recorder:
    """Observes every event, keeps turn records, dropped inputs and the reply audio as heard.

    `track_path`: where the reply audio is streamed while the session runs (a scratch file
    in the report folder; None: an anonymous temporary file)."""

    def __init__(self, track_path: str | Path | None = None) -> None:
        self.records: dict[int, TurnRecord] = {}
        self.dropped: list[TurnDropped] = []
        self.heard: list[Utterance] = []
        self._chunks: dict[tuple[int, int], np.ndarray] = {}  # audio made, not yet played
        self._audio: list[list] = []  # [turn, session start time, int16 samples] played, reply not over yet
        self.sample_rate = 22050
        self.track = WavTrack(track_path, self.sample_rate)
        self.audio_heard_s: dict[int, float] = {}  # per turn: seconds of its audio on the track (what was heard)

    def __call__(self, ev: object) -> None:
        if isinstance(ev, ReplyStarted):
            self._start(ev.turn)
            return
        r = self.records.get(getattr(ev, "turn_id", -1))
        if isinstance(ev, TurnDropped):
            self.dropped.append(ev)
        elif isinstance(ev, Utterance):
            self.heard.append(ev)
        elif isinstance(ev, UtteranceRetracted):  # sent early, but the streamer went on
            self.heard = [u for u in self.heard if u is not ev.utterance]
        elif r is None:
            return
        elif isinstance(ev, FirstToken):
            r.t_first_token = ev.t
        elif isinstance(ev, ReplyClause):
            if ev.opener:
                r.opener = ev.text
            elif r.t_first_clause is None:
                r.t_first_clause = ev.t
            r.clauses.append({"index": ev.index, "text": ev.text, "t_text": ev.t})
        elif isinstance(ev, AudioChunk):
            self.sample_rate = ev.sample_rate
            if not self.track.frames:
                self.track.sample_rate = ev.sample_rate
            if len(ev.samples):  # nothing to hear is not the first audio
                if r.t_first_audio is None:
                    r.t_first_audio = ev.t
                if r.t_reply_audio is None and not (r.opener and ev.clause_index == 0):
                    r.t_reply_audio = ev.t
                r.audio_s += ev.duration
                self._chunks[(ev.turn_id, ev.clause_index)] = ev.samples
                self._clause(r, ev.clause_index).update(t_audio=ev.t)
        elif isinstance(ev, ReplyFinished):
            r.reply_text, r.t_done, r.tokens, r.llm_s, r.truncated = ev.text, ev.t, ev.n_tokens, ev.llm_s, ev.truncated
            r.quality, r.suppressed, r.attempts = list(ev.flags), ev.suppressed, ev.attempts
        elif isinstance(ev, PlaybackStarted):
            r.t_first_heard = r.play_start = ev.t
        elif isinstance(ev, ClausePlaying):
            self._clause(r, ev.clause_index).update(play_start=ev.t, duration=ev.duration)
            samples = self._chunks.pop((ev.turn_id, ev.clause_index), None)
            if samples is not None:
                self._audio.append([ev.turn_id, ev.t, samples])
        elif isinstance(ev, Underrun):
            r.gaps += 1
            r.gap_s += ev.gap_s
        elif isinstance(ev, PlaybackFinished):
            r.play_end, r.heard_text = ev.t, ev.heard_text
            if ev.cut_short:
                r.cut_short = True
                r.cancel_reason = r.cancel_reason or ev.reason
                self._cut_audio(ev.turn_id, ev.t)
            self._write_audio(ev.turn_id)
        elif isinstance(ev, TurnCancelled):
            r.cut_short, r.cancel_reason = True, r.cancel_reason or ev.reason
            if r.t_done is None:
                r.t_done = ev.t
                r.reply_text = " ".join(c["text"] for c in r.clauses)

    def _start(self, turn: Turn) -> None:
        r = TurnRecord(turn.id, turn.kind, turn.user, turn.text, turn.t_input, turn.t_queued, turn.t_picked)
        if isinstance(turn.source, Utterance):
            u = turn.source
            r.t_speech_start, r.endpoint_s, r.asr_s = u.t_start, u.endpoint_s, u.asr_s
        self.records[turn.id] = r

    def _clause(self, r: TurnRecord, index: int) -> dict:
        for c in r.clauses:
            if c["index"] == index:
                return c
        c = {"index": index, "text": ""}
        r.clauses.append(c)
        return c

    def _cut_audio(self, turn_id: int, t: float) -> None:
        """Keep only what was heard of a reply cut short at `t`."""
        kept = []
        for item in self._audio:
            tid, start, samples = item
            if tid == turn_id and start + len(samples) / self.sample_rate > t:
                n = max(int((t - start) * self.sample_rate), 0)
                if n == 0:
                    continue
                item[2] = samples[:n]
            kept.append(item)
        self._audio = kept
        for key in [k for k in self._chunks if k[0] == turn_id]:
            del self._chunks[key]

    def _write_audio(self, turn_id: int | None = None) -> None:
        """The reply is over (heard to the end, or cut): its audio goes to the track."""
        kept = []
        for item in self._audio:
            if turn_id is None or item[0] == turn_id:
                self.track.place(item[1], item[2])
                self.audio_heard_s[item[0]] = self.audio_heard_s.get(item[0], 0.0) + len(item[2]) / self.sample_rate
            else:
                kept.append(item)
        self._audio = kept

    def finished(self) -> list[TurnRecord]:
        return [r for r in sorted(self.records.values(), key=lambda r: r.id) if r.t_done is not None]

    @property
    def errors(self) -> list[str]:
        """What went wrong writing the report as the session went (a full disk)."""
        return [self.track.failed] if self.track.failed else []

    def save_audio(self, dest: str | Path, min_duration: float = 0.0) -> None:
        """The reply audio as one WAV at `dest` (see `WavTrack.save`)."""
        self._write_audio()
        self.track.sample_rate = self.sample_rate
        self.track.save(dest, min_duration)

    def timeline(self, min_duration: float = 0.0) -> np.ndarray:
        """All reply audio on one int16 track, each clause at the time it would have played
        (read back whole: for tests and short sessions; the report streams it)."""
        self._write_audio()
        self.track.sample_rate = self.sample_rate
        self.track.pad(min_duration)
        return self.track.read()
