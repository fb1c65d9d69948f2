"""Unit tests for audio at the boundary: any PCM or float WAV in as 16 kHz mono, WAVs out atomically."""

from __future__ import annotations

import os
import struct
import sys
import wave

import numpy as np
import pytest

from vtuber import audio
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


def riff(path, fmt: bytes, data: bytes, extra: bytes = b"") -> None:
    """A RIFF/WAVE file with the given fmt chunk body, `extra` chunks, then the data chunk."""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_float_wav_is_read(tmp_path):
    # IEEE-float WAV (format 3, what many editors export): read as the same audio as PCM.
    x = sine(440.0, 16000, 0.5, amp=0.7)
    pcm = tmp_path / "pcm.wav"
    write_pcm(pcm, x, 16000, 2)
    for dtype, bits in (("<f4", 32), ("<f8", 64)):
        fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * bits // 8, bits // 8, bits)
        p = tmp_path / f"float{bits}.wav"
        riff(p, fmt, x.astype(dtype).tobytes())
        np.testing.assert_allclose(read_wav_16k_mono(p), read_wav_16k_mono(pcm), atol=1e-4)


def test_float_wav_out_of_range_values_are_clipped_not_garbage(tmp_path):
    raw = np.array([0.5, 3.0, -3.0, np.nan, np.inf, -np.inf] * 100, dtype="<f4").tobytes()
    p = tmp_path / "wild.wav"
    riff(p, struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), raw)
    y = read_wav_16k_mono(p)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[:6], [0.5, 1.0, -1.0, 0.0, 1.0, -1.0], atol=1e-6)


@pytest.mark.parametrize("tag,name", [(6, "A-law"), (7, "mu-law"), (0x11, "IMA ADPCM"), (0x1234, "compressed")])
def test_compressed_wav_is_one_line_naming_the_encoding(tmp_path, tag, name):
    # A compressed encoding: a clear error, not garbage audio.
    p = tmp_path / "alaw.wav"
    riff(p, struct.pack("<HHIIHH", tag, 1, 8000, 8000, 1, 8), b"\x55" * 800)
    msg = user_error(p)
    assert "unsupported WAV encoding" in msg and name in msg and f"{tag:#06x}" in msg


# --------------------------------------------------------------------------- WAVE_FORMAT_EXTENSIBLE

GUID_TAIL = bytes.fromhex("0000 1000 8000 00aa00389b71")  # xxxxxxxx-0000-0010-8000-00aa00389b71
PCM_GUID = struct.pack("<I", 1) + GUID_TAIL
FLOAT_GUID = struct.pack("<I", 3) + GUID_TAIL


def extensible_fmt(channels: int, rate: int, bits: int, valid_bits: int | None = None, guid: bytes = PCM_GUID) -> bytes:
    """A 40-byte WAVE_FORMAT_EXTENSIBLE fmt chunk (format tag 65534), built byte by byte."""
    block = channels * bits // 8
    mask = {1: 0x4, 2: 0x3}.get(channels, 0)
    return struct.pack(
        "<HHIIHHHHI16s", 0xFFFE, channels, rate, rate * block, block, bits, 22, valid_bits or bits, mask, guid
    )


