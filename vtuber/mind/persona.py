"""Personas: YAML files the streamer owns (schema and examples: docs/personas.md).

A persona is named by a file path or by name: NAME.yaml in, first match wins, the
user's folder (`vtuber.paths.user_personas()`), the folders named in the config
(`persona_folders`), then the personas the package ships.

`load_persona` reads one; `check_persona` lists every problem in a file at once.
Unknown top-level fields are an error (a typo should not silently do nothing),
except under `extensions`, which keeps whatever a character card carried.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import yaml

from vtuber.errors import UserError, quote, read_text
from vtuber.mind.openers import MOODS

from vtuber.paths import bundled, user_personas

REQUIRED = ("name", "description", "speaking_style", "greeting")
OPTIONAL = (
    "personality",
    "scenario",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "example_lines",
    "example_exchanges",
    "topics",
    "idle_topics",
    "fallback_lines",
    "openers",
    "reply_length",
    "language",
    "languages",
    "language_line",
    "voice",
    "banned_words",
    "allow_words",
    "banned_phrases",
    "triage",
    "lore",
    "tags",
    "streamer_name",
    "hotwords",
    "creator",
    "extensions",
    "model",
    "facts",
)
TRIAGE_KEYS = ("paid", "mention", "subscriber", "moderator", "vip", "question", "first_time")


@dataclass(frozen=True)
class Exchange:
    user: str
    reply: str


@dataclass(frozen=True)
class LoreEntry:
    """Keyword-triggered knowledge: inserted into the prompt when a message mentions a key."""

    keys: tuple[str, ...]
    content: str
    enabled: bool = True
    case_sensitive: bool = False


@dataclass(frozen=True)
class VoiceSettings:
    model: str = ""  # a Piper .onnx; empty = the configured/bundled voice
    speaker_id: int = -1
    length_scale: float = 0.0  # 0 = the configured value


@dataclass(frozen=True)
class ModelSettings:
    """The persona's own LLM; the config's models.llm wins when it is set."""

    llm: str = ""  # a GGUF path or an http(s):// LLM server; empty = the configured/bundled model
    think: bool | None = None  # False: ask a reasoning model not to think; None = the config's llm.think
    languages: tuple[str, ...] = ()  # the languages this model writes well (ISO codes); empty: English
    adapter: str = ""  # a LoRA adapter GGUF made by `vtuber tune` for the local model


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    speaking_style: str
    greeting: str
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: tuple[str, ...] = ()
    example_lines: tuple[str, ...] = ()
    example_exchanges: tuple[Exchange, ...] = ()
    topics: tuple[str, ...] = ()
    max_tokens: int = 60
    max_chars: int = 240
    reply_seconds: float = 6.0  # a reply ends at the first sentence end past about this much speech
    sentences: int = 1  # one breath: the reply ends at its first sentence end (more when the persona asks)
    facts: tuple[str, ...] = ()  # about her, in her own first person ("I love tea.")
    idle_topics: tuple[str, ...] = ()  # what she talks about on a quiet stream (director.idle_after_s)
    fallback_lines: tuple[str, ...] = ()  # said when a reply only echoes or parrots (built-in ones if empty)
    # Said the moment a reply starts, by the message's mood (vtuber.mind.openers): None = her
    # language's built-in ones, {} = none.
    openers: dict[str, tuple[str, ...]] | None = None
    language: str = "en"  # her own language (ISO 639-1): what she hears the streamer in and speaks
    languages: tuple[str, ...] = ()  # more languages she answers viewers in (when the model writes them)
    language_line: str = ""  # said to a viewer in another language (a built-in line in her language if empty)
    voice: VoiceSettings = VoiceSettings()
    banned_words: tuple[str, ...] = ()
    allow_words: tuple[str, ...] = ()  # never blocked, even when they read as a banned word's form
    banned_phrases: tuple[str, ...] = ()  # banned as whole phrases (matched like banned words)
    triage: dict[str, float] = field(default_factory=dict)
    lore: tuple[LoreEntry, ...] = ()
    tags: tuple[str, ...] = ()
    streamer_name: str = "the streamer"
    hotwords: tuple[str, ...] = ()
    creator: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    model: ModelSettings = ModelSettings()

    @property
    def asr_prompt(self) -> str:
        """A punctuated prompt that primes the recogniser with the names it should expect.

        (Whisper copies the prompt's style: an unpunctuated word list makes it drop the
        sentence ends the endpointer relies on.)"""
        extra = f" {', '.join(self.hotwords)}." if self.hotwords else ""
        if self.language != "en":
            # No greeting to prime it: the multilingual model copied a Korean one in a loop
            # ("안녕하세요, 민준! 안녕하세요, 민준! ..."). The names still go in as hotwords.
            return ""
        return f"Hi {self.name}. Hello, {self.streamer_name}!{extra}"

    def lore_for(self, text: str) -> list[str]:
        """Lore entries whose keys appear in `text`."""
        low = text.lower()
        hits = []
        for entry in self.lore:
            if not entry.enabled:
                continue
            hay = text if entry.case_sensitive else low
            if any((k if entry.case_sensitive else k.lower()) in hay for k in entry.keys if k):
                hits.append(entry.content)
        return hits


class _Problems:
    """Collects every problem in a persona instead of stopping at the first."""

    def __init__(self, where: str):
        self.where = where
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def text(self, key: str, data: dict, default: str = "", required: bool = False) -> str:
        value = data.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, str):
            self.add(f"'{key}' must be text")
            return default
        if required and not value.strip():
            return default
        return value.strip()

    def str_list(self, key: str, data: dict) -> tuple[str, ...]:
        value = data.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(f"'{key}' must be a list of strings")
            return ()
        return tuple(v.strip() for v in value if v.strip())

    def number(self, key: str, value: Any, lo: float, hi: float, whole: bool = False) -> bool:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and lo <= value <= hi and (not whole or isinstance(value, int))
        if not ok:
            kind = "a whole number" if whole else "a number"
            self.add(f"'{key}' must be {kind} in [{lo:g}, {hi:g}], got {quote(value)}")
        return ok


_LANGUAGE_CODE = re.compile(r"[a-z]{2}")


def _language_list(pr: _Problems, key: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _LANGUAGE_CODE.fullmatch(v.strip().lower()) for v in value):
        pr.add(f"'{key}' must be a list of two-letter language codes such as [ko, en]")
        return ()
    return tuple(dict.fromkeys(v.strip().lower() for v in value))


def _parse(data: object, where: str) -> tuple[Persona | None, list[str]]:
    if not isinstance(data, dict):
        return None, ["a persona must be a YAML mapping"]
    pr = _Problems(where)
    unknown = sorted((k for k in data if k not in REQUIRED and k not in OPTIONAL), key=str)
    if unknown:
        pr.add(f"unknown persona field(s): {', '.join(quote(str(k), 40) for k in unknown[:10])}")
    missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        pr.add(f"missing persona field(s): {', '.join(missing)}")

    length = data.get("reply_length", {}) or {}
    max_tokens, max_chars, seconds, sentences = 60, 240, 6.0, 1
    if not isinstance(length, dict) or set(length) - {"max_tokens", "max_chars", "seconds", "sentences"}:
        pr.add("'reply_length' takes max_tokens, max_chars, seconds and sentences")
    else:
        if pr.number("reply_length.sentences", length.get("sentences", 1), 1, 10, whole=True):
            sentences = length.get("sentences", 1)
        if pr.number("reply_length.seconds", length.get("seconds", 6.0), 1, 60):
            seconds = float(length.get("seconds", 6.0))
        if pr.number("reply_length.max_tokens", length.get("max_tokens", 60), 8, 512, whole=True):
            max_tokens = length.get("max_tokens", 60)
        if pr.number("reply_length.max_chars", length.get("max_chars", 240), 20, 2000, whole=True):
            max_chars = length.get("max_chars", 240)

    exchanges: list[Exchange] = []
    raw_ex = data.get("example_exchanges", []) or []
    if not isinstance(raw_ex, list):
        pr.add("'example_exchanges' must be a list of {user, reply}")
    else:
        for i, ex in enumerate(raw_ex):
            if isinstance(ex, dict) and isinstance(ex.get("user"), str) and isinstance(ex.get("reply"), str):
                exchanges.append(Exchange(ex["user"].strip(), ex["reply"].strip()))
            else:
                pr.add(f"example_exchanges[{i}] must have text 'user' and 'reply'")

    voice = VoiceSettings()
    raw_voice = data.get("voice", {}) or {}
    if not isinstance(raw_voice, dict) or set(raw_voice) - {"model", "speaker_id", "length_scale"}:
        pr.add("'voice' takes model, speaker_id and length_scale")
    else:
        model = raw_voice.get("model", "")
        if not isinstance(model, str):
            pr.add("'voice.model' must be a path")
            model = ""
        sid = raw_voice.get("speaker_id", -1)
        scale = raw_voice.get("length_scale", 0.0)
        ok_sid = pr.number("voice.speaker_id", sid, -1, 10000, whole=True)
        ok_scale = scale == 0.0 or pr.number("voice.length_scale", scale, 0.2, 5.0)
        if model and where and not Path(model).expanduser().is_absolute():
            model = str((Path(where).parent / model).resolve()) if Path(where).suffix else model
        voice = VoiceSettings(model.strip(), sid if ok_sid else -1, float(scale) if ok_scale else 0.0)

    triage: dict[str, float] = {}
    raw_triage = data.get("triage", {}) or {}
    if not isinstance(raw_triage, dict):
        pr.add(f"'triage' must map {', '.join(TRIAGE_KEYS)} to weights")
    else:
        for k, v in raw_triage.items():
            if k not in TRIAGE_KEYS:
                pr.add(f"unknown triage weight {quote(k, 40)} (known: {', '.join(TRIAGE_KEYS)})")
            elif pr.number(f"triage.{k}", v, 0, 100):
                triage[k] = float(v)

    lore: list[LoreEntry] = []
    raw_lore = data.get("lore", []) or []
    if not isinstance(raw_lore, list):
        pr.add("'lore' must be a list of {keys, content}")
    else:
        for i, e in enumerate(raw_lore):
            keys = e.get("keys") if isinstance(e, dict) else None
            if (
                not isinstance(e, dict)
                or not isinstance(keys, list)
                or not all(isinstance(k, str) for k in keys)
                or not isinstance(e.get("content"), str)
            ):
                pr.add(f"lore[{i}] must have 'keys' (a list of strings) and 'content' (text)")
                continue
            lore.append(
                LoreEntry(
                    tuple(k.strip() for k in keys if k.strip()),
                    e["content"].strip(),
                    bool(e.get("enabled", True)),
                    bool(e.get("case_sensitive", False)),
                )
            )

    openers: dict[str, tuple[str, ...]] | None = None
    raw_openers = data.get("openers")
    if raw_openers is False or raw_openers == {}:
        openers = {}
    elif raw_openers is not None:
        if not isinstance(raw_openers, dict) or set(raw_openers) - set(MOODS):
            pr.add(f"'openers' must map {', '.join(MOODS)} to lists of short lines (or be {{}} for none)")
        else:
            openers = {}
            for m, lines in raw_openers.items():
                if not isinstance(lines, list) or not all(isinstance(v, str) and 0 < len(v.split()) <= 4 for v in lines):
                    pr.add(f"'openers.{m}' must be a list of short lines (up to 4 words each)")
                else:
                    openers[m] = tuple(v.strip() for v in lines)

    extensions = data.get("extensions", {}) or {}
    if not isinstance(extensions, dict):
        pr.add("'extensions' must be a mapping")
        extensions = {}

    model_settings = ModelSettings()
    raw_model = data.get("model", {}) or {}
    if not isinstance(raw_model, dict) or set(raw_model) - {"llm", "think", "languages", "adapter"}:
        pr.add("'model' takes llm (a GGUF path or an http(s):// server), think (true/false), languages and adapter (a GGUF LoRA)")
    elif not isinstance(raw_model.get("llm", ""), str) or not isinstance(raw_model.get("think", True), bool):
        pr.add("'model.llm' must be a path or URL and 'model.think' true or false")
    elif not isinstance(raw_model.get("adapter", ""), str):
        pr.add("'model.adapter' must be a path (a GGUF LoRA adapter made by `vtuber tune`)")
    else:
        model_langs = _language_list(pr, "model.languages", raw_model.get("languages", []))
        adapter = raw_model.get("adapter", "").strip()
        if adapter and where and Path(where).suffix and not Path(adapter).expanduser().is_absolute():
            adapter = str((Path(where).parent / adapter).resolve())  # relative to the persona file
        model_settings = ModelSettings(raw_model.get("llm", "").strip(), raw_model.get("think"), model_langs, adapter)

    language = (pr.text("language", data, "en") or "en").lower()
    if not _LANGUAGE_CODE.fullmatch(language):
        pr.add(f"'language' must be a two-letter language code such as en or ko, got {quote(language, 40)}")
        language = "en"
    languages = _language_list(pr, "languages", data.get("languages", []))
    streamer = pr.text("streamer_name", data, "the streamer")
    if not streamer:
        pr.add("'streamer_name' must be a non-empty string")
        streamer = "the streamer"
    persona = Persona(
        name=pr.text("name", data, required=True),
        description=pr.text("description", data, required=True),
        speaking_style=pr.text("speaking_style", data, required=True),
        greeting=pr.text("greeting", data, required=True),
        personality=pr.text("personality", data),
        scenario=pr.text("scenario", data),
        system_prompt=pr.text("system_prompt", data),
        post_history_instructions=pr.text("post_history_instructions", data),
        alternate_greetings=pr.str_list("alternate_greetings", data),
        example_lines=pr.str_list("example_lines", data),
        example_exchanges=tuple(exchanges),
        topics=pr.str_list("topics", data),
        max_tokens=max_tokens,
        max_chars=max_chars,
        reply_seconds=seconds,
        sentences=sentences,
        facts=pr.str_list("facts", data),
        idle_topics=pr.str_list("idle_topics", data),
        fallback_lines=pr.str_list("fallback_lines", data),
        openers=openers,
        language=language,
        languages=languages,
        language_line=pr.text("language_line", data),
        voice=voice,
        banned_words=pr.str_list("banned_words", data),
        allow_words=pr.str_list("allow_words", data),
        banned_phrases=pr.str_list("banned_phrases", data),
        triage=triage,
        lore=tuple(lore),
        tags=pr.str_list("tags", data),
        streamer_name=streamer,
        hotwords=pr.str_list("hotwords", data),
        creator=pr.text("creator", data),
        extensions=dict(extensions),
        path=where,
        model=model_settings,
    )
    return persona, pr.items


def persona_from_dict(data: object, where: str) -> Persona:
    persona, problems = _parse(data, where)
    if problems or persona is None:
        raise UserError(f"{where}: " + "; ".join(problems))
    return persona


def persona_folders(extra: Sequence[str | Path] = ()) -> list[tuple[str, Path]]:
    """(origin, folder) in lookup order: the user's own, the config's, the bundled ones."""
    return [
        ("user", user_personas()),
        *(("config", Path(f).expanduser()) for f in extra),
        ("bundled", bundled("personas")),
    ]


def find_personas(extra: Sequence[str | Path] = ()) -> dict[str, tuple[Path, str]]:
    """Every persona by name: (file, origin); a name in an earlier folder hides a later one."""
    found: dict[str, tuple[Path, str]] = {}
    for origin, folder in persona_folders(extra):
        try:
            files = sorted(folder.glob("*.yaml"))
        except OSError:
            continue
        for f in files:
            found.setdefault(f.stem, (f, origin))
    return found


def list_personas(extra: Sequence[str | Path] = ()) -> list[str]:
    return sorted(find_personas(extra))


def _read(name_or_path: str, extra: Sequence[str | Path] = ()) -> tuple[Path, object]:
    if not name_or_path.strip():
        raise UserError("persona: empty name (give a persona name or a YAML file)")
    p = Path(name_or_path).expanduser()
    if not p.suffix and not p.exists():
        found = find_personas(extra)
        if name_or_path not in found:
            raise UserError(f"no persona named {quote(name_or_path, 40)} (available: {', '.join(sorted(found)) or 'none'})")
        p = found[name_or_path][0]
    text = read_text(p, "persona")
    try:
        return p, yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{p}{line}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise UserError(f"{p}: not valid YAML (nested too deeply)") from None


def load_persona(name_or_path: str, folders: Sequence[str | Path] = ()) -> Persona:
    """Load a persona by name (see the module docstring) or by path."""
    p, data = _read(name_or_path, folders)
    return persona_from_dict(data, str(p))


def check_persona(name_or_path: str, folders: Sequence[str | Path] = ()) -> tuple[Path, list[str]]:
    """Every problem in a persona file (empty list: it is fine)."""
    p, data = _read(name_or_path, folders)
    _, problems = _parse(data, str(p))
    return p, problems


def persona_to_dict(p: Persona) -> dict:
    """The YAML form of a persona (what `persona import` writes); empty fields left out."""
    out: dict[str, Any] = {
        "name": p.name,
        "description": p.description,
        "personality": p.personality,
        "speaking_style": p.speaking_style,
        "greeting": p.greeting,
        "scenario": p.scenario,
        "system_prompt": p.system_prompt,
        "post_history_instructions": p.post_history_instructions,
        "alternate_greetings": list(p.alternate_greetings),
        "example_lines": list(p.example_lines),
        "example_exchanges": [{"user": e.user, "reply": e.reply} for e in p.example_exchanges],
        "topics": list(p.topics),
        "idle_topics": list(p.idle_topics),
        "fallback_lines": list(p.fallback_lines),
        **({"openers": {m: list(v) for m, v in p.openers.items()}} if p.openers is not None else {}),
        "reply_length": {"max_tokens": p.max_tokens, "max_chars": p.max_chars, "seconds": p.reply_seconds}
        | ({"sentences": p.sentences} if p.sentences != 1 else {}),
        "facts": list(p.facts),
        "language": p.language,
        "languages": list(p.languages),
        "language_line": p.language_line,
        "banned_words": list(p.banned_words),
        "allow_words": list(p.allow_words),
        "banned_phrases": list(p.banned_phrases),
        "triage": dict(p.triage),
        "lore": [
            {
                "keys": list(e.keys),
                "content": e.content,
                **({} if e.enabled else {"enabled": False}),
                **({"case_sensitive": True} if e.case_sensitive else {}),
            }
            for e in p.lore
        ],
        "tags": list(p.tags),
        "streamer_name": p.streamer_name if p.streamer_name != "the streamer" else "",
        "hotwords": list(p.hotwords),
        "creator": p.creator,
        "extensions": dict(p.extensions),
    }
    if p.model != ModelSettings():
        out["model"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.model.__dict__.items() if v not in ("", None, ())}
    if p.voice != VoiceSettings():
        out["voice"] = {k: v for k, v in p.voice.__dict__.items() if v not in ("", -1, 0.0)}
    return {k: v for k, v in out.items() if v not in ("", [], {}, None)}
