"""Audio at the boundary: read any PCM or float WAV into 16 kHz mono float32, write WAVs atomically;
the one resampler."""

from __future__ import annotations

import os
import struct
import tempfile
import uuid
import wave
from pathlib import Path

import numpy as np

from vtuber.errors import UserError, quote, read_bytes

HEARING_RATE = 16000


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """The one resampler for whole clips: band-limited (FFT), exact for whole files, no extra
    dependency. Float in, float32 out; int16 in, int16 out. The microphone's block-by-block
    stream has its own (`vtuber.sources.mic.StreamResampler`): its timing depends on the
    filter's delay.

    libsoxr (`soxr.resample`) was 4 to 35 times faster on a 4 s clause; it is not used yet
    because whole clips are resampled off the hot path (tests, bench, red team, a WAV file's
    rate, a Wyoming voice's rate) and the hearing tests' endpointing has to be compared
    with it on a quiet machine first."""
    x = np.asarray(x)
    is_pcm = x.dtype == np.int16
    if src_rate == dst_rate or len(x) == 0:
        return x if is_pcm else x.astype(np.float32, copy=False)
    n_out = max(1, int(round(len(x) * dst_rate / src_rate)))
    spectrum = np.fft.rfft(x.astype(np.float64))
    keep = n_out // 2 + 1
    if keep <= len(spectrum):
        spectrum = spectrum[:keep]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(keep - len(spectrum), dtype=spectrum.dtype)])
    y = np.fft.irfft(spectrum, n_out) * (n_out / len(x))
    if is_pcm:
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return y.astype(np.float32)


MAX_WAV_BYTES = 2 << 30  # 2 GiB: a rehearsal recording, not an archive
MAX_WAV_SECONDS = 24 * 3600  # the longest rehearsal session
MAX_WAV_RATE = 768_000

WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# A WAVE_FORMAT_EXTENSIBLE sub-format GUID is xxxxxxxx-0000-0010-8000-00aa00389b71, the
# x's being a plain format tag (1 = PCM, 3 = IEEE float); these are its last 12 bytes.
_GUID_TAIL = bytes.fromhex("0000 1000 8000 00aa00389b71")
_FORMAT_NAMES = {2: "MS ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x55: "MP3"}


def _pcm_to_float(raw, width: int, channels: int, is_float: bool = False) -> np.ndarray:
    if is_float:
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8")
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0).astype(np.float32)
    elif width == 1:
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


def _wav_chunks(data: bytes, p: Path) -> tuple[bytes, memoryview, int]:
    """The fmt chunk, the data chunk as present in the file, and the data size its header
    promises. A data size of 0xFFFFFFFF (a WAV streamed to a pipe) means 'to the end'."""
    bad = f"{p}: not a readable PCM WAV file"
    if not data:
        raise UserError(f"{bad} (empty file)")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if len(data) < 12 and b"RIFFxxxxWAVE".startswith(data[:4]):
            raise UserError(f"{bad} (truncated header)")
        raise UserError(f"{bad} (starts with {quote(data[:12])}, not a RIFF/WAVE header)")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + size > len(data):
                raise UserError(f"{bad} (truncated or damaged fmt chunk)")
            fmt = data[body : body + size]
        elif cid == b"data":
            if fmt is None:
                raise UserError(f"{bad} (data chunk before the fmt chunk)")
            if size == 0xFFFFFFFF:
                size = len(data) - body
            return fmt, memoryview(data)[body : body + size], size
        pos = body + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise UserError(f"{bad} (truncated header: no fmt chunk)")
    raise UserError(f"{bad} (truncated: no data chunk)")


def _sample_format(fmt: bytes, p: Path) -> tuple[int, int, int, bool]:
    """(channels, bytes per sample, rate, is_float) from a fmt chunk; one line if unsupported."""
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    code = tag
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            raise UserError(f"{p}: not a readable PCM WAV file (WAVE_FORMAT_EXTENSIBLE header too short)")
        guid = fmt[24:40]
        if guid[4:] != _GUID_TAIL:
            sub = uuid.UUID(bytes_le=bytes(guid))
            raise UserError(f"{p}: unsupported WAV encoding (WAVE_FORMAT_EXTENSIBLE sub-format {sub}); save it as PCM")
        code = int.from_bytes(guid[:4], "little")
    if code not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        name = _FORMAT_NAMES.get(code, "compressed")
        extensible = " in WAVE_FORMAT_EXTENSIBLE" if tag == WAVE_FORMAT_EXTENSIBLE else ""
        raise UserError(f"{p}: unsupported WAV encoding: {name} (format {code:#06x}{extensible}); save it as PCM")
    is_float = code == WAVE_FORMAT_IEEE_FLOAT
    ok_bits = bits in (32, 64) if is_float else 8 <= bits <= 32
    if not ok_bits or channels < 1 or not 4000 <= rate <= MAX_WAV_RATE:
        kind = "float" if is_float else "bit"
        raise UserError(f"{p}: unsupported WAV format ({channels} ch, {bits} {kind}, {rate} Hz)")
    return channels, (bits + 7) // 8, rate, is_float


def read_wav_16k_mono(path: str | Path) -> np.ndarray:
    """Read a WAV of any rate, sample width and channel count as 16 kHz mono float32.

    Reads integer PCM (8 to 32 bit) and 32/64-bit IEEE float, plain or in a
    WAVE_FORMAT_EXTENSIBLE header. Empty, truncated, compressed, oversized (over 2 GiB or
    24 hours) files and things that are not regular files are a `UserError` naming the file.
    """
    p = Path(path)
    data = read_bytes(p, "WAV file", max_bytes=MAX_WAV_BYTES)
    fmt, audio, promised = _wav_chunks(data, p)
    channels, width, rate, is_float = _sample_format(fmt, p)
    block = width * channels
    n = promised // block
    if n == 0 or len(audio) == 0:
        raise UserError(f"{p}: WAV file has no audio")
    if len(audio) < n * block:
        got = len(audio) // block
        raise UserError(f"{p}: WAV file is truncated ({got} of {n} frames present)")
    if n > MAX_WAV_SECONDS * rate:
        hours = n / rate / 3600
        raise UserError(f"{p}: WAV file too long ({hours:.1f} hours of audio; at most {MAX_WAV_SECONDS / 3600:g})")
    x = _pcm_to_float(audio[: n * block], width, channels, is_float)
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