def stereo_48k(seconds: float = 0.5) -> np.ndarray:
    """Different audio left and right, so a swapped or misread channel shows."""
    return np.stack([sine(440.0, 48000, seconds, amp=0.6), sine(1000.0, 48000, seconds, amp=0.3)], axis=1)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_extensible_pcm_reads_like_plain_pcm(tmp_path, bits):
    x = stereo_48k()
    plain = tmp_path / "plain.wav"
    write_pcm(plain, x, 48000, bits // 8)
    ext = tmp_path / "ext.wav"
    # An odd-sized LIST chunk between fmt and data (padded to even), as editors write.
    info = b"INFOISFT" + struct.pack("<I", 5) + b"test\0"
    listing = b"LIST" + struct.pack("<I", len(info)) + info + b"\0"
    riff(ext, extensible_fmt(2, 48000, bits), encode(x, bits // 8), listing)
    assert ext.read_bytes()[20:22] == b"\xfe\xff"  # really format tag 65534
    if sys.version_info < (3, 12):
        with pytest.raises(wave.Error):  # what the stdlib reader says about it
            wave.open(str(ext), "rb")
    y = read_wav_16k_mono(ext)
    np.testing.assert_array_equal(y, read_wav_16k_mono(plain))  # the same samples
    assert y.dtype == np.float32 and len(y) == 8000
    # and they are the right ones: the mean of both channels, at 16 kHz
    expected = (sine(440.0, 16000, 0.5, amp=0.6) + sine(1000.0, 16000, 0.5, amp=0.3)) / 2
    tolerance = 0.02 if bits == 8 else 1e-3
    np.testing.assert_allclose(y[100:-100], expected[100:-100], atol=tolerance)


def test_extensible_24_bit_valid_in_32_bit_container(tmp_path):
    x = stereo_48k()
    plain = tmp_path / "plain.wav"
    write_pcm(plain, x, 48000, 3)
    # 24 valid bits left-justified in 32-bit words (what WASAPI captures write)
    words = (np.frombuffer(encode(x, 3), dtype=np.uint8).reshape(-1, 3).astype("<u4") << np.array([8, 16, 24])).sum(1)
    ext = tmp_path / "ext.wav"
    riff(ext, extensible_fmt(2, 48000, 32, valid_bits=24), words.astype("<u4").tobytes())
    np.testing.assert_allclose(read_wav_16k_mono(ext), read_wav_16k_mono(plain), atol=1e-6)


def test_extensible_float(tmp_path):
    x = stereo_48k()
    plain = tmp_path / "plain.wav"
    write_pcm(plain, x, 48000, 2)
    ext = tmp_path / "ext.wav"
    riff(ext, extensible_fmt(2, 48000, 32, guid=FLOAT_GUID), x.astype("<f4").tobytes())
    np.testing.assert_allclose(read_wav_16k_mono(ext), read_wav_16k_mono(plain), atol=1e-4)


def test_extensible_six_channels(tmp_path):
    x = np.stack([sine(440.0, 48000, 0.25, amp=0.6)] * 6, axis=1)
    ext = tmp_path / "surround.wav"
    riff(ext, extensible_fmt(6, 48000, 16), encode(x, 2))
    y = read_wav_16k_mono(ext)
    assert len(y) == 4000 and abs(peak_hz(y, HEARING_RATE) - 440.0) < 5.0


def test_extensible_with_other_sub_format_is_one_line(tmp_path):
    alaw = struct.pack("<I", 6) + GUID_TAIL
    p = tmp_path / "alaw.wav"
    riff(p, extensible_fmt(1, 8000, 8, guid=alaw), b"\x55" * 800)
    msg = user_error(p)
    assert "A-law" in msg and "WAVE_FORMAT_EXTENSIBLE" in msg
    vendor = bytes(range(16))  # a GUID that is not of the xxxxxxxx-0000-0010-... family
    riff(p, extensible_fmt(1, 8000, 8, guid=vendor), b"\x55" * 800)
    msg = user_error(p)
    assert "sub-format 03020100-0504-0706-0809-0a0b0c0d0e0f" in msg


def test_extensible_header_too_short(tmp_path):
    p = tmp_path / "short.wav"
    riff(p, extensible_fmt(2, 48000, 16)[:18], b"\0" * 400)
    assert "EXTENSIBLE" in user_error(p)


def test_streamed_wav_with_unknown_data_size_reads_to_the_end(tmp_path):
    x = sine(440.0, 16000, 0.5)
    p = tmp_path / "streamed.wav"
    riff(p, struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16), encode(x, 2))
    data = bytearray(p.read_bytes())
    i = data.index(b"data")
    data[i + 4 : i + 8] = b"\xff\xff\xff\xff"  # what a writer to a pipe leaves
    p.write_bytes(bytes(data))
    assert len(read_wav_16k_mono(p)) == 8000


# --------------------------------------------------------------------------- what is not a WAV file


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_is_refused_at_once(tmp_path):
    p = tmp_path / "pipe.wav"
    os.mkfifo(p)  # opening it for reading would wait for a writer forever
    assert "not a regular file" in user_error(p)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_dev_zero_is_refused_at_once():
    assert "not a regular file" in user_error("/dev/zero")


@pytest.mark.timeout(10)
def test_file_over_2_gib_is_refused_before_reading(tmp_path):
    p = tmp_path / "huge.wav"
    write_pcm(p, np.zeros(100), 16000, 2)
    with open(p, "r+b") as f:
        f.truncate(audio.MAX_WAV_BYTES + 1)  # sparse: no disk used, nothing to read
    msg = user_error(p)
    assert "too large" in msg and f"at most {2 << 30}" in msg


def test_longer_than_24_hours_is_refused(tmp_path, monkeypatch):
    assert audio.MAX_WAV_SECONDS == 24 * 3600
    monkeypatch.setattr(audio, "MAX_WAV_SECONDS", 1)  # 24 hours of audio would be gigabytes
    p = tmp_path / "long.wav"
    write_pcm(p, np.zeros(8000 * 2), 8000, 1)
    assert "too long" in user_error(p)
    write_pcm(p, np.zeros(8000), 8000, 1)
    assert len(read_wav_16k_mono(p)) == 16000


def test_error_line_quotes_at_most_80_characters(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"x" * 5_000_000)
    msg = user_error(p)
    assert len(msg) < len(str(p)) + 200


def test_too_low_rate_is_rejected(tmp_path):
    p = tmp_path / "slow.wav"
    write_pcm(p, np.zeros(100), 1000, 2)
    assert "unsupported" in user_error(p)


def test_missing_file(tmp_path):
    assert "not found" in user_error(tmp_path / "gone.wav")


def test_directory_instead_of_wav(tmp_path):
    assert "folder" in user_error(tmp_path)


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
