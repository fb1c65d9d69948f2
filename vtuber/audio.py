"""Audio at the boundary: read any PCM WAV into 16 kHz mono float32, write WAVs atomically."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

from vtuber.errors import UserError

HEARING_RATE = 16000


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling (FFT): exact for whole files, no extra dependency."""
    if src_rate == dst_rate or len(x) == 0:
        return x.astype(np.float32, copy=False)
    n_out = max(1, int(round(len(x) * dst_rate / src_rate)))
    spectrum = np.fft.rfft(x.astype(np.float64))
    keep = n_out // 2 + 1
    if keep <= len(spectrum):
        spectrum = spectrum[:keep]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(keep - len(spectrum), dtype=spectrum.dtype)])
    y = np.fft.irfft(spectrum, n_out) * (n_out / len(x))
    return y.astype(np.float32)


def _pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(width)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x


def read_wav_16k_mono(path: str | Path) -> np.ndarray:
    """Read a PCM WAV of any rate, sample width and channel count as 16 kHz mono float32.

    Empty, truncated or non-PCM files are a `UserError` naming the file.
    """
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise UserError(f"{p}: WAV file not found") from None
    except (wave.Error, EOFError) as e:
        raise UserError(f"{p}: not a readable PCM WAV file ({str(e) or 'empty or truncated header'})") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read WAV file ({e.strerror or e})") from None
    if width not in (1, 2, 3, 4) or channels < 1 or rate < 4000:
        raise UserError(f"{p}: unsupported WAV format ({channels} ch, {8 * width} bit, {rate} Hz)")
    block = width * channels
    if n == 0 or len(raw) == 0:
        raise UserError(f"{p}: WAV file has no audio")
    if len(raw) < n * block:
        got = len(raw) // block
        raise UserError(f"{p}: WAV file is truncated ({got} of {n} frames present)")
    x = _pcm_to_float(raw[: n * block], width, channels)
    return resample(x, rate, HEARING_RATE)


def to_int16(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write mono int16 WAV atomically: a reader never sees a half-written file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(to_int16(samples).tobytes())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the report is an ordinary file
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
