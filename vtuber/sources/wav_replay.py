"""Replay a recording of the streamer as if it came from the microphone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vtuber.audio import HEARING_RATE
from vtuber.clock import Clock
from vtuber.events import AudioFrame

FRAME = 512  # 32 ms at 16 kHz: the Silero VAD window


class WavReplaySource:
    """Emits 32 ms frames of 16 kHz mono audio, each when its last sample would have been heard."""

    def __init__(self, samples: np.ndarray, start: float = 0.0, frame: int = FRAME):
        self.samples = samples.astype(np.float32, copy=False)
        self.start = start
        self.frame = frame

    @property
    def duration(self) -> float:
        return len(self.samples) / HEARING_RATE

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        clock.add_source()
        try:
            n = len(self.samples)
            for i in range(0, n, self.frame):
                chunk = self.samples[i : i + self.frame]
                if len(chunk) < self.frame:
                    chunk = np.pad(chunk, (0, self.frame - len(chunk)))
                t0 = self.start + i / HEARING_RATE
                await clock.sleep_until(t0 + self.frame / HEARING_RATE)
                emit(AudioFrame(samples=chunk, t=t0))
            # A little trailing silence so the endpointer can close the last utterance.
            silence = np.zeros(self.frame, dtype=np.float32)
            t_end = self.start + n / HEARING_RATE
            for k in range(40):
                t0 = t_end + k * self.frame / HEARING_RATE
                await clock.sleep_until(t0 + self.frame / HEARING_RATE)
                emit(AudioFrame(samples=silence, t=t0))
        finally:
            clock.source_done()
