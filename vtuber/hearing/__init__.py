"""Hearing: VAD and endpointing on the streamer's audio, then ASR on each utterance.

Endpointing is speculative: ASR starts at a short pause (`hangover_ms`). If the
transcript ends a sentence (. ! ?) and has a few words, the utterance is done at
once. If not ("Okay chat," or just "Miko."), the streamer is probably mid-sentence: the transcript is
held for up to `continuation_ms` more; if speech resumes, the two parts are
heard again as one utterance, otherwise the held transcript goes out as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vtuber.clock import Clock
from vtuber.events import AudioFrame, SpeechStarted, Utterance
from vtuber.hearing.asr import WhisperASR
from vtuber.hearing.vad import RATE, Endpointer, Segment, SileroVAD

__all__ = ["Hearing", "WhisperASR", "SileroVAD", "Endpointer"]

# Filler Whisper likes to invent on noise; never answer these alone.
_NOISE_TRANSCRIPTS = {"", ".", "you", "you.", "thank you.", "thanks for watching!", "[music]", "(music)"}
_SENTENCE_END = (".", "!", "?", "…")


@dataclass
class _Held:
    """A transcript waiting to see whether the streamer goes on talking."""

    segment: Segment
    text: str
    t_asr_done: float
    deadline: float
    resumed: bool = False


class Hearing:
    """Consumes `AudioFrame`s, emits `SpeechStarted` and `Utterance` events.

    VAD runs inline (about 0.1 ms a frame); ASR runs in its own worker thread so the
    event loop never blocks and frames keep flowing while an utterance is transcribed.
    """

    def __init__(
        self,
        vad: SileroVAD,
        endpointer: Endpointer,
        asr: WhisperASR,
        clock: Clock,
        emit: Callable[[object], None],
        continuation_ms: int = 700,
    ):
        self.vad = vad
        self.endpointer = endpointer
        self.asr = asr
        self.clock = clock
        self.emit = emit
        self.continuation = continuation_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._tasks: set[asyncio.Task] = set()
        self._held: _Held | None = None
        self._prefix: Segment | None = None  # held audio the next segment continues

    def feed(self, frame: AudioFrame) -> None:
        prob = self.vad(frame.samples)
        started, segment = self.endpointer.feed(frame.samples, frame.t, prob)
        if started:
            self.emit(SpeechStarted(t=self.clock.now()))
            if self._held is not None:  # the streamer went on: hear both parts as one
                self._held.resumed = True
                self._prefix, self._held = self._held.segment, None
        if segment is not None:
            if self._prefix is not None:
                segment = _join(self._prefix, segment)
                self._prefix = None
            self._start_asr(segment)
        held = self._held
        if held is not None and not self.endpointer.in_speech and frame.t + frame.duration >= held.deadline:
            self._held = None
            self._send(held.segment, held.text, held.t_asr_done, t_endpoint=held.deadline)

    def _start_asr(self, seg: Segment) -> None:
        self.clock.begin_work()
        task = asyncio.get_running_loop().create_task(self._transcribe(seg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transcribe(self, seg: Segment) -> None:
        try:
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(self._executor, self.asr.transcribe, seg.audio)
            t_done = self.clock.now()
            if self._prefix is not None or self.endpointer.in_speech:
                # Speech resumed while we were transcribing: this text is superseded
                # by the joined utterance (the prefix was set in feed()).
                if self._prefix is None:
                    self._prefix = seg
                return
            if _complete(text):
                self._send(seg, text, t_done, t_endpoint=seg.t_endpoint)
            else:
                self._held = _Held(seg, text, t_done, deadline=seg.t_end + self.continuation)
        finally:
            self.clock.end_work()

    def _send(self, seg: Segment, text: str, t_asr_done: float, t_endpoint: float) -> None:
        if text.strip().lower() in _NOISE_TRANSCRIPTS:
            return
        t_asr_done = max(t_asr_done, t_endpoint)
        self.emit(
            Utterance(
                text=text,
                t_start=seg.t_start,
                t_end=seg.t_end,
                t_endpoint=t_endpoint,
                t_asr_done=t_asr_done,
                t=self.clock.now(),
            )
        )

    async def drain(self) -> None:
        """End of input: finish transcriptions and send whatever is still held."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held.segment, held.text, held.t_asr_done, t_endpoint=max(held.deadline, held.t_asr_done))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _complete(text: str) -> bool:
    """Does this transcript sound finished? It ends a sentence and is more than a
    word or two ("Miko." is the streamer calling the co-host, not a whole request)."""
    return text.rstrip().endswith(_SENTENCE_END) and len(text.split()) >= 3


def _join(a: Segment, b: Segment) -> Segment:
    gap = np.zeros(max(0, int((b.t_start - a.t_end) * RATE)), dtype=np.float32)
    gap = gap[: RATE // 2]  # keep the pause short: Whisper only needs to hear a break
    return Segment(
        audio=np.concatenate([a.audio, gap, b.audio]),
        t_start=a.t_start,
        t_end=b.t_end,
        t_endpoint=b.t_endpoint,
    )
