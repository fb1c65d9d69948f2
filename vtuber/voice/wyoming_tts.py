"""Text to speech on a Wyoming TTS server (`models.voice = "tcp://host:port"`), the local
Piper voice as fallback (see `vtuber.wyoming_client`).

One `synthesize` event a clause; the server's audio chunks (wyoming-piper sends them as
each sentence is synthesized) are gathered into the clause's audio, at the local voice's
sample rate (resampled if the server's voice has another), so the voice stage, the
recorder and the speaker see the same stream whichever side spoke.
"""

from __future__ import annotations

import numpy as np

from vtuber.audio import resample
from vtuber.voice.tts import speakable
from vtuber.wyoming_client import ServiceError, WyomingService


class WyomingTTS:
    def __init__(self, url: str, local, voice_name: str = "", connect_timeout_s: float = 2.0, timeout_s: float = 10.0, retry_after_s: float = 30.0):
        self.service = WyomingService(url, "models.voice", "TTS", connect_timeout_s, timeout_s, retry_after_s)
        self.local = local
        self.voice_name = voice_name
        self.sample_rate = local.sample_rate

    def _remote(self, text: str) -> np.ndarray:
        from wyoming.tts import Synthesize, SynthesizeVoice

        parts: list[np.ndarray] = []
        fmt = {}

        def collect(ev) -> None:
            if ev.type == "audio-start":
                fmt.update(ev.data)
            elif ev.type == "audio-chunk" and ev.payload:
                width, channels = int(ev.data.get("width", 2)), int(ev.data.get("channels", 1))
                if width != 2:
                    raise ServiceError(f"{self.service.where()} sent {8 * width}-bit audio (16-bit expected)")
                pcm = np.frombuffer(ev.payload, dtype="<i2")
                if channels > 1:
                    pcm = pcm.reshape(-1, channels)[:, 0]
                fmt.setdefault("rate", ev.data.get("rate"))
                parts.append(pcm)

        voice = SynthesizeVoice(name=self.voice_name) if self.voice_name else None
        self.service.exchange([Synthesize(text=text, voice=voice)], until=lambda e: e.type == "audio-stop", collect=collect)
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return resample(samples, int(fmt.get("rate") or self.sample_rate), self.sample_rate)

    def synthesize(self, text: str) -> np.ndarray:
        text = speakable(text)
        if not text:
            return np.zeros(0, dtype=np.int16)
        if self.service.usable():
            try:
                samples = self._remote(text)
                self.service.counts["remote"] += 1
                return samples
            except ServiceError as e:
                self.service.fall_back(e, "Piper voice")
        self.service.counts["local"] += 1
        return self.local.synthesize(text)

    def warm(self) -> None:
        self.local.warm()
        try:
            self.service.describe()
        except ServiceError as e:
            self.service.fall_back(e, "Piper voice")

    def report(self) -> dict:
        return self.service.report("Piper (local)")
