"""Reply audio to a real sound device: a PulseAudio null sink, recorded from its monitor (integration)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import time
import uuid

import numpy as np
import pytest

from conftest import require_system, words
from vtuber.events import AudioChunk

# The Debian packages that turn these tests on: the server and pactl, PortAudio for
# sounddevice, and the ALSA plugin that gives PortAudio its "pulse" device.
PULSE_PACKAGES = "pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins"
PULSE_HINT = f"apt install {PULSE_PACKAGES} turns the speaker tests on"


def _portaudio() -> bool:
    # Looked up the way sounddevice does, without importing it: PortAudio lists its
    # devices once, at import, and the "pulse" device is only there once the server runs.
    return ctypes.util.find_library("portaudio") is not None


def _pulse_device() -> bool:
    import sounddevice as sd

    def listed() -> bool:
        return any(d["name"] == "pulse" for d in sd.query_devices())

    if not listed() and hasattr(sd, "_terminate"):
        # PortAudio lists devices when it starts: if sounddevice was imported before the
        # server ran, start it again to see the device now.
        sd._terminate()
        sd._initialize()
    return listed()


def require_pulseaudio() -> None:
    """Skip (fail under CI=true) unless pulseaudio, pactl and PortAudio are installed."""
    missing = [
        name
        for name, ok in (
            ("pulseaudio", shutil.which("pulseaudio")),
            ("pactl", shutil.which("pactl")),
            ("libportaudio2", _portaudio()),
        )
        if not ok
    ]
    require_system(f"PulseAudio and PortAudio (missing: {', '.join(missing)})", not missing, PULSE_HINT)


def _pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=10).stdout.strip()


@pytest.fixture(scope="module")
def null_sink():
    """A fresh null sink on a running PulseAudio server (started here if needed, as .ci/run does)."""
    require_pulseaudio()
    if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode != 0:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1"], check=True, timeout=20)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.1)
    old = {k: os.environ.get(k) for k in ("PULSE_SINK", "PULSE_SOURCE", "PULSE_SERVER")}
    # Clients find a root server through $XDG_CONFIG_HOME/pulse, which every test points at an
    # empty folder (conftest's user_config_dir): name the server's socket instead.
    info = _pactl("info").splitlines()
    server = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("Server String:")), "")
    if server.startswith("/"):
        os.environ["PULSE_SERVER"] = f"unix:{server}"
    require_system("PortAudio's ALSA 'pulse' device (missing: libasound2-plugins)", _pulse_device(), PULSE_HINT)
    name = f"vtuber_{uuid.uuid4().hex[:8]}"
    module = _pactl("load-module", "module-null-sink", f"sink_name={name}")
    os.environ["PULSE_SINK"], os.environ["PULSE_SOURCE"] = name, f"{name}.monitor"
    yield name
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _pactl("unload-module", module)


class Capture:
    """Records 16 kHz mono from the default (PULSE_SOURCE) input through sounddevice."""

    def __init__(self):
        import sounddevice as sd

        self.blocks = []
        self.stream = sd.InputStream(device="pulse", samplerate=16000, channels=1, dtype="float32", callback=self._cb)

    def _cb(self, indata, frames, t, status):
        self.blocks.append(indata[:, 0].copy())

    def __enter__(self):
        self.stream.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.stream.close()

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def test_speaker_plays_reply_audio_that_whisper_hears(null_sink, engine):
    from vtuber.outputs.speaker import SpeakerOutput

    text = "Hello chat, welcome back to the stream."
    pcm = engine.tts.synthesize(text)
    with Capture() as cap:
        speaker = SpeakerOutput("pulse", engine.tts.sample_rate)
        # Two clauses, as the voice stage delivers them.
        half = len(pcm) // 2
        speaker(AudioChunk(1, 0, pcm[:half], engine.tts.sample_rate, 0.0))
        speaker(AudioChunk(1, 1, pcm[half:], engine.tts.sample_rate, 0.1))
        speaker.close(drain=True)
    recorded = cap.audio
    assert np.abs(recorded).max() > 0.05, "nothing reached the null sink's monitor"
    assert words(engine.asr.transcribe(recorded)) == words(text)


def test_rehearse_with_speaker_plays_the_replies(null_sink, engine, tmp_path, capsys):
    from vtuber.cli import main

    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"t": 0.2, "user": "alice", "text": "hi Miko, do you like cats?"}\n', encoding="utf-8")
    with Capture() as cap:
        rc = main(["rehearse", "--chat", str(chat), "--fast", "--speaker", "pulse", "--out", str(tmp_path / "out"), "-q"])
    assert rc == 0, capsys.readouterr().err
    import json

    reply = json.loads((tmp_path / "out" / "timings.json").read_text())["turns"][0]["reply_text"]
    heard = set(words(engine.asr.transcribe(cap.audio)))
    said = [w for w in words(reply) if len(w) > 1] or words(reply)
    assert said, reply  # a reply is never empty (the greeting stands in for an empty generation)
    assert sum(w in heard for w in said) / len(said) >= 0.6, (reply, heard)
