"""Personas: YAML files the streamer owns (see docs/personas.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vtuber.errors import UserError

PERSONA_DIR = Path(__file__).resolve().parents[2] / "personas"

REQUIRED = ("name", "description", "speaking_style", "greeting")
OPTIONAL = ("example_lines", "reply_length", "banned_words", "streamer_name", "hotwords")


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    speaking_style: str
    greeting: str
    example_lines: tuple[str, ...] = ()
    max_tokens: int = 60
    max_chars: int = 240
    banned_words: tuple[str, ...] = ()
    streamer_name: str = "the streamer"
    hotwords: tuple[str, ...] = ()
    path: str = ""

    @property
    def asr_prompt(self) -> str:
        """A punctuated prompt that primes the recogniser with the names it should expect.

        (Whisper copies the prompt's style: an unpunctuated word list makes it drop the
        sentence ends the endpointer relies on.)"""
        extra = f" {', '.join(self.hotwords)}." if self.hotwords else ""
        return f"Hi {self.name}. Hello, {self.streamer_name}!{extra}"


def _str_list(data: dict, key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: '{key}' must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def persona_from_dict(data: object, where: str) -> Persona:
    if not isinstance(data, dict):
        raise UserError(f"{where}: a persona must be a YAML mapping")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL), key=str)
    if unknown:
        raise UserError(f"{where}: unknown persona field(s): {', '.join(map(str, unknown))}")
    missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise UserError(f"{where}: missing persona field(s): {', '.join(missing)}")
    length = data.get("reply_length", {}) or {}
    if not isinstance(length, dict) or set(length) - {"max_tokens", "max_chars"}:
        raise UserError(f"{where}: 'reply_length' takes max_tokens and max_chars")
    max_tokens = length.get("max_tokens", 60)
    max_chars = length.get("max_chars", 240)
    if not isinstance(max_tokens, int) or not 8 <= max_tokens <= 512:
        raise UserError(f"{where}: reply_length.max_tokens must be a whole number in [8, 512]")
    if not isinstance(max_chars, int) or not 20 <= max_chars <= 2000:
        raise UserError(f"{where}: reply_length.max_chars must be a whole number in [20, 2000]")
    streamer = data.get("streamer_name", "the streamer")
    if not isinstance(streamer, str) or not streamer.strip():
        raise UserError(f"{where}: 'streamer_name' must be a non-empty string")
    return Persona(
        name=data["name"].strip(),
        description=data["description"].strip(),
        speaking_style=data["speaking_style"].strip(),
        greeting=data["greeting"].strip(),
        example_lines=_str_list(data, "example_lines", where),
        max_tokens=max_tokens,
        max_chars=max_chars,
        banned_words=_str_list(data, "banned_words", where),
        streamer_name=streamer.strip(),
        hotwords=_str_list(data, "hotwords", where),
        path=where,
    )


def load_persona(name_or_path: str) -> Persona:
    """Load a persona by name (personas/NAME.yaml) or by path."""
    if not name_or_path.strip():
        raise UserError("persona: empty name (give a name in personas/ or a YAML file)")
    p = Path(name_or_path).expanduser()
    if not p.suffix and not p.exists():
        p = PERSONA_DIR / f"{name_or_path}.yaml"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(sorted(x.stem for x in PERSONA_DIR.glob("*.yaml"))) or "none"
        raise UserError(f"{p}: persona not found (bundled personas: {known})") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: persona file is not UTF-8 text") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read persona ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{p}{line}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return persona_from_dict(data, str(p))
