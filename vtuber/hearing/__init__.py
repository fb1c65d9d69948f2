"""Hearing: VAD and endpointing on the streamer's audio, then ASR on each utterance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.events import AudioFrame, SpeechStarted, Utterance
from vtuber.hearing.asr import WhisperASR
from vtuber.hearing.vad import Endpointer, Segment, SileroVAD

__all__ = ["Hearing", "WhisperASR", "SileroVAD", "Endpointer"]

# Filler Whisper likes to invent on noise; never answer these alone.
_NOISE_TRANSCRIPTS = {"", ".", "you", "thank you.", "thanks for watching!", "[music]", "(music)"}


class Hearing:
    """Consumes `AudioFrame`s, emits `SpeechStarted` and `Utterance` events.

    VAD runs inline (about 0.1 ms a frame); ASR runs in its own worker thread so the
    event loop never blocks and frames keep flowing while an utterance is transcribed.
    """

    def __init__(self, vad: SileroVAD, endpointer: Endpointer, asr: WhisperASR, clock: Clock, emit: Callable[[object], None]):
        self.vad = vad
        self.endpointer = endpointer
        self.asr = asr
        self.clock = clock
        self.emit = emit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._tasks: set[asyncio.Task] = set()

    def feed(self, frame: AudioFrame) -> None:
        prob = self.vad(frame.samples)
        started, segment = self.endpointer.feed(frame.samples, frame.t, prob)
        if started:
            self.emit(SpeechStarted(t=self.clock.now()))
        if segment is not None:
            self.clock.begin_work()
            task = asyncio.get_running_loop().create_task(self._transcribe(segment))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _transcribe(self, seg: Segment) -> None:
        try:
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(self._executor, self.asr.transcribe, seg.audio)
            t_done = self.clock.now()
            if text.strip().lower() not in _NOISE_TRANSCRIPTS:
                self.emit(
                    Utterance(
                        text=text,
                        t_start=seg.t_start,
                        t_end=seg.t_end,
                        t_endpoint=seg.t_endpoint,
                        t_asr_done=t_done,
                        t=t_done,
                    )
                )
        finally:
            self.clock.end_work()

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
