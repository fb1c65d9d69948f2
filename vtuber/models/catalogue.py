"""The curated catalogue of models `vtuber models pull NAME` fetches, and where pulled models live.

Every entry names one repository on the model hub and the files to take from it, with the
licence, the languages it speaks and what it needs (download size, RAM, and a speed tier
relative to the bundled SmolLM2-135M). Nothing here downloads: `vtuber.models.pull` does, and only
when the user runs `vtuber models pull`.

Checksums: an entry's `sha256` is checked when it is given. Where it is empty, the file is
checked against the SHA-256 the hub itself reports for it (the LFS object id, read from the
file's metadata before the download): a file that arrives different from what the hub
announced is refused and deleted either way.

Sizes are what the hub listed for these files when the catalogue was written (rounded);
the real size comes from the hub's metadata at download time and is what the free-space
check uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from vtuber.errors import UserError

APP = "vtuber"
MB = 1_000_000

# The model that every machine runs; the speed of every other LLM is estimated from its
# measured speed on this machine (decoding on a CPU is bound by memory traffic, so a
# model's tokens/s falls roughly with its file size).
BUNDLED_LLM_BYTES = 99 * MB


@dataclass(frozen=True)
class Entry:
    """One pullable model: what it is, where it comes from, and what it needs."""

    name: str  # what the user types: `vtuber models pull NAME`, `--llm NAME`
    kind: str  # "llm" | "asr" | "voice"
    repo: str  # owner/name on the hub
    files: tuple[str, ...]  # paths inside the repository; the first is the model file
    size: int  # bytes to download, all files together (approximate; the hub's figure wins)
    licence: str
    languages: tuple[str, ...]
    about: str
    sha256: dict[str, str] = field(default_factory=dict)  # file -> hex digest; missing: the hub's own
    ram_mb: int = 0  # resident memory it needs loaded (LLM: weights + a 2k context)
    params: str = ""  # "0.5B"
    tier: str = ""  # LLMs: floor | small | medium | large (see TIERS)
    revision: str = "main"

    @property
    def main_file(self) -> str:
        return self.files[0]


TIERS = {
    "floor": "runs on every machine (the bundled size)",
    "small": "0.3-0.6B: a clear step up, still fast on 2 cores",
    "medium": "1-2B: needs about 4 fast cores or better for a sub-second first word",
    "large": "3-4B: 8 cores or a fast desktop CPU",
}

_EN = ("en",)
_MANY = ("en", "zh", "ko", "ja", "fr", "de", "es", "pt", "it", "ru", "vi", "th", "ar")

CATALOGUE: tuple[Entry, ...] = (
    # --- language models (instruct, GGUF, llama.cpp) ---
    Entry("smollm2-135m", "llm", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", ("smollm2-135m-instruct-q8_0.gguf",),
          145 * MB, "Apache-2.0", _EN, "the bundled model's family at 8 bits (the bundled file is 4-bit)",
          ram_mb=300, params="0.135B", tier="floor"),
    Entry("smollm2-360m", "llm", "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF", ("smollm2-360m-instruct-q8_0.gguf",),
          386 * MB, "Apache-2.0", _EN, "SmolLM2 360M: same family, better grammar and facts",
          ram_mb=600, params="0.36B", tier="small"),
    Entry("qwen2.5-0.5b", "llm", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", ("qwen2.5-0.5b-instruct-q4_k_m.gguf",),
          398 * MB, "Apache-2.0", _MANY, "Qwen2.5 0.5B: the smallest multilingual one (Korean, Japanese, Chinese)",
          ram_mb=700, params="0.5B", tier="small"),
    Entry("qwen3-0.6b", "llm", "Qwen/Qwen3-0.6B-GGUF", ("Qwen3-0.6B-Q8_0.gguf",),
          639 * MB, "Apache-2.0", _MANY, "Qwen3 0.6B: multilingual, a reasoning model (thinking is turned off by default)",
          ram_mb=900, params="0.6B", tier="small"),
    Entry("llama3.2-1b", "llm", "bartowski/Llama-3.2-1B-Instruct-GGUF", ("Llama-3.2-1B-Instruct-Q4_K_M.gguf",),
          808 * MB, "Llama 3.2 Community License", ("en", "de", "fr", "it", "pt", "hi", "es", "th"),
          "Llama 3.2 1B: good English role play for its size", ram_mb=1300, params="1.2B", tier="medium"),
    Entry("gemma3-1b", "llm", "bartowski/google_gemma-3-1b-it-GGUF", ("google_gemma-3-1b-it-Q4_K_M.gguf",),
          806 * MB, "Gemma Terms of Use", _MANY, "Gemma 3 1B: multilingual (Korean included), warm tone",
          ram_mb=1300, params="1B", tier="medium"),
    Entry("qwen2.5-1.5b", "llm", "Qwen/Qwen2.5-1.5B-Instruct-GGUF", ("qwen2.5-1.5b-instruct-q4_k_m.gguf",),
          1117 * MB, "Apache-2.0", _MANY, "Qwen2.5 1.5B: multilingual, follows the persona well",
          ram_mb=1700, params="1.5B", tier="medium"),
    Entry("exaone3.5-2.4b", "llm", "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct-GGUF", ("EXAONE-3.5-2.4B-Instruct-Q4_K_M.gguf",),
          1640 * MB, "EXAONE AI Model License 1.1 (non-commercial)", ("ko", "en"),
          "EXAONE 3.5 2.4B: Korean first (non-commercial licence: not for monetised streams)",
          ram_mb=2400, params="2.4B", tier="large"),
    Entry("llama3.2-3b", "llm", "bartowski/Llama-3.2-3B-Instruct-GGUF", ("Llama-3.2-3B-Instruct-Q4_K_M.gguf",),
          2019 * MB, "Llama 3.2 Community License", ("en", "de", "fr", "it", "pt", "hi", "es", "th"),
          "Llama 3.2 3B: the best English co-host here for a fast desktop", ram_mb=2800, params="3.2B", tier="large"),
    Entry("qwen3-4b", "llm", "Qwen/Qwen3-4B-GGUF", ("Qwen3-4B-Q4_K_M.gguf",),
          2497 * MB, "Apache-2.0", _MANY, "Qwen3 4B: multilingual, the largest here (thinking turned off by default)",
          ram_mb=3400, params="4B", tier="large"),
    # --- speech recognition (faster-whisper folders) ---
    Entry("whisper-base", "asr", "Systran/faster-whisper-base",
          ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"),
          145 * MB, "MIT", ("multilingual",), "Whisper base, multilingual (99 languages; Korean included)", ram_mb=300),
    Entry("whisper-small", "asr", "Systran/faster-whisper-small",
          ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"),
          484 * MB, "MIT", ("multilingual",), "Whisper small, multilingual: clearly better than base, about 3x slower",
          ram_mb=800),
    # --- voices (Piper: the .onnx and its .onnx.json) ---
    *(
        Entry(f"piper-{voice}", "voice", "rhasspy/piper-voices",
              (f"{path}/{voice}.onnx", f"{path}/{voice}.onnx.json"),
              size * MB, licence, (lang,), about, ram_mb=150)
        for voice, path, size, licence, lang, about in (
            ("en_US-amy-medium", "en/en_US/amy/medium", 63, "MIT (dataset: public domain)", "en", "American English, female"),
            ("en_GB-alba-medium", "en/en_GB/alba/medium", 63, "CC BY 4.0", "en", "British English, female"),
            ("de_DE-thorsten-medium", "de/de_DE/thorsten/medium", 63, "CC0", "de", "German, male"),
            ("fr_FR-siwis-medium", "fr/fr_FR/siwis/medium", 63, "CC BY 4.0", "fr", "French, female"),
            ("es_ES-davefx-medium", "es/es_ES/davefx/medium", 63, "CC0", "es", "Spanish, male"),
            ("zh_CN-huayan-medium", "zh/zh_CN/huayan/medium", 63, "see the voice's MODEL_CARD", "zh", "Mandarin Chinese, female"),
        )
    ),
)


def models_dir() -> Path:
    """Where pulled models go: the user's data folder (platformdirs; `~/.local/share/vtuber/models`
    on Linux, respecting XDG_DATA_HOME). Never inside the installed package."""
    return platformdirs.user_data_path(APP, appauthor=False) / "models"


def entry_dir(entry: Entry) -> Path:
    return models_dir() / entry.name


def load_catalogue(extra: str | Path | None = None) -> tuple[Entry, ...]:
    """The bundled catalogue, plus the entries of a JSON file of the user's own (a list of
    objects with the Entry fields; an entry with a bundled name replaces it)."""
    if extra is None:
        return CATALOGUE
    from vtuber.errors import read_text

    path = Path(extra).expanduser()
    try:
        raw = json.loads(read_text(path, "catalogue"))
    except ValueError as e:
        raise UserError(f"{path}: the catalogue is not valid JSON ({e})") from None
    if not isinstance(raw, list):
        raise UserError(f"{path}: the catalogue must be a JSON list of entries")
    own = []
    fields = set(Entry.__dataclass_fields__)
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"name", "kind", "repo", "files"} <= set(item) or set(item) - fields:
            raise UserError(f"{path}: entry {i + 1} needs name, kind, repo and files (and only Entry fields)")
        if item["kind"] not in ("llm", "asr", "voice") or not item["files"]:
            raise UserError(f"{path}: entry {i + 1}: kind is llm, asr or voice, and files is a non-empty list")
        item = {"size": 0, "licence": "unknown", "languages": (), "about": "", **item}
        item["files"] = tuple(item["files"])
        item["languages"] = tuple(item["languages"])
        own.append(Entry(**item))
    names = {e.name for e in own}
    return tuple(e for e in CATALOGUE if e.name not in names) + tuple(own)


def find(name: str, catalogue: tuple[Entry, ...] = CATALOGUE) -> Entry | None:
    for e in catalogue:
        if e.name == name.strip().lower():
            return e
    return None


def _marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / ".complete").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("files") else None


def pulled(entry: Entry) -> Path | None:
    """The entry's model file (LLM, voice) or folder (ASR) once every file of it is pulled
    and checked (the `.complete` marker is written last); None before that."""
    d = entry_dir(entry)
    if _marker(d) is None:
        return None
    return d if entry.kind == "asr" else d / entry.main_file


KIND_WORDS = {"llm": "a language model", "asr": "a speech recogniser", "voice": "a voice"}


def by_name(value: str, kind: str, key: str) -> Path | None:
    """A pulled model's name given where a model path is expected (`--llm qwen2.5-0.5b`,
    `models.asr = "whisper-base"`): its file (or folder, for ASR). None when `value` is a path
    or URL; one line when it is a catalogue name not pulled yet or a model of another kind."""
    name = value.strip().lower()
    if not name or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name) or name.endswith((".gguf", ".onnx", ".bin")):
        return None
    folder = models_dir() / name
    mark = _marker(folder)
    if mark is not None:
        if mark.get("kind") != kind:
            raise UserError(f"{key}: {name} is {KIND_WORDS.get(mark.get('kind'), 'another kind of model')}, "
                            f"not {KIND_WORDS[kind]}")
        return folder if kind == "asr" else folder / mark["files"][0]
    entry = find(name)
    if entry is not None:
        if entry.kind != kind:
            raise UserError(f"{key}: {name} is {KIND_WORDS[entry.kind]}, not {KIND_WORDS[kind]}")
        raise UserError(f"{key}: {name} is in the catalogue but not pulled yet: run `vtuber models pull {name}`")
    return None
