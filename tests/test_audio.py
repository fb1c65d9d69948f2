"""Unit tests for audio at the boundary: any PCM WAV in as 16 kHz mono, WAVs out atomically."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from vtuber.audio import HEARING_RATE, read_wav_16k_mono, resample, to_int16, write_wav
from vtuber.errors import UserError


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def encode(x: np.ndarray, width: int) -> bytes:
    """Float [-1, 1] (frames x channels, interleaved on flatten) to little-endian PCM."""
    x = np.clip(x, -1.0, 1.0)
    if width == 1:
        return (np.round(x * 127.0) + 128).astype(np.uint8).tobytes()
    if width == 2:
        return np.round(x * 32767.0).astype("<i2").tobytes()
    if width == 3:
        v = np.round(x * 8388607.0).astype(np.int32).ravel()
        b = np.empty((len(v), 3), dtype=np.uint8)
        b[:, 0] = v & 0xFF
        b[:, 1] = (v >> 8) & 0xFF
        b[:, 2] = (v >> 16) & 0xFF
        return b.tobytes()
    if width == 4:
        return np.round(x * 2147483647.0).astype("<i4").tobytes()
    raise ValueError(width)


def write_pcm(path, x: np.ndarray, rate: int, width: int) -> None:
    """x: (frames,) for mono or (frames, channels)."""
    channels = 1 if x.ndim == 1 else x.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(encode(x, width))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def user_error(path) -> str:
    with pytest.raises(UserError) as info:
        read_wav_16k_mono(path)
    msg = str(info.value)
    assert "\n" not in msg, "a UserError is shown as one line"
    assert str(path) in msg, "the message names the file"
    return msg


def test_16k_mono_16bit_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(-0.9, 0.9, 8000) * 32767) / 32768  # exactly representable
    p = tmp_path / "a.wav"
    write_pcm(p, x * 32768 / 32767, 16000, 2)
    y = read_wav_16k_mono(p)
    assert y.dtype == np.float32
    assert y.shape == (8000,)
    np.testing.assert_allclose(y, x, atol=1e-4)


@pytest.mark.parametrize(
    "rate,width,channels,freq",
    [
        (44100, 2, 2, 440.0),
        (48000, 3, 1, 1000.0),
        (48000, 3, 2, 1000.0),
        (8000, 1, 1, 300.0),
        (22050, 1, 2, 700.0),
        (32000, 4, 1, 2000.0),
    ],
)
def test_converted_to_16k_mono_keeping_duration_and_pitch(tmp_path, rate, width, channels, freq):
    seconds = 1.5
    mono = sine(freq, rate, seconds, amp=0.6)
    x = mono if channels == 1 else np.stack([mono] * channels, axis=1)
    p = tmp_path / f"in_{rate}_{width}_{channels}.wav"
    write_pcm(p, x, rate, width)
    y = read_wav_16k_mono(p)
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) / HEARING_RATE - seconds) < 1e-3
    assert abs(peak_hz(y, HEARING_RATE) - freq) < 2.0
    # Level survives the conversion (8-bit is coarse, hence the tolerance).
    rms = float(np.sqrt(np.mean(y[1000:-1000] ** 2)))
    assert abs(rms - 0.6 / np.sqrt(2)) < 0.02


def test_stereo_channels_are_averaged(tmp_path):
    left = sine(440.0, 16000, 0.5, amp=0.8)
    x = np.stack([left, np.zeros_like(left)], axis=1)
    p = tmp_path / "lr.wav"
    write_pcm(p, x, 16000, 2)
    np.testing.assert_allclose(read_wav_16k_mono(p), left / 2, atol=1e-4)


def test_8bit_silence_is_zero(tmp_path):
    p = tmp_path / "quiet.wav"
    write_pcm(p, np.zeros(1600), 16000, 1)
    y = read_wav_16k_mono(p)
    assert np.all(y == 0.0)


def test_24bit_negative_full_scale(tmp_path):
    p = tmp_path / "neg.wav"
    write_pcm(p, np.array([-1.0, -0.5, 0.0, 0.5, 1.0] * 200), 16000, 3)
    y = read_wav_16k_mono(p)
    np.testing.assert_allclose(y[:5], [-1.0, -0.5, 0.0, 0.5, 1.0], atol=1e-4)


def test_resample_identity_and_empty():
    x = np.arange(10, dtype=np.float64)
    assert resample(x, 16000, 16000).dtype == np.float32
    assert len(resample(np.zeros(0), 48000, 16000)) == 0


def test_empty_wav(tmp_path):
    p = tmp_path / "empty.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    assert "no audio" in user_error(p)


def test_truncated_wav(tmp_path):
    p = tmp_path / "cut.wav"
    write_pcm(p, sine(440.0, 16000, 1.0), 16000, 2)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 10000])  # the header still promises 16000 frames
    msg = user_error(p)
    assert "truncated" in msg and "16000" in msg


def test_truncated_header(tmp_path):
    p = tmp_path / "stub.wav"
    write_pcm(p, sine(440.0, 16000, 0.1), 16000, 2)
    p.write_bytes(p.read_bytes()[:30])  # cut inside the fmt chunk
    msg = user_error(p)
    # The reason must say something, not end in an empty "()".
    assert "()" not in msg
    assert "truncated" in msg or "empty" in msg


def test_zero_byte_file(tmp_path):
    p = tmp_path / "zero.wav"
    p.write_bytes(b"")
    user_error(p)


def test_text_file_named_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n")
    assert "not a readable PCM WAV" in user_error(p)


def test_float_wav_is_rejected(tmp_path):
    # IEEE-float WAV (format 3): a clear error, not garbage audio.
    import struct

    samples = np.zeros(100, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    p = tmp_path / "float.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    user_error(p)


def test_too_low_rate_is_rejected(tmp_path):
    p = tmp_path / "slow.wav"
    write_pcm(p, np.zeros(100), 1000, 2)
    assert "unsupported" in user_error(p)


def test_missing_file(tmp_path):
    assert "not found" in user_error(tmp_path / "gone.wav")


def test_directory_instead_of_wav(tmp_path):
    user_error(tmp_path)


def test_to_int16_clips():
    y = to_int16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]))
    assert y.dtype == np.int16
    assert y.tolist() == [-32767, -32767, 0, 16383, 32767, 32767]
    same = np.array([1, 2], dtype=np.int16)
    assert to_int16(same) is same


def test_write_wav_round_trip_and_no_temp_files(tmp_path):
    out = tmp_path / "sub" / "dir" / "reply.wav"  # parents are created
    x = sine(440.0, 22050, 0.5).astype(np.float32)
    write_wav(out, x, 22050)
    assert [q.name for q in out.parent.iterdir()] == ["reply.wav"]
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 22050, len(x))
        back = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(back, to_int16(x))
    y = read_wav_16k_mono(out)
    assert abs(len(y) / HEARING_RATE - 0.5) < 1e-3
    assert abs(peak_hz(y, HEARING_RATE) - 440.0) < 3.0


def test_write_wav_replaces_existing_file(tmp_path):
    out = tmp_path / "reply.wav"
    write_wav(out, np.zeros(100, dtype=np.int16), 16000)
    write_wav(out, np.full(50, 1000, dtype=np.int16), 16000)
    with wave.open(str(out), "rb") as w:
        assert w.getnframes() == 50
    assert [q.name for q in tmp_path.iterdir()] == ["reply.wav"]


def test_write_wav_failure_leaves_old_file_and_no_temp(tmp_path):
    out = tmp_path / "reply.wav"
    write_wav(out, np.full(100, 7, dtype=np.int16), 16000)
    before = out.read_bytes()
    with pytest.raises(Exception):
        write_wav(out, np.zeros(10, dtype=np.int16), 0)  # an invalid rate fails mid-write
    assert out.read_bytes() == before  # a reader never sees a half-written file
    assert [q.name for q in tmp_path.iterdir()] == ["reply.wav"]
