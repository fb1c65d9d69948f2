"""The service registry (unit): every config value maps to its provider, a bad one is one clear
line, a new provider plugs in by registering, and the providers sit behind their ports."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import vtuber
from vtuber import services
from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.models import ModelPaths
from vtuber.ports import LanguageModel, SpeechToText, TextToSpeech, Transcript
from vtuber.services import Provider, Registry, Request

from scripted_llm import ScriptedLLM


def cfg_with(**models):
    return load_config(overrides={"models": models})


@pytest.mark.parametrize(
    "kind, value, backend, provider",
    [
        ("llm", "", "llama_cpp", "llama_cpp"),  # the bundled GGUF
        ("llm", "/models/big.gguf", "llama_cpp", "llama_cpp"),
        ("llm", "/models/old.ggml.bin", "ctransformers", "ctransformers"),
        ("llm", "http://127.0.0.1:8080/v1", "llama_cpp", "openai"),
        ("llm", "https://llm.example/v1", "ctransformers", "openai"),  # a server wins over the local backend
        ("asr", "", "llama_cpp", "whisper"),
        ("asr", "/models/whisper-base", "llama_cpp", "whisper"),
        ("asr", "tcp://127.0.0.1:10300", "llama_cpp", "wyoming"),
        ("tts", "", "llama_cpp", "piper"),
        ("tts", "/voices/en_GB-alan.onnx", "llama_cpp", "piper"),
        ("tts", "tcp://127.0.0.1:10200", "llama_cpp", "wyoming"),
    ],
)
def test_every_config_value_maps_to_its_provider(kind, value, backend, provider):
    key = {"llm": "llm", "asr": "asr", "tts": "voice"}[kind]
    cfg = cfg_with(**{key: value, "llm_backend": backend})
    assert services.choose(kind, value, cfg).name == provider


@pytest.mark.parametrize(
    "kind, value, key",
    [
        ("llm", "ftp://host/model", "models.llm"),
        ("llm", "tcp://127.0.0.1:10300", "models.llm"),  # Wyoming serves speech, not the LLM
        ("asr", "http://127.0.0.1:10300", "models.asr"),
        ("tts", "ws://127.0.0.1:10200", "models.voice"),
    ],
)
def test_a_value_no_provider_serves_is_one_line_naming_the_key(kind, value, key):
    with pytest.raises(UserError) as info:
        services.choose(kind, value, load_config())
    message = str(info.value)
    assert message.startswith(f"{key}: {value!r}") and "\n" not in message
    assert "known:" in message


def test_an_unknown_local_backend_is_one_line_naming_the_key():
    cfg = load_config()
    cfg.models.llm_backend = "exllama"  # past the config check, as a plugin's mistake would be
    with pytest.raises(UserError, match=r"^models\.llm_backend: 'exllama' is not a known provider \(known: .*llama_cpp"):
        services.choose("llm", "/models/x.gguf", cfg)


def test_a_new_provider_registers_and_claims_its_uris_without_touching_the_others():
    reg = Registry()
    made = []

    def piper(req):
        made.append(("piper", req.uri))
        return "piper voice"

    def espeak(req):
        made.append(("espeak", req.uri, req.local()))
        return "espeak voice"

    reg.register(Provider("tts", "piper", piper))
    reg.register(Provider("tts", "espeak", espeak, claims=lambda uri: uri.startswith("espeak:")))
    cfg = load_config()
    assert reg.choose("tts", "espeak:ko", cfg).name == "espeak"
    assert reg.choose("tts", "/voices/a.onnx", cfg).name == "piper"
    # Registering a name again replaces it (the newest wins), the others stay.
    reg.register(Provider("tts", "espeak", espeak, claims=lambda uri: uri.startswith("espeak-ng:")))
    assert [p.name for p in reg.providers["tts"]] == ["espeak", "piper"]
    with pytest.raises(UserError, match="no service speaks espeak://"):
        reg.choose("tts", "espeak://ko", cfg)
    with pytest.raises(ValueError, match="unknown service kind"):
        reg.register(Provider("video", "x", piper))


def test_a_server_provider_gets_the_loaded_local_model_as_its_fallback():
    local = ScriptedLLM(["hi"])
    paths = ModelPaths(Path("a.gguf"), Path("asr"), Path("v.onnx"), Path("v.onnx.json"))
    req = Request("llm", "http://127.0.0.1:1/v1", load_config(), paths, loaded_local=local)
    assert req.local() is local


def test_the_openai_provider_wraps_the_server_with_the_given_local_model():
    from vtuber.mind.remote import FallbackBackend

    cfg = load_config(overrides={"models": {"llm": "http://127.0.0.1:9/v1"}})
    paths = ModelPaths(Path("a.gguf"), Path("asr"), Path("v.onnx"), Path("v.onnx.json"), llm_url=cfg.models.llm)
    local = ScriptedLLM(["Hello from the local model."])
    llm = services.make_llm(cfg, paths, local=local)
    try:
        assert isinstance(llm, FallbackBackend) and llm.local is local and llm.remote.url == cfg.models.llm
        assert isinstance(llm, LanguageModel)
        # Nothing listens on port 9: the turn is the local model's, and the breaker opens.
        llm.cancel.clear()
        said = "".join(llm.stream([{"role": "user", "content": "hi"}], 8))
        assert said == "Hello from the local model. "
        assert llm.counts == {"remote": 0, "local": 1, "fallbacks": 1} and not llm.usable()
    finally:
        llm.close()


def test_the_shared_fake_and_the_value_types_meet_their_ports():
    assert isinstance(ScriptedLLM(["x"]), LanguageModel)

    class Tone:
        sample_rate = 16000

        def synthesize(self, text):
            return np.zeros(10, np.int16)

        def warm(self):
            pass

    assert isinstance(Tone(), TextToSpeech)
    assert not isinstance(Tone(), SpeechToText)
    assert Transcript("hi").no_speech_prob is None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_protocol_client_and_the_llm_backends_import_no_provider_above_them():
    root = Path(vtuber.__file__).parent
    # The Wyoming client sits below both Wyoming providers; the registry makes them.
    assert not {"vtuber.hearing.wyoming_asr", "vtuber.voice.wyoming_tts", "vtuber.services"} & _imports(root / "wyoming_client.py")
    # llama.cpp/ctransformers below the remote wrapper, which the registry makes.
    assert not {"vtuber.mind.remote", "vtuber.services"} & _imports(root / "mind" / "llm.py")
    assert "vtuber.services" not in _imports(root / "mind" / "remote.py")
    # The ports and the resilience helpers are foundations: nothing of the package above them.
    for name in ("ports.py", "resilience.py"):
        assert not {m for m in _imports(root / name) if m.startswith("vtuber")}, name
