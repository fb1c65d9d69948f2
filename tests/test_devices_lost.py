"""Sound devices that go away mid-stream and come back (a real PulseAudio server, null sinks
unloaded and loaded again): never a frozen session, never a mic silently moved to another
source (above all not the monitor of her own output), a clear state on the console, the dock
and in the report, and input and output back by themselves when the device returns."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid

import numpy as np
import pytest

from conftest import pactl, pulse_null_sink, words
from stream_helpers import ToneTTS, chat, scripted_session
from vtuber.audio import write_wav
from vtuber.clock import Clock
from vtuber.devices import stream_devices
from vtuber.events import AudioFrame, ClausePlaying, DeviceState, PlaybackFinished
from vtuber.sources import ChatScriptSource

RATE = 16000
TOOLS = ("pulseaudio", "pactl", "paplay", "pacmd")


class Sink:
    """A null sink that a test can unplug (unload) and plug in again under the same name."""

    def __init__(self, name: str):
        self.name = name
        self.module = ""
        self.plug()

    def plug(self) -> None:
        self.module = pactl("load-module", "module-null-sink", f"sink_name={self.name}")

    def unplug(self) -> None:
        if self.module:
            pactl("unload-module", self.module)
            self.module = ""


@pytest.fixture
def pulse():
    """A running PulseAudio server (PULSE_SERVER set for the test); the sinks are the test's own."""
    with pulse_null_sink("vtuber_l4", TOOLS) as anchor:
        sinks: list[Sink] = []

        def make(prefix: str) -> Sink:
            s = Sink(f"{prefix}_{uuid.uuid4().hex[:8]}")
            sinks.append(s)
            return s

        yield make, anchor
        for s in sinks:
            try:
                s.unplug()
            except subprocess.CalledProcessError:
                pass


