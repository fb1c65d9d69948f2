"""Shared fixtures: the real bundled models, loaded once per test session.

Also:
- `require_system(what, ok, hint)`: a test that needs a system piece (PulseAudio,
  Chromium) skips with one clear reason when the piece is missing, and fails with that
  same reason when the environment says `CI=true` (CI must prove everything).
- The `models` marker goes on every test that uses the real bundled models (the
  `engine` / `speak16k` fixtures, or the modules in `MODEL_MODULES`), so
  `pytest -m "not models"` runs the unit tests alone. A test without the marker that
  tries to load a real model fails at once and says so.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import re
import shutil
import subprocess
import time
import uuid

import numpy as np
import pytest

from vtuber.audio import HEARING_RATE, resample
from vtuber.config import load_config
from vtuber.mind.persona import load_persona

# Test modules whose tests load the real models without the session fixtures (CLI runs,
# an Engine.load of their own, `vtuber run` in a subprocess, which the guard below cannot see).
MODEL_MODULES = {"test_models.py", "test_persona_live.py", "test_live.py"}
MODEL_FIXTURES = {"engine", "speak16k"}


@pytest.fixture(autouse=True)
def user_config_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own empty user config folder (platformdirs honours
    XDG_CONFIG_HOME): no test reads or writes the real one."""
    d = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(d))
    return d / "vtuber"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_system(what: str, ok: bool, hint: str) -> None:
    """Skip (or, under CI=true, fail) the calling test or fixture when a system piece is missing.

    `what` names the piece and what of it is missing ("PulseAudio (missing: pactl)",
    "Chromium (no chromium on PATH)"), `ok` says whether it is there, `hint` says how to
    turn the tests on (the Debian packages). The reason is one line, the same whether the
    test skips or fails.
    """
    if ok:
        return
    reason = f"needs {what}: {hint}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: system pieces are required)", pytrace=False)
    pytest.skip(reason)


# --- PulseAudio: the real sound server the audio device tests play to and record from ---

PULSE_HINT = "apt install pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins turns the audio device tests on"


def portaudio_installed() -> bool:
    # Looked up the way sounddevice does, without importing it: PortAudio lists its
    # devices once, at import, and the "pulse" device is only there once the server runs.
    return ctypes.util.find_library("portaudio") is not None


def pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=10).stdout.strip()


def _pulse_device_listed() -> bool:
    import sounddevice as sd

    def listed() -> bool:
        return any(d["name"] == "pulse" for d in sd.query_devices())

    if not listed() and hasattr(sd, "_terminate"):
        # PortAudio lists devices when it starts: if sounddevice was imported before the
        # server ran, start it again to see the device now.
        sd._terminate()
        sd._initialize()
    return listed()


@contextlib.contextmanager
def pulse_null_sink(prefix: str = "vtuber", tools: tuple[str, ...] = ("pulseaudio", "pactl")):
    """A fresh null sink on a running PulseAudio server (started here if needed, as
    .ci/run does); skips (fails under CI=true) when a piece is missing. Its monitor
    records what plays into it. PULSE_SERVER names the server's socket for the block:
    every test's XDG_CONFIG_HOME is an empty folder, where clients would look for it."""
    missing = [t for t in tools if not shutil.which(t)] + ([] if portaudio_installed() else ["libportaudio2"])
    require_system(f"PulseAudio and PortAudio (missing: {', '.join(missing)})", not missing, PULSE_HINT)
    if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode != 0:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1"], check=True, timeout=20)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.1)
    old = os.environ.get("PULSE_SERVER")
    server = next((ln.split(":", 1)[1].strip() for ln in pactl("info").splitlines() if ln.startswith("Server String:")), "")
    if server.startswith("/"):
        os.environ["PULSE_SERVER"] = f"unix:{server}"
    require_system("PortAudio's ALSA 'pulse' device (missing: libasound2-plugins)", _pulse_device_listed(), PULSE_HINT)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    module = pactl("load-module", "module-null-sink", f"sink_name={name}")
    try:
        yield name
    finally:
        pactl("unload-module", module)
        if old is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = old


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in MODEL_MODULES:
            item.add_marker(pytest.mark.models)


# --- no real model outside the `models` tests ------------------------------------------


def _refuse_model(what: str):
    def refuse(*args, **kwargs):
        pytest.fail(
            f"this test loads the real {what} but is not marked 'models': use the engine fixture, "
            "or add its module to MODEL_MODULES in tests/conftest.py",
            pytrace=False,
        )

    return refuse


@pytest.fixture(autouse=True)
def _models_only_in_model_tests(request, monkeypatch):
    if request.node.get_closest_marker("models") is not None:
        yield
        return
    from vtuber.hearing import SileroVAD, WhisperASR
    from vtuber.mind.llm import LlamaCppBackend
    from vtuber.voice import PiperTTS

    for cls, what in ((WhisperASR, "Whisper model"), (SileroVAD, "Silero VAD"), (PiperTTS, "Piper voice")):
        monkeypatch.setattr(cls, "__init__", _refuse_model(what))
    # The GGUF check runs before llama.cpp is touched (a non-GGUF file is still a user
    # error in unit tests); only the load itself is refused.
    original = LlamaCppBackend.__init__

    def llama_init(self, path, cfg):
        import llama_cpp

        monkeypatch.setattr(llama_cpp, "Llama", _refuse_model("LLM"))
        original(self, path, cfg)

    monkeypatch.setattr(LlamaCppBackend, "__init__", llama_init)
    yield


# --- the real models -----------------------------------------------------------------


@pytest.fixture(scope="session")
def engine():
    from vtuber.pipeline import Engine

    eng = Engine.load(load_config(), load_persona("miko"))
    eng.warm()
    yield eng
    eng.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


@pytest.fixture(scope="session")
def speak16k(engine):
    """Text -> 16 kHz float32 speech with the bundled Piper voice (for feeding the hearing stage)."""

    def speak(text: str) -> np.ndarray:
        pcm = engine.tts.synthesize(text)
        return resample(pcm.astype(np.float32) / 32768.0, engine.tts.sample_rate, HEARING_RATE)

    return speak
