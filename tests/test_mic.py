"""The live microphone source: the callback-to-loop handoff and resampler (unit), then a real
PulseAudio null sink whose monitor is the mic, with a Piper line played into it and Whisper
listening to what `MicSource` emitted (integration)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from conftest import PULSE_HINT, portaudio_installed, pulse_null_sink, require_system, words
from vtuber.errors import UserError
from vtuber.sources.mic import FRAME, FrameHandoff, StreamResampler



# --- the resampler (for devices that refuse 16 kHz) ---------------------------------------


@pytest.mark.parametrize("src", [48000, 44100, 22050, 8000])
def test_resampler_gives_the_same_stream_whatever_the_block_sizes(src):
    t = np.arange(src * 2) / src
    x = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32)
    whole = StreamResampler(src, 16000)(x)
    r = StreamResampler(src, 16000)
    rng = np.random.default_rng(src)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 3000))
        parts.append(r(x[i : i + n]))
        i += n
    y = np.concatenate(parts)
    assert len(y) == len(whole) == 32000
    np.testing.assert_array_equal(y, whole)
    # The tones come through, in time (the filter's delay is known).
    tt = np.arange(len(y)) / 16000 - r.delay_s
    ref = 0.5 * np.sin(2 * np.pi * 1000 * tt) + 0.3 * np.sin(2 * np.pi * 3100 * tt)
    assert np.abs(y[1000:-10] - ref[1000:-10]).max() < 2e-3


def test_resampler_removes_what_16k_cannot_hold():
    t = np.arange(48000) / 48000
    y = StreamResampler(48000, 16000)(np.sin(2 * np.pi * 9000 * t).astype(np.float32))
    rms = np.sqrt(np.mean(y[500:] ** 2))
    assert 20 * np.log10(rms + 1e-12) < -60  # a 9 kHz tone would alias to 7 kHz


# --- the handoff: callback blocks in, timed frames out, bounded ---------------------------


class FakeTime:
    def __init__(self, t: float = 10.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_flood_drops_the_oldest_frames_and_counts_them():
    now, wakes = FakeTime(), []
    h = FrameHandoff(16000, 1, max_frames=8, now=now, wake=lambda: wakes.append(1))
    for i in range(20):  # the loop never drains: 20 blocks of one frame each
        now.t += FRAME / 16000
        h.push(np.full((FRAME, 1), i / 100, dtype=np.float32))
    assert h.dropped_frames == 12 and h.buffered_frames == 8
    assert len(wakes) == 1  # one wake-up pending, however many blocks came
    items = h.take()
    assert [round(float(s[0]) * 100) for s, _, _ in items] == list(range(12, 20))  # the newest kept, in order
    ts = [t for _, t, _ in items]
    assert np.allclose(np.diff(ts), FRAME / 16000)
    # Draining re-arms the wake-up.
    h.push(np.zeros((FRAME, 1), np.float32))
    assert len(wakes) == 2 and len(h.take()) == 1


async def test_a_flood_from_the_audio_thread_while_the_loop_is_busy():
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    scheduled = []

    def wake():
        scheduled.append(1)
        loop.call_soon_threadsafe(ready.set)

    h = FrameHandoff(16000, 1, max_frames=8, now=time.perf_counter, wake=wake)

    def audio_thread():
        for i in range(50):
            h.push(np.full((FRAME, 1), i, dtype=np.float32))

    th = threading.Thread(target=audio_thread)
    th.start()
    th.join()  # blocks the event loop, as a long synchronous stage would
    await asyncio.wait_for(ready.wait(), 5)
    items = h.take()
    assert [int(s[0]) for s, _, _ in items] == list(range(42, 50))
    assert h.dropped_frames == 42 and len(scheduled) == 1
    assert all(b > a for (_, a, _), (_, b, _) in zip(items, items[1:]))


def test_handoff_downmixes_resamples_cuts_frames_and_counts_overflows():
    now = FakeTime()
    h = FrameHandoff(48000, 2, max_frames=1000, now=now, wake=lambda: None)
    t = np.arange(48000) / 48000
    left = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # a mic on the first input only
    for i in range(0, 48000, 1000):  # blocks that do not line up with frames
        now.t += 1000 / 48000
        h.push(stereo[i : i + 1000], overflow=(i == 5000))
    items = h.take()
    assert h.overflows == 1
    assert all(s.shape == (FRAME,) and s.dtype == np.float32 for s, _, _ in items)
    assert len(items) == 16000 // FRAME  # one second at 16 kHz, less the partial frame still held
    y = np.concatenate([s for s, _, _ in items])
    assert abs(np.sqrt(np.mean(y[1000:] ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # averaged: half the level
    spectrum = np.abs(np.fft.rfft(y[1000:9000]))
    assert abs(np.argmax(spectrum) * 16000 / 8000 - 440) <= 2


def test_frame_times_follow_the_earliest_arrivals_and_only_increase():
    """Callbacks arrive late by a random few ms (sometimes 150 ms): `t` keeps to the capture time."""
    rng = np.random.default_rng(7)
    now = FakeTime()
    h = FrameHandoff(16000, 1, max_frames=10_000, now=now, wake=lambda: None)
    start = 5.0  # session time of the first sample
    for j in range(300):
        late = 0.150 if j % 50 == 25 else float(rng.uniform(0.0005, 0.02))
        now.t = start + (j + 1) * FRAME / 16000 + late
        h.push(np.zeros((FRAME, 1), np.float32))
    ts = np.array([t for _, t, _ in h.take()])
    truth = start + np.arange(300) * FRAME / 16000
    assert np.all(np.diff(ts) > 0)
    err = ts[20:] - truth[20:]  # after the first callbacks have set the envelope
    assert err.min() > -0.001 and err.max() < 0.005, (err.min(), err.max())


def test_frame_times_move_on_when_audio_went_missing():
    """Half a second lost without an overflow flag: within about a second `t` is on time again."""
    now = FakeTime()
    h = FrameHandoff(16000, 1, max_frames=10_000, now=now, wake=lambda: None)
    start, lost = 5.0, 0.5
    for j in range(200):
        now.t = start + (j + 1) * FRAME / 16000 + (lost if j >= 100 else 0.0) + 0.001
        h.push(np.zeros((FRAME, 1), np.float32))
    ts = np.array([t for _, t, _ in h.take()])
    truth = start + np.arange(200) * FRAME / 16000 + np.where(np.arange(200) >= 100, lost, 0.0)
    assert np.all(np.diff(ts) > 0)
    assert np.abs(ts[150:] - truth[150:]).max() < 0.005
    # And an overflow PortAudio reports moves it at once.
    h2 = FrameHandoff(16000, 1, max_frames=10_000, now=now, wake=lambda: None)
    for j in range(20):
        now.t = start + (j + 1) * FRAME / 16000 + (lost if j >= 10 else 0.0)
        h2.push(np.zeros((FRAME, 1), np.float32), overflow=(j == 10))
    ts2 = np.array([t for _, t, _ in h2.take()])
    assert abs(ts2[10] - (start + 10 * FRAME / 16000 + lost)) < 0.001


# --- a real PulseAudio null sink: its monitor is the mic ----------------------------------


def require_portaudio() -> None:
    require_system("the PortAudio library (missing: libportaudio2)", portaudio_installed(), PULSE_HINT)


@pytest.fixture(scope="module")
def mic_sink():
    """A fresh null sink; recording its monitor through `MicSource` hears what plays into it."""
    with pulse_null_sink("vtuber_mic", tools=("pulseaudio", "pactl", "paplay")) as name:
        yield name


def test_an_unknown_device_is_one_line_naming_it():
    require_portaudio()
    from vtuber.sources.mic import MicSource

    for bad in ("no-such-mic-xyz", "987"):
        with pytest.raises(UserError) as e:
            MicSource(bad)
        msg = str(e.value)
        assert "\n" not in msg and bad in msg and msg.startswith("--mic "), msg


def test_devices_lists_pulse_and_the_null_sink(mic_sink):
    from rich.console import Console

    from vtuber.devices import devices_table, list_devices, pulse_sources

    devices = list_devices()
    pulse = [d for d in devices if d["name"] == "pulse"]
    assert pulse and pulse[0]["max_input_channels"] > 0 and pulse[0]["hostapi"] == "ALSA"
    assert sum(d["default_input"] for d in devices) <= 1 and sum(d["default_output"] for d in devices) <= 1
    assert {"index", "name", "hostapi", "max_input_channels", "max_output_channels", "default_samplerate"} <= set(
        pulse[0]
    )
    sources = pulse_sources()
    assert f"{mic_sink}.monitor" in sources
    console = Console(record=True, width=200)
    console.print(devices_table(devices, sources))
    text = console.export_text()
    assert "pulse" in text and f"{mic_sink}.monitor" in text


async def test_the_mic_refuses_the_fast_clock(mic_sink):
    from vtuber.clock import FastClock
    from vtuber.sources.mic import MicSource

    mic = MicSource(f"{mic_sink}.monitor")
    with pytest.raises(UserError, match="real-time clock"):
        await mic.run(FastClock(), lambda ev: None)
    assert mic.state == "closed"


async def _record_while_playing(sink: str, wav, mic_factory):
    from vtuber.clock import Clock

    mic = mic_factory()
    clock = Clock()
    clock.start()
    frames = []
    task = asyncio.create_task(mic.run(clock, frames.append))
    try:
        # PulseAudio can take a second or two to deliver a monitor's first audio.
        deadline = time.monotonic() + 10
        while mic.state != "listening":
            assert time.monotonic() < deadline, f"no audio from the mic: {mic.stats()}"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        t_play = clock.now()
        proc = await asyncio.create_subprocess_exec("paplay", f"--device={sink}", str(wav))
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.sleep(0.8)
        stats = mic.stats()
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return mic, frames, t_play, stats


async def test_the_mic_hears_a_piper_line_played_into_the_sink(mic_sink, engine, speak16k, tmp_path):
    from vtuber.audio import write_wav
    from vtuber.sources.mic import MicSource

    text = "Hello chat, welcome back to the stream."
    line = speak16k(text)
    wav = tmp_path / "line.wav"
    write_wav(wav, line, 16000)
    mic, frames, t_play, stats = await _record_while_playing(mic_sink, wav, lambda: MicSource(f"{mic_sink}.monitor"))

    assert mic.state == "closed"
    assert mic.sample_rate == 16000 and mic.channels == 1  # PulseAudio converts: nothing to resample here
    assert frames and all(f.samples.shape == (FRAME,) and f.samples.dtype == np.float32 for f in frames)
    assert all(f.sample_rate == 16000 for f in frames)
    ts = np.array([f.t for f in frames])
    assert np.all(np.diff(ts) > 0), "frame times must increase"
    assert abs(np.median(np.diff(ts)) - FRAME / 16000) < 0.001
    assert np.diff(ts).max() < 0.25  # no hole: at most a startup correction of the time offset
    assert mic.dropped_frames == 0
    assert stats["handoff_max_ms"] < 500

    audio = np.concatenate([f.samples for f in frames])
    assert np.abs(audio).max() > 0.05, "nothing reached the null sink's monitor"
    # The line starts after it was played, within PulseAudio's latency.
    rms = np.sqrt(np.mean(np.stack([f.samples for f in frames]) ** 2, axis=1))
    onset = ts[np.argmax(rms > 0.01)]
    steps = np.diff(ts)
    print(f"mic: {stats}; frame steps {steps.min():.4f}..{steps.max():.4f} s; onset - play {onset - t_play:.3f} s")
    assert t_play - 0.05 <= onset <= t_play + 1.0, (t_play, onset)
    assert words(engine.asr.transcribe(audio)) == words(text)


async def test_the_pulse_device_with_pulse_source_set(mic_sink, speak16k, engine, tmp_path, monkeypatch):
    """The plain `pulse` device records whatever PULSE_SOURCE names (how a user picks a source by hand)."""
    from vtuber.audio import write_wav
    from vtuber.sources.mic import MicSource

    monkeypatch.setenv("PULSE_SOURCE", f"{mic_sink}.monitor")
    text = "Thanks for the raid everyone."
    wav = tmp_path / "line.wav"
    write_wav(wav, speak16k(text), 16000)
    _, frames, _, stats = await _record_while_playing(mic_sink, wav, lambda: MicSource("pulse"))
    audio = np.concatenate([f.samples for f in frames])
    assert stats["dropped_frames"] == 0
    heard = words(engine.asr.transcribe(audio))
    assert sum(w in heard for w in words(text)) >= len(words(text)) - 1, heard
