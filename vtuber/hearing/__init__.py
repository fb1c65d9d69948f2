"""Hearing: VAD and endpointing on the streamer's audio, then ASR on each utterance.

Endpointing is speculative twice over:
- ASR starts at a very short pause (`speculative_ms`) on the utterance so far. If the
  pause lasts until the endpoint (`hangover_ms`), that transcript is used, so most of
  the ASR time is hidden inside the hangover; if the streamer goes on, it is dropped.
- If the transcript ends a sentence (. ! ?) and has a few words, the utterance is
  done at once: with `early_answer`, already at the short pause, as soon as the
  speculative transcript is ready (no waiting out the hangover); if the streamer then
  goes on, `UtteranceRetracted` takes it back (its turn is dropped or cancelled
  silently) and the whole utterance comes at the real endpoint. If the transcript is
  not a sentence ("Okay chat," or just "Miko."), the streamer is probably
  mid-sentence: the transcript is held for up to `continuation_ms` more; if speech
  resumes, both parts are heard again as one utterance, otherwise it goes out as is.
- `SpeechStarted` comes after `onset_ms` of voice (barge-in acts on it), sooner than
  an utterance is accepted; `streamer_talking` tells the director to wait for them.

What Whisper invents on silence and noise ("Thank you.", "you", "[Music]") is dropped
when the utterance goes out, judged by `vtuber.hearing.hallucination` on the text,
Whisper's own evidence and how long the VAD heard voice in it: each drop is logged
once (INFO, logger "vtuber.hearing") and counted in `Hearing.counters`
("hallucination", or "empty" for a transcript with no words), never emitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vtuber.clock import Clock
from vtuber.events import AudioFrame, SpeechStarted, Utterance, UtteranceRetracted
from vtuber.hearing.asr import Transcript, WhisperASR
from vtuber.hearing.hallucination import judge
from vtuber.hearing.vad import FRAME, RATE, Endpointer, Segment, SileroVAD
from vtuber.ports import SpeechToText

__all__ = ["Hearing", "WhisperASR", "Transcript", "SileroVAD", "Endpointer"]

log = logging.getLogger("vtuber.hearing")

# Frames whose VAD verdict is kept, to tell how much of an utterance was voiced
# (131 s: longer than any utterance, joined continuations included).
_VAD_HISTORY = 4096
ONSET_GRACE_S = 1.0  # after a speech onset, the streamer counts as talking this long
_SENTENCE_END = (".", "!", "?", "…")


@dataclass
class _Held:
    """A transcript waiting to see whether the streamer goes on talking."""

    segment: Segment
    transcript: Transcript
    t_asr_done: float
    deadline: float


@dataclass
class _Speculation:
    segment: Segment
    task: asyncio.Task
    sent: Utterance | None = None  # sent early: a complete sentence at a short pause
    decided: bool = False  # judged early (sent, or dropped as a hallucination): not again


class Hearing:
    """Consumes `AudioFrame`s, emits `SpeechStarted` and `Utterance` events.

    VAD runs inline (about 0.1 ms a frame); ASR runs in its own worker thread so the
    event loop never blocks and frames keep flowing while an utterance is transcribed.
    Every ASR run holds the clock's work count, so the fast clock stays faithful.
    """

    def __init__(
        self,
        vad: SileroVAD,
        endpointer: Endpointer,
        asr: SpeechToText,
        clock: Clock,
        emit: Callable[[object], None],
        continuation_ms: int = 700,
        speculative_ms: int = 128,
        onset_ms: int = 96,
        early_answer: bool = True,
    ):
        self.vad = vad
        self.endpointer = endpointer
        self.asr = asr
        self.clock = clock
        self.emit = emit
        self.continuation = continuation_ms / 1000
        self.speculative_frames = round(speculative_ms / 32) if speculative_ms > 0 else 0
        # `SpeechStarted` (what barge-in acts on) comes after this much voice, sooner than
        # an utterance is accepted (min_speech_ms): stopping the co-host fast matters more.
        self.onset_frames = min(max(1, round(onset_ms / 32)), endpointer.min_speech)
        self._last_onset = float("-inf")
        # Answer at the short pause when the speculative transcript is a whole sentence
        # (the turn is cancelled silently if the streamer goes on), not at the endpoint.
        self.early_answer = early_answer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._tasks: set[asyncio.Task] = set()
        self._held: _Held | None = None
        self._prefix: Segment | None = None  # held audio the next segment continues
        self._spec: _Speculation | None = None
        # (frame start, voiced seconds) of recent frames, for the hallucination filter.
        self._voiced: deque[tuple[float, float]] = deque(maxlen=_VAD_HISTORY)
        self.counters: Counter[str] = Counter()  # "hallucination", "empty": transcripts dropped

    @property
    def streamer_talking(self) -> bool:
        """The streamer is speaking, or what they said is still being transcribed or held
        for a continuation: their utterance is on its way (the director waits for it)."""
        ep = self.endpointer
        recent_onset = self.clock.now() - self._last_onset < ONSET_GRACE_S  # a pause inside a start
        return ep.in_speech or ep.onset_pending or recent_onset or self._held is not None or bool(self._tasks)

    def feed(self, frame: AudioFrame) -> None:
        prob = self.vad(frame.samples)
        ep = self.endpointer
        started, segment = ep.feed(frame.samples, frame.t, prob)
        now = frame.t + frame.duration
        self._voiced.append((frame.t, frame.duration if prob >= ep.off else 0.0))
        if ep.voiced_run == self.onset_frames or (started and self.onset_frames >= ep.min_speech):
            self._last_onset = self.clock.now()
            self.emit(SpeechStarted(t=self._last_onset))
        if started:
            if self._held is not None:  # the streamer went on: hear both parts as one
                self._prefix, self._held = self._held.segment, None
        if ep.in_speech:
            silent = ep.silent_frames
            if silent == 0:
                if self._spec is not None and self._spec.sent is not None:  # they went on
                    self.emit(UtteranceRetracted(self._spec.sent, self.clock.now()))
                self._spec = None  # still talking: any speculative transcript is stale
            elif silent == self.speculative_frames and self._spec is None:
                seg = ep.snapshot(now)
                if self._prefix is not None:
                    seg = _join(self._prefix, seg)
                self._spec = _Speculation(seg, self._asr(seg))
                if self.early_answer:
                    self._spec.task.add_done_callback(lambda task, spec=self._spec: self._early(spec))
        if segment is not None:
            if self._prefix is not None:
                segment = _join(self._prefix, segment)
                self._prefix = None
            spec, self._spec = self._spec, None
            same = spec is not None and spec.segment.t_end == segment.t_end and spec.segment.t_start == segment.t_start
            if same and spec.decided:
                pass  # already answered (or dropped) at the short pause
            elif same:
                # Nothing was said since the speculation started: its transcript is this one.
                segment = Segment(spec.segment.audio, segment.t_start, segment.t_end, segment.t_endpoint)
                self._conclude(segment, spec.task)
            else:
                self._conclude(segment, self._asr(segment))
        held = self._held
        if held is not None and not ep.in_speech and not ep.onset_pending and now >= held.deadline:
            self._held = None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=held.deadline)

    def _early(self, spec: _Speculation) -> None:
        """The speculative transcript is ready: if the streamer is still silent and it is a
        whole sentence, send it now instead of at the endpoint."""
        if spec is not self._spec or spec.task.cancelled() or spec.task.exception() is not None:
            return
        transcript = spec.task.result()
        if not self.endpointer.in_speech or self.endpointer.silent_frames == 0 or not _complete(transcript.text):
            return
        spec.decided = True
        spec.sent = self._send(spec.segment, transcript, self.clock.now(), t_endpoint=self.clock.now())

    def _track(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _asr(self, seg: Segment) -> asyncio.Task:
        self.clock.begin_work()
        return self._track(self._run_asr(seg))

    async def _run_asr(self, seg: Segment) -> Transcript:
        try:
            loop = asyncio.get_running_loop()
            hear = getattr(self.asr, "hear", None)
            if hear is not None:
                return await loop.run_in_executor(self._executor, hear, seg.audio)
            # An ASR that gives only text (a test's wrapper): judged on the text and the VAD.
            text = await loop.run_in_executor(self._executor, self.asr.transcribe, seg.audio)
            return Transcript(text, duration_s=len(seg.audio) / RATE)
        finally:
            self.clock.end_work()

    def _conclude(self, seg: Segment, asr: asyncio.Task) -> None:
        self.clock.begin_work()
        self._track(self._decide(seg, asr))

    async def _decide(self, seg: Segment, asr: asyncio.Task) -> None:
        """Once the endpoint's transcript is ready: send it, or hold it for a continuation."""
        try:
            transcript = await asr
            t_done = self.clock.now()
            if self._prefix is not None or self.endpointer.in_speech:
                # Speech resumed while we were transcribing: this text is superseded
                # by the joined utterance.
                if self._prefix is None:
                    self._prefix = seg
                    self._spec = None  # it was taken without this prefix
                return
            if _complete(transcript.text):
                self._send(seg, transcript, t_done, t_endpoint=seg.t_endpoint)
            else:
                self._held = _Held(seg, transcript, t_done, deadline=seg.t_end + self.continuation)
        finally:
            self.clock.end_work()

    def _voiced_s(self, seg: Segment) -> float:
        """Seconds the VAD heard voice between the segment's onset and its last voiced frame."""
        half = FRAME / RATE / 2  # frame starts are float sums: match them to half a frame
        return sum(v for t, v in self._voiced if seg.t_start - half <= t < seg.t_end - half)

    def _send(self, seg: Segment, transcript: Transcript, t_asr_done: float, t_endpoint: float) -> Utterance | None:
        text = transcript.text
        verdict = judge(transcript, self._voiced_s(seg))
        if verdict.drop:
            kind = "empty" if verdict.rule == "empty" else "hallucination"
            self.counters[kind] += 1
            log.log(
                logging.DEBUG if kind == "empty" else logging.INFO,
                "hearing: dropped %r at %.1f-%.1f s (%s: %s)",
                text,
                seg.t_start,
                seg.t_end,
                verdict.rule,
                verdict.reason,
            )
            return None
        t_asr_done = max(t_asr_done, t_endpoint)
        utt = Utterance(
            text=text,
            t_start=seg.t_start,
            t_end=seg.t_end,
            t_endpoint=t_endpoint,
            t_asr_done=t_asr_done,
            t=self.clock.now(),
        )
        self.emit(utt)
        return utt

    async def drain(self) -> None:
        """End of input: finish transcriptions and send whatever is still held."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=max(held.deadline, held.t_asr_done))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _complete(text: str) -> bool:
    """Does this transcript sound finished? It ends a sentence and is more than a
    word or two ("Miko." is the streamer calling the co-host, not a whole request)."""
    t = text.rstrip()
    trailing_off = t.endswith(("...", "…"))  # Whisper's mark for speech that trails off
    return t.endswith(_SENTENCE_END) and not trailing_off and len(t.split()) >= 3


def _join(a: Segment, b: Segment) -> Segment:
    gap = np.zeros(max(0, int((b.t_start - a.t_end) * RATE)), dtype=np.float32)
    gap = gap[: RATE // 2]  # keep the pause short: Whisper only needs to hear a break
    return Segment(
        audio=np.concatenate([a.audio, gap, b.audio]),
        t_start=a.t_start,
        t_end=b.t_end,
        t_endpoint=b.t_endpoint,
    )
