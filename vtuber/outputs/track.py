"""The session's reply audio on one timeline, written to a WAV file as the session goes.

A four-hour session is about 635 MB of 22.05 kHz 16-bit mono audio: built as one array
at the end it took 2.45 GB of memory while the report was written. `WavTrack` keeps
none of it in memory: each clause is written where it played (silence before it is
written as zeros, a clause that overlaps what is already there is mixed in place), so
memory stays flat whatever the length, and the file is ready the moment the session
ends (the header is finished and the file moved into the report, never copied).

A failed write (a full disk, a file-size limit) stops the track, keeps what was written,
and says why once (`failed`); the session goes on.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger("vtuber")

HEADER = 44  # bytes of a canonical PCM WAV header
_ZEROS_S = 1.0  # silence is written this many seconds at a time


def bytes_per_hour(sample_rate: int) -> int:
    """What an hour of the timeline takes on disk (16-bit mono)."""
    return int(sample_rate) * 2 * 3600


def _header(sample_rate: int, frames: int) -> bytes:
    data = frames * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16, b"data", data,
    )


class WavTrack:
    """Mono int16 audio placed on a timeline, streamed to `path` (None: an anonymous
    temporary file). `place(start_s, samples)`; `save(dest, min_duration_s)` finishes it."""

    def __init__(self, path: str | Path | None = None, sample_rate: int = 22050):
        self.path = Path(path) if path is not None else None
        self.sample_rate = int(sample_rate)
        self.frames = 0
        self.failed = ""  # why writing stopped, in one line ("" while all is well)
        self.why = ""  # the system's reason alone ("File too large")
        self._file = None

    def _open(self):
        if self._file is None:
            if self.path is not None:
                # Unbuffered: writes are large already, and a failed one must fail now, not at close.
                self._file = open(self.path, "w+b", buffering=0)  # noqa: SIM115 - kept open for the session
            else:
                self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
            self._file.write(_header(self.sample_rate, 0))
        return self._file

    def _fail(self, e: OSError) -> None:
        self.why = e.strerror or str(e)
        self.failed = f"the reply audio could not be written further ({e.strerror or e}); kept the first {self.frames / self.sample_rate:.0f} s"
        log.warning("%s", self.failed)

    def place(self, start_s: float, samples: np.ndarray) -> None:
        """Put `samples` (int16) at `start_s` on the timeline, mixed with what is there."""
        if self.failed or not len(samples):
            return
        x = np.asarray(samples, dtype=np.int16)
        i = max(int(round(start_s * self.sample_rate)), 0)
        try:
            f = self._open()
            self._silence_to(f, i)
            overlap = min(self.frames - i, len(x))
            if overlap > 0:  # mix into audio already written (clip once, as a sum would)
                f.seek(HEADER + 2 * i)
                old = np.frombuffer(f.read(2 * overlap), dtype="<i2").astype(np.int32)
                mixed = np.clip(old + x[:overlap], -32768, 32767).astype("<i2")
                f.seek(HEADER + 2 * i)
                f.write(mixed.tobytes())
                x = x[overlap:]
            if len(x):
                f.seek(HEADER + 2 * self.frames)
                f.write(x.astype("<i2").tobytes())
                self.frames += len(x)
        except OSError as e:
            self._fail(e)

    def _silence_to(self, f, frame: int) -> None:
        if frame <= self.frames:
            return
        f.seek(HEADER + 2 * self.frames)
        step = int(_ZEROS_S * self.sample_rate)
        zeros = bytes(2 * step)
        while self.frames < frame:
            n = min(step, frame - self.frames)
            f.write(zeros[: 2 * n])
            self.frames += n

    def pad(self, duration_s: float) -> None:
        """Silence to `duration_s` (the timeline covers the whole session)."""
        if self.failed:
            return
        try:
            self._silence_to(self._open(), int(duration_s * self.sample_rate) + 1)
        except OSError as e:
            self._fail(e)

    def save(self, dest: str | Path, min_duration_s: float = 0.0) -> None:
        """Finish the WAV (silence to `min_duration_s`, the header's sizes) and put it at `dest`:
        moved when the track is a named file on the same disk, else copied in blocks."""
        self.pad(min_duration_s)
        f = self._open()
        f.seek(0)
        f.write(_header(self.sample_rate, self.frames))
        f.flush()
        f.truncate(HEADER + 2 * self.frames)
        if self.path is not None:
            f.close()
            self._file = None
            os.replace(self.path, dest)
            self.path = Path(dest)
            return
        f.seek(0)
        with open(dest, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)

    def read(self) -> np.ndarray:
        """The whole track as one array (for tests and short sessions only)."""
        if self._file is None:
            return np.zeros(0, dtype=np.int16)
        self._file.flush()
        self._file.seek(HEADER)
        return np.frombuffer(self._file.read(2 * self.frames), dtype="<i2").astype(np.int16)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
