"""Play reply audio to a sound device through sounddevice (PortAudio), imported lazily."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from vtuber.errors import UserError
from vtuber.events import AudioChunk


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise UserError("--speaker needs sounddevice: pip install 'vtuber[speaker]'") from None
    except OSError as e:  # PortAudio library missing
        raise UserError(f"--speaker needs the PortAudio library (Debian: apt install libportaudio2): {e}") from None
    return sounddevice


class SpeakerOutput:
    """A callback-driven output stream fed from a queue of reply audio; counts underruns."""

    def __init__(self, device: str | int | None, sample_rate: int, block: int = 1024):
        sd = _sounddevice()
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            sd.check_output_settings(device=device, channels=1, dtype="int16", samplerate=sample_rate)
        except (ValueError, sd.PortAudioError) as e:
            raise UserError(f"--speaker {device if device is not None else '(default)'}: {e}") from None
        self._buf: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._pending = 0
        self.underruns = 0
        self._playing = False
        self.stream = sd.OutputStream(
            device=device, channels=1, dtype="int16", samplerate=sample_rate, blocksize=block, callback=self._callback
        )
        self.stream.start()

    def _callback(self, outdata, frames, _time, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            while filled < frames and self._buf:
                head = self._buf[0]
                n = min(frames - filled, len(head))
                out[filled : filled + n] = head[:n]
                filled += n
                if n == len(head):
                    self._buf.popleft()
                else:
                    self._buf[0] = head[n:]
            self._pending -= filled
        out[filled:] = 0

    def __call__(self, ev: object) -> None:
        if isinstance(ev, AudioChunk) and len(ev.samples):
            with self._lock:
                self._buf.append(ev.samples)
                self._pending += len(ev.samples)

    @property
    def pending_s(self) -> float:
        return self._pending / self.stream.samplerate

    def close(self, drain: bool = True) -> None:
        """Stop the stream; by default first let queued audio finish playing."""
        if drain:
            deadline = time.monotonic() + self.pending_s + 2.0
            while self._pending > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(min(0.3, self.stream.latency + 0.1))  # the device's own buffer
        self.stream.stop()
        self.stream.close()