async def _until(cond, timeout: float, what) -> None:
    """Wait for `cond()`; `what` (text, or a function giving it) says what was awaited."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        await asyncio.sleep(0.05)


async def _paplay(sink: str, wav) -> None:
    proc = await asyncio.create_subprocess_exec("paplay", f"--device={sink}", "--latency-msec=20", str(wav))
    assert await asyncio.wait_for(proc.wait(), 30) == 0


def _session_with_speaker(replies, per_word: float = 0.12):
    from vtuber.outputs.speaker import SpeakerPlayback

    session = scripted_session(replies, per_word=per_word)
    playback = SpeakerPlayback(session.clock, session.emit, "pulse", ToneTTS.sample_rate)
    # The session was built with simulated playback: put the real speaker in its place.
    session.observers[session.observers.index(session.playback.feed)] = playback.feed
    session.playback = playback
    session.turns.playback = playback
    session.director.speaker_busy_until = playback.busy_until
    return session, playback


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sink unloaded", "stream killed"])
async def test_a_lost_speaker_goes_on_as_captions_and_comes_back_by_itself(pulse, how, monkeypatch):
    make, _ = pulse
    spk = make("vtuber_l4_spk")
    monkeypatch.setenv("PULSE_SINK", spk.name)
    replies = [f"Reply number {i} is here for you." for i in range(1, 9)]
    session, playback = _session_with_speaker(replies)
    msgs = [chat(0.5 + 1.6 * i, f"question {w}?", user=f"v{i}") for i, w in enumerate("one two three four five six seven eight".split())]
    events: list = []
    session.observers.append(lambda ev: isinstance(ev, (DeviceState, ClausePlaying, PlaybackFinished)) and events.append((time.monotonic(), ev)))

    async def fault():
        await _until(lambda: any(isinstance(e, PlaybackFinished) for _, e in events), 30, "a first reply heard")
        if how == "sink unloaded":
            spk.unplug()
        else:
            for index, _ in stream_devices("sink-inputs"):
                subprocess.run(["pacmd", "kill-sink-input", str(index)], capture_output=True, timeout=10)
            spk.unplug()  # and the device with it: the stream cannot just reconnect
        await _until(lambda: any(isinstance(e, DeviceState) and e.state == "lost" for _, e in events), 10, "the loss to be seen")
        await asyncio.sleep(3.0)  # replies go on while it is gone
        spk.plug()
        await _until(lambda: any(isinstance(e, DeviceState) and e.state == "back" for _, e in events), 10, "the speaker back")

    task = asyncio.create_task(fault())
    await asyncio.wait_for(session.run([ChatScriptSource(msgs)]), 90)
    await task
    lost = next(t for t, e in events if isinstance(e, DeviceState) and e.state == "lost")
    back = next(t for t, e in events if isinstance(e, DeviceState) and e.state == "back")
    finished = [(t, e) for t, e in events if isinstance(e, PlaybackFinished)]
    assert any(lost < t < back for t, _ in finished), "no reply went on as captions while the speaker was gone"
    assert any(t > back for t, _ in finished), "no reply after the speaker came back"
    assert len(session.recorder.finished()) == len(msgs)  # never frozen: every message answered
    assert session.director.balance()["answered"] == len(msgs)
    assert [d.split(" ", 1)[1].split(":")[0] for d in session.device_errors] == ["speaker lost", "speaker back"]
    assert spk.name in session.device_errors[0]
    # Back on her own sink, not another.
    assert not playback.speaker.lost


@pytest.mark.timeout(360)
async def test_a_lost_mic_is_never_moved_to_another_source_and_is_heard_again_when_back(pulse, engine, speak16k, tmp_path, monkeypatch):
    """With the real models: her own output sink exists (its monitor is where PulseAudio would
    move the capture); the mic's source is unloaded, chat is still answered, nothing is heard
    from anywhere else, and when the source returns the streamer is heard and answered."""
    from vtuber.config import load_config
    from vtuber.pipeline import Engine, Session
    from vtuber.sources.mic import MicSource

    make, _ = pulse
    mic_sink, her_output = make("vtuber_l4_mic"), make("vtuber_l4_her")
    monkeypatch.setenv("PULSE_SINK", her_output.name)
    line = "Miko, what snacks do you like?"
    wav = tmp_path / "line.wav"
    write_wav(wav, np.concatenate([speak16k(line), np.zeros(RATE // 2, np.float32)]), RATE)
    cfg = load_config(overrides={"plugins": {"enabled": []}})
    eng = Engine(cfg, engine.persona, engine.paths, engine.llm, engine.asr, engine.tts, engine.vad, engine.canary)
    session = Session(eng, Clock(), plugins=[])
    mic = MicSource(f"{mic_sink.name}.monitor", retry_s=0.5)
    frames_while_lost = []
    states: list[tuple[float, DeviceState]] = []
    session.observers.append(lambda ev: isinstance(ev, DeviceState) and states.append((time.monotonic(), ev)))
    feed = session.hearing.feed

    def counting_feed(ev: AudioFrame):
        if mic.state.startswith("lost"):
            frames_while_lost.append(ev)
        feed(ev)

    session.hearing.feed = counting_feed
    chat_src = ChatScriptSource([chat(4.0, "hi Miko, how are you today?", user="ann")])
    task = asyncio.create_task(session.run([mic, chat_src]))
    try:
        await _until(lambda: mic.state in ("listening", "stalled"), 15, "the mic")
        await asyncio.sleep(0.5)
        before = (mic._watch and mic._watch.changes, mic._seen_changes)
        mic_sink.unplug()
        await _until(
            lambda: mic.state.startswith("lost"), 10,
            lambda: f"the mic to be lost ({mic.state}; changes {before} -> {mic._watch and mic._watch.changes}; "
            f"streams {stream_devices('source-outputs')})",
        )
        assert [e.state for _, e in states] == ["lost"] and mic_sink.name in states[0][1].detail
        # PulseAudio would record from another source now (her own output's monitor among them): not us.
        assert all(name == f"{mic_sink.name}.monitor" for _, name in stream_devices("source-outputs")), stream_devices("source-outputs")
        await _paplay(her_output.name, wav)  # her own output: never heard as the streamer
        await _until(
            lambda: session.recorder.finished(), 60,
            lambda: f"the chat answered while the mic is gone ({session.director.balance()}, "
            f"talking {session.hearing.streamer_talking}, {session.recorder.dropped}, {session.hearing._tasks})",
        )
        mic_sink.plug()
        await _until(lambda: mic.state in ("listening", "stalled", "starting"), 10, lambda: f"the mic back ({mic.state}, {mic.device_errors})")
        await asyncio.sleep(0.5)
        await _paplay(mic_sink.name, wav)
        await _until(lambda: session.recorder.heard, 90, "the streamer heard again")
        await _until(
            lambda: any(r.kind == "speech" for r in session.recorder.finished()), 60,
            lambda: f"the streamer answered (heard {[u.text for u in session.recorder.heard]}, dropped {session.recorder.dropped}, "
            f"queued {session.director.queued()}, current {session.turns.current}, talking {session.hearing.streamer_talking}, "
            f"held {session.hearing._held is not None}, tasks {session.hearing._tasks}, mic {mic.state}, {session.device_errors})",
        )
        session.stop("test over")
        await asyncio.wait_for(task, 15)
    finally:
        if not task.done():
            task.cancel()
    assert frames_while_lost == []
    assert [e.state for _, e in states] == ["lost", "back"]
    heard = words(" ".join(u.text for u in session.recorder.heard))
    assert sum(w in heard for w in words(line)) / len(words(line)) >= 0.5, heard
    assert len(session.recorder.heard) == 1  # her own output, played while the mic was gone, was never heard
    assert any("mic lost" in d for d in session.device_errors) and any("mic back" in d for d in session.device_errors)


def test_a_device_state_is_on_the_console_the_dock_and_in_the_report_until_it_is_back():
    """Unit: the session keeps what is degraded now (console panel, dock) and every change (report)."""
    import io

    from rich.console import Console

    from vtuber.outputs.live_console import LiveConsole
    from vtuber.outputs.overlay import OverlayServer

    session = scripted_session(["Hi."])
    out = io.StringIO()
    live = LiveConsole(session.recorder, "Miko", Console(file=out, width=200), session=session)
    dock = OverlayServer(port=0)
    dock.attach(session)
    session.observers.append(live.handle)
    lost = DeviceState("speaker", "lost", "pulse (sink cohost): the playback stream stopped; captions only until it is back", 1.0)
    session.emit(lost)
    assert dock.dock_state()["warnings"] == [f"speaker lost: {lost.detail}"]
    assert "speaker lost: pulse (sink cohost)" in out.getvalue()
    panel = io.StringIO()
    Console(file=panel, width=200).print(live._render())
    assert "captions only until it is back" in panel.getvalue()
    session.emit(DeviceState("speaker", "back", "pulse (sink cohost): playing again", 4.0))
    assert dock.dock_state()["warnings"] == []
    assert session.device_errors == [f"1.0s speaker lost: {lost.detail}", "4.0s speaker back: pulse (sink cohost): playing again"]
