"""Speech recognition on a Wyoming ASR server (`models.asr = "tcp://host:port"`), the
local Whisper as fallback (see `vtuber.wyoming_client`).

The server returns text only: the `Transcript` has no decoder evidence (None), so the
hallucination filter judges it by its text and length alone; the names of the persona
and the streamer are still corrected by sound.
"""

from __future__ import annotations

import numpy as np

from vtuber.hearing.asr import RATE, Transcript, correct_names
from vtuber.wyoming_client import WyomingService

CHUNK_SAMPLES = RATE // 2  # half a second of audio an event


class WyomingASR:
    def __init__(self, url: str, local, language: str = "en", connect_timeout_s: float = 2.0, timeout_s: float = 10.0, retry_after_s: float = 30.0):
        self.service = WyomingService(url, "models.asr", "ASR", connect_timeout_s, timeout_s, retry_after_s)
        self.local = local
        self.language = language

    # controls.py sets these on a persona switch: they belong to the fallback too.
    @property
    def prompt(self) -> str:
        return self.local.prompt

    @prompt.setter
    def prompt(self, value: str) -> None:
        self.local.prompt = value

    @property
    def names(self) -> list[str]:
        return self.local.names

    @names.setter
    def names(self, value) -> None:
        self.local.names = list(value)

    def _remote(self, audio: np.ndarray) -> str:
        from wyoming.asr import Transcribe
        from wyoming.audio import AudioChunk, AudioStart, AudioStop

        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        fmt = {"rate": RATE, "width": 2, "channels": 1}
        events = [Transcribe(language=self.language or None), AudioStart(**fmt)]
        step = CHUNK_SAMPLES * 2
        events += [AudioChunk(audio=pcm[i : i + step], **fmt) for i in range(0, len(pcm), step)]
        events.append(AudioStop())
        ev = self.service.exchange(events, until=lambda e: e.type == "transcript")
        return correct_names(str(ev.data.get("text", "")).strip(), self.names)

    def hear(self, audio: np.ndarray) -> Transcript:
        duration = len(audio) / RATE
        return self.service.call(lambda: Transcript(self._remote(audio), duration_s=duration), lambda: self.local.hear(audio), "Whisper")

    def transcribe(self, audio: np.ndarray) -> str:
        return self.hear(audio).text

    def warm(self) -> None:
        """The local model warmed; the server asked what it offers (a warning if it is down)."""
        self.service.warm(self.local, "Whisper")

    def report(self) -> dict:
        return self.service.report("Whisper (local)")
