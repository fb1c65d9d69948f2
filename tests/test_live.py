"""Live mode on real audio devices: PulseAudio null sinks as the streamer's mic and the
co-host's speaker (integration; .ci/run installs PulseAudio).

- a virtual mic: a line played into a null sink is heard through its monitor, answered,
  and the answer comes out of the speaker sink (recorded from its monitor, transcribed);
- barge-in: a streamer line played while the co-host talks silences the speaker sink
  (the delay is measured on the recordings and printed) and is answered next;
- echo: the speaker looped back into the mic does not stop her and is not heard as
  the streamer;
- `vtuber run` stopped by SIGTERM exits 0 within 2 s with its report written.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import pactl, pulse_null_sink, words
from vtuber.audio import write_wav
from vtuber.clock import Clock
from vtuber.events import RETRACTED, Announcement, PlaybackStarted

RATE = 16000


@pytest.fixture(scope="module")
def sinks():
    """Two null sinks: the streamer's mic (its monitor is the mic) and the co-host's speaker."""
    tools = ("pulseaudio", "pactl", "paplay", "parec")
    with pulse_null_sink("vtuber_mic", tools) as mic, pulse_null_sink("vtuber_spk", tools) as spk:
        yield mic, spk




class Recording:
    """`parec` of a sink's monitor as 16 kHz mono int16; `t0` is when it started (monotonic)."""

    def __init__(self, sink: str, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            ["parec", f"--device={sink}.monitor", "--format=s16le", f"--rate={RATE}", "--channels=1",
             "--latency-msec=10", "--raw"],
            stdout=open(path, "wb"),
        )
        self.t0 = time.monotonic()

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(10)
        return np.frombuffer(self.path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


def _envelope(x: np.ndarray, win: int = 160) -> np.ndarray:
    n = len(x) // win
    return np.sqrt(np.mean(x[: n * win].reshape(n, win) ** 2, axis=1))  # 10 ms RMS


def _session(engine, spk_sink, **cfg_overrides):
    from vtuber.config import load_config
    from vtuber.outputs.speaker import SpeakerPlayback
    from vtuber.pipeline import Engine, Session

    cfg = load_config(overrides={"plugins": {"enabled": []}, **cfg_overrides})
    eng = Engine(cfg, engine.persona, engine.paths, engine.llm, engine.asr, engine.tts, engine.vad, engine.canary)
    return Session(eng, Clock(), plugins=[], playback=lambda c, e: SpeakerPlayback(c, e, "pulse", engine.tts.sample_rate))


def answered(session):
    """Finished turns, without those answered early and taken back (the streamer went on)."""
    return [r for r in session.recorder.finished() if r.cancel_reason != RETRACTED]


async def _until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _paplay(sink: str, wav: Path) -> float:
    """Play a WAV into a sink; returns when it started (monotonic)."""
    t = time.monotonic()
    proc = await asyncio.create_subprocess_exec("paplay", f"--device={sink}", "--latency-msec=10", str(wav))
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    return t


async def test_the_mic_is_heard_and_answered_through_the_speaker(sinks, engine, speak16k, tmp_path, monkeypatch):
    from vtuber.sources.mic import MicSource

    mic_sink, spk_sink = sinks
    line = "Miko, what snacks do you like?"
    wav = tmp_path / "line.wav"
    write_wav(wav, np.concatenate([speak16k(line), np.zeros(RATE // 2, np.float32)]), RATE)
    monkeypatch.setenv("PULSE_SINK", spk_sink)
    session = _session(engine, spk_sink)
    mic = MicSource(f"{mic_sink}.monitor")
    rec = Recording(spk_sink, tmp_path / "spk.raw")
    task = asyncio.create_task(session.run([mic]))
    try:
        await _until(lambda: mic.state == "listening", 15, "the mic")
        await _paplay(mic_sink, wav)
        await _until(lambda: any(r.play_end and not r.cut_short for r in answered(session)), 60, "a reply heard to the end")
        session.stop("test over")
        await asyncio.wait_for(task, 10)
    finally:
        if not task.done():
            task.cancel()
        spk = rec.stop()
    heard = [u.text for u in session.recorder.heard]
    got = set(words(" ".join(heard)))
    assert heard and sum(w in got for w in words(line)) / len(words(line)) >= 0.5, heard
    r = answered(session)[0]
    assert r.kind == "speech" and r.t_first_heard is not None and r.t_first_heard >= r.t_first_audio
    assert np.abs(spk).max() > 0.05, "nothing reached the speaker sink"
    said = [w for w in words(r.reply_text) if len(w) > 2]
    back = set(words(engine.asr.transcribe(spk)))
    assert said and sum(w in back for w in said) / len(said) >= 0.6, (r.reply_text, back)


async def test_barge_in_silences_the_speaker_and_the_streamer_is_answered_next(sinks, engine, speak16k, tmp_path, monkeypatch):
    from vtuber.sources.mic import MicSource

    mic_sink, spk_sink = sinks
    line = "Wait Miko, stop. What game should we play?"
    wav = tmp_path / "line.wav"
    write_wav(wav, np.concatenate([speak16k(line), np.zeros(RATE // 2, np.float32)]), RATE)
    monkeypatch.setenv("PULSE_SINK", spk_sink)
    session = _session(engine, spk_sink, hearing={"echo_guard": "off"})  # separate sinks: no echo path
    mic = MicSource(f"{mic_sink}.monitor")
    frames = []

    class TappedMic:  # what the program heard, frame by frame, on the session clock
        async def run(self, clock, emit):
            await mic.run(clock, lambda ev: (frames.append(ev), emit(ev)))

    # A fixed line, not a sampled reply: it is long on every machine, so the streamer's line
    # always lands while she is talking.
    long_line = (
        "Let me tell you about my favourite tea shop. It sits at the end of a quiet street, "
        "the owner knows every leaf by name, and on rainy days the windows fog up so much "
        "that the whole room smells of jasmine and toast and old books."
    )

    class Line:
        async def run(self, clock, emit):
            await clock.sleep_until(0.5)
            emit(Announcement(long_line, clock.now(), "amy", "test"))

    chat = Line()
    marks: dict[str, float] = {}

    def mark(ev):
        name = type(ev).__name__
        if name in ("PlaybackStarted", "SpeechStarted", "TurnCancelled") and name not in marks:
            marks[name] = ev.t

    session.observers.append(mark)
    rec_spk = Recording(spk_sink, tmp_path / "spk.raw")
    task = asyncio.create_task(session.run([TappedMic(), chat]))
    try:
        await _until(lambda: "PlaybackStarted" in marks, 60, "the co-host to start talking")
        await asyncio.sleep(1.0)
        t_play = session.clock.now()
        await _paplay(mic_sink, wav)
        await _until(lambda: any(r.kind == "speech" and r.play_end and not r.cut_short for r in answered(session)), 60, "the answer to the streamer")
        session.stop("test over")
        await asyncio.wait_for(task, 10)
    finally:
        if not task.done():
            task.cancel()
        spk = rec_spk.stop()
    recs = answered(session)
    story = next(r for r in recs if r.kind == "line")
    assert story.cut_short and story.cancel_reason == "barge_in", [(r.input_text, r.cancel_reason) for r in recs]
    assert story.heard_text and long_line.startswith(story.heard_text[:30]) and len(story.heard_text) < len(long_line)
    nxt = recs[recs.index(story) + 1]
    assert nxt.kind == "speech" and "game" in words(nxt.input_text)
    # The speaker sink really went quiet for a while after the cut (and spoke again after).
    env_spk = _envelope(spk)
    assert np.any(np.convolve(env_spk < 0.003, np.ones(30), "valid") == 30), "the speaker never went silent"
    # How long from the streamer's first sound to silence, on the program's own clock: the
    # first loud mic frame after the line was played -> the cut, plus one output block and
    # the latencies the devices report (mic in, speaker out).
    onset = next(f.t for f in frames if f.t >= t_play - 0.05 and np.sqrt(np.mean(f.samples**2)) > 0.01)
    cut = marks["TurnCancelled"]
    speaker = session.playback.speaker
    figure = (cut - onset) + 256 / speaker.rate + speaker.latency_s + mic.input_latency_s
    print(
        f"\nbarge-in: {figure * 1000:.0f} ms from the streamer's onset to silence (target 200 ms): "
        f"detected and cut {1000 * (cut - onset):.0f} ms after the first loud mic frame, "
        f"+ {1000 * 256 / speaker.rate:.0f} ms block + {1000 * speaker.latency_s:.0f} ms speaker latency "
        f"+ {1000 * mic.input_latency_s:.0f} ms mic latency"
    )
    (Path(os.environ.get("VTUBER_MEASURE_DIR", tmp_path)) / "barge_in_ms.txt").write_text(f"{figure * 1000:.0f}\n")
    assert 0 < cut - onset < 1.0  # the 200 ms target is measured and reported, not asserted (shared machines)


async def test_her_own_voice_looped_into_the_mic_neither_stops_her_nor_is_heard(sinks, engine, tmp_path, monkeypatch):
    from vtuber.sources.mic import MicSource

    mic_sink, spk_sink = sinks
    loop_module = pactl("load-module", "module-loopback", f"source={spk_sink}.monitor", f"sink={mic_sink}", "latency_msec=40")
    try:
        monkeypatch.setenv("PULSE_SINK", spk_sink)
        session = _session(engine, spk_sink)
        mic = MicSource(f"{mic_sink}.monitor")
        class Line:  # a fixed line: the same length of her voice on every machine
            async def run(self, clock, emit):
                await clock.sleep_until(0.5)
                emit(Announcement("Thanks for the follow, Amy! Welcome in, grab a seat, and tell me what you are playing tonight.", clock.now(), "amy", "test"))

        chat = Line()
        playing = []
        session.observers.append(lambda ev: playing.append(ev) if isinstance(ev, PlaybackStarted) else None)
        levels: list[float] = []  # the mic's level while she speaks: her voice, looped back

        async def sample_mic():
            while True:
                if playing:
                    levels.append(mic.level_db)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(session.run([mic, chat]))
        sampler = asyncio.create_task(sample_mic())
        try:
            await _until(lambda: any(r.play_end for r in answered(session)), 60, "the reply heard to the end")
            await asyncio.sleep(1.5)  # any echo utterance has been endpointed and judged by now
            sampler.cancel()
            session.stop("test over")
            await asyncio.wait_for(task, 10)
        finally:
            if not task.done():
                task.cancel()
    finally:
        pactl("unload-module", loop_module)
    recs = answered(session)
    assert [r.kind for r in recs] == ["line"] and not recs[0].cut_short, [(r.kind, r.cancel_reason) for r in recs]
    assert [u.text for u in session.recorder.heard] == []
    # The loop really carried her voice into the mic, and the echo guard is what kept it out.
    assert levels and max(levels) > -45, f"the loopback never reached the mic (peak {max(levels, default=-200):.0f} dB)"
    assert session.echo.onsets_ignored + session.echo.transcripts_dropped >= 1


# Distinct questions: near-duplicates would be merged into one answer.
DISTINCT_QUESTIONS = [
    "what is your favourite tea?", "do you like rainy days?", "what game should we play next?",
    "how was your week?", "can you sing us a song?", "what is the best pizza topping?",
    "do you have a pet?", "what did you eat today?", "are cats better than dogs?", "what music do you like?",
    "what is your dream holiday?", "can you tell a joke?", "do you like the ocean?", "what book are you reading?",
    "how do you relax?", "what is your favourite colour?", "do you play chess?", "what makes you laugh?",
    "what is your favourite season?", "do you like mornings?",
]


@pytest.mark.timeout(300)
def test_vtuber_run_stops_on_sigterm_within_2_s_with_its_report(sinks, tmp_path):
    mic_sink, spk_sink = sinks
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(json.dumps({"t": 1.0 + 2 * i, "user": f"v{i}", "text": f"Miko, {q}"}) + "\n" for i, q in enumerate(DISTINCT_QUESTIONS)),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    env = {**os.environ, "PULSE_SINK": spk_sink, "COLUMNS": "120"}
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vtuber", "run", "--chat-script", str(chat), "--speaker", "pulse", "--out", str(out), "-q"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        # The second reply's first line: a reply has been heard and another is under way.
        deadline = time.monotonic() + 180
        while (tmp_path / "run.log").read_text(errors="replace").count(" answers ") < 2:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "vtuber run never answered twice"
            time.sleep(0.1)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "run.log").read_text(errors="replace")
    print(f"\nvtuber run: exit {rc} {took:.2f} s after SIGTERM")
    assert rc == 0, text[-2000:]
    assert took <= 2.0, took
    assert sorted(p.name for p in out.iterdir()) == ["replies.wav", "timeline.png", "timings.json", "transcript.md"]
    timings = json.loads((out / "timings.json").read_text())
    assert timings["turns"] and "stopped (SIGTERM)" in text
    assert any(t["t_first_heard"] is not None for t in timings["turns"])
