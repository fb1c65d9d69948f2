"""Import SillyTavern / TavernAI character cards (V1, V2, V3) as personas.

A card is a JSON object, either in a `.json` file or base64-encoded in a PNG text
chunk (`chara` for V1/V2, `ccv3` for V3; `ccv3` wins when both are there). A V3
`.charx` archive (a zip with `card.json` at its root) is read too.

`load_card` maps the card onto a `Persona`; every card field the mapping does not use
is kept under `extensions["card"]` so nothing is lost. `write_persona_yaml` saves it as
a persona file the streamer can then edit. `import_card` is both, for `vtuber persona import`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import yaml
from PIL import PngImagePlugin

from vtuber.errors import UserError, quote, read_bytes
from vtuber.mind.persona import Persona, persona_from_dict, persona_to_dict
from vtuber.paths import user_personas

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")  # order = preference
SPECS = {"chara_card_v2": 2, "chara_card_v3": 3}
MAX_CARD_BYTES = 256 * 1024 * 1024
# Decoding a card image is how Pillow reaches the text chunks after the pixels; a card
# is a portrait, so more pixels than this (all frames together) is a bomb, not a card.
MAX_CARD_PIXELS = 1 << 25  # 32 Mpx: 5792 x 5792, or 4096 x 8192

# Card fields the mapping turns into persona fields (anything else goes to extensions).
MAPPED = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "alternate_greetings",
    "system_prompt",
    "post_history_instructions",
    "tags",
    "creator",
    "character_book",
    "extensions",
)
# Old TavernAI / Pygmalion names for the V1 fields.
V1_ALIASES = {
    "char_name": "name",
    "char_persona": "personality",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
SHORT_PERSONALITY = 160

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(bot|user)>", re.IGNORECASE)
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
_START = re.compile(r"<start>", re.IGNORECASE)
_TURN = re.compile(r"^\s*(\{\{\s*(?:user|char)\s*\}\}|<(?:user|bot)>)\s*:\s?(.*)$", re.IGNORECASE)


# --------------------------------------------------------------------------- reading


def read_card(path: str | os.PathLike) -> dict:
    """The card's JSON object from a .json, .png or .charx file (raises UserError)."""
    p = Path(path).expanduser()
    raw = read_bytes(p, "character card", max_bytes=MAX_CARD_BYTES)
    suffix = p.suffix.lower()
    if suffix == ".png" or (suffix not in (".json", ".charx") and raw.startswith(PNG_SIGNATURE)):
        text = _card_text_from_png(raw, p)
        return _parse_json(_decode_chunk(text, p), p, "card chunk")
    if suffix == ".charx" or (suffix != ".json" and raw.startswith(b"PK\x03\x04")):
        return _parse_json(_card_from_charx(raw, p), p, "card.json")
    if suffix == ".json" or raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _parse_json(_utf8(raw, p, "file"), p, "file")
    raise UserError(f"{p}: not a character card (expected a .png, .json or .charx file)")


def _utf8(raw: bytes, p: Path, what: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: character card {what} is not UTF-8 text (byte {e.start})") from None


def _parse_json(text: str, p: Path, what: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}: {e.msg}"
        raise UserError(f"{p}: character card {what} is not valid JSON ({where})") from None
    except RecursionError:
        raise UserError(f"{p}: character card {what} is nested too deeply") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: character card {what} must be a JSON object, got {type(data).__name__}")
    return data


def _card_text_from_png(raw: bytes, p: Path) -> str:
    """The text of the preferred card chunk (`ccv3`, else `chara`), read by Pillow.

    Pillow checks every chunk's CRC up to IEND (`verify`), then reads the tEXt, zTXt and
    iTXt chunks wherever they are (SillyTavern puts the card after the pixels, so the image
    is decoded to reach it), bounding what compressed text may unpack to by its own limits,
    `PngImagePlugin.MAX_TEXT_CHUNK` (each chunk) and `MAX_TEXT_MEMORY` (all of them).
    """
    if not raw.startswith(PNG_SIGNATURE):
        raise UserError(f"{p}: not a PNG file (it starts with {quote(raw[:8])})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd APNG headers: the errors below say enough
            with PngImagePlugin.PngImageFile(io.BytesIO(raw)) as im:
                frames = getattr(im, "n_frames", 1)
                if im.width * im.height * frames > MAX_CARD_PIXELS:
                    raise UserError(
                        f"{p}: image too large for a character card ({im.width} x {im.height}, "
                        f"{frames} frame(s); at most {MAX_CARD_PIXELS} pixels in all)"
                    )
                im.verify()  # CRCs and IEND; the image cannot be used after this
            with PngImagePlugin.PngImageFile(io.BytesIO(raw)) as im:
                text = {str(k).lower(): str(v) for k, v in im.text.items()}
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow reports a bad PNG by many types (SyntaxError, OSError, ...)
        reason = str(e) or type(e).__name__
        if isinstance(e, ValueError) and "MAX_TEXT" in reason:  # Pillow's text limits: a zip bomb
            per_chunk, in_all = PngImagePlugin.MAX_TEXT_CHUNK >> 20, PngImagePlugin.MAX_TEXT_MEMORY >> 20
            raise UserError(
                f"{p}: the PNG's text unpacks to more than Pillow allows "
                f"({per_chunk} MiB a chunk, {in_all} MiB in all); not a character card"
            ) from None
        if raw.rfind(b"\0\0\0\0IEND") < 0:  # no IEND chunk header anywhere: the file was cut short
            raise UserError(f"{p}: truncated PNG (the file ends before its IEND chunk)") from None
        raise UserError(f"{p}: damaged PNG ({_short(reason)})") from None
    for key in CARD_KEYWORDS:
        if key in text:
            if not text[key].strip():  # Pillow leaves the text empty when it cannot unpack it
                raise UserError(f"{p}: the {key!r} text chunk is empty or cannot be unpacked")
            return text[key]
    raise UserError(f"{p}: not a character card: no 'chara' or 'ccv3' text chunk")


def _short(reason: str, limit: int = 80) -> str:
    """An error message from a library, cut to `limit` characters for a one-line error."""
    reason = " ".join(reason.split())
    return reason if len(reason) <= limit else reason[:limit] + "…"


def _decode_chunk(text: str, p: Path) -> str:
    """Base64 of UTF-8 JSON (a few tools write the JSON itself: accepted too)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    compact = re.sub(r"\s+", "", stripped)
    compact += "=" * (-len(compact) % 4)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{p}: character card chunk is not valid base64") from None
    return _utf8(raw, p, "chunk")


def _card_from_charx(raw: bytes, p: Path) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            try:
                info = z.getinfo("card.json")
            except KeyError:
                raise UserError(f"{p}: not a character card: the .charx archive has no card.json") from None
            if info.file_size > MAX_CARD_BYTES:
                raise UserError(f"{p}: card.json in the .charx archive is too large")
            raw = z.read(info)
    except zipfile.BadZipFile:
        raise UserError(f"{p}: not a valid .charx (zip) archive") from None
    except (OSError, RuntimeError, zlib.error) as e:
        raise UserError(f"{p}: cannot read the .charx archive ({_short(str(e) or type(e).__name__)})") from None
    return _utf8(raw, p, "card.json")


# --------------------------------------------------------------------------- mapping


def load_card(path: str | os.PathLike, streamer_name: str = "the streamer") -> Persona:
    """Read a character card (.png, .json, .charx) and map it onto a validated Persona."""
    p = Path(path).expanduser()
    card = read_card(p)
    return card_to_persona(card, str(p), streamer_name)


def card_to_persona(card: dict, where: str, streamer_name: str = "the streamer") -> Persona:
    """Map a card's JSON object onto a Persona; `where` names the source in errors."""
    streamer = (streamer_name or "").strip() or "the streamer"
    spec = card.get("spec")
    if spec is None:
        if "data" in card and isinstance(card["data"], dict):
            raise UserError(f"{where}: character card has 'data' but no 'spec' (chara_card_v2 or chara_card_v3)")
        version, spec_version = 1, None
        data = dict(card)
        for old, new in V1_ALIASES.items():
            if old in data and new not in data:
                data[new] = data.pop(old)
        top_unused: dict[str, Any] = {}
    else:
        if not isinstance(spec, str) or spec not in SPECS:
            raise UserError(f"{where}: unknown character card spec {quote(spec)} (known: chara_card_v2, chara_card_v3)")
        version, spec_version = SPECS[spec], card.get("spec_version")
        data = card.get("data")
        if not isinstance(data, dict):
            raise UserError(f"{where}: character card ({spec}) has no 'data' object")
        # V2 exporters repeat the V1 fields at the top level: keep only what differs.
        top_unused = {
            k: v for k, v in card.items() if k not in ("spec", "spec_version", "data") and not (k in data and data[k] == v)
        }

    def text(key: str) -> str:
        value = data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UserError(f"{where}: character card field '{key}' must be text, got {type(value).__name__}")
        return str(value).strip()

    name = text("name")
    if not name:
        raise UserError(f"{where}: character card has no name")

    def sub(s: str) -> str:
        def one(m: re.Match) -> str:
            return name if (m.group(1) or m.group(2)).lower() in ("char", "bot") else streamer

        return _MACRO.sub(one, s).strip()

    exchanges, lines = parse_examples(text("mes_example"))
    alternates = [sub(g) for g in _str_list(data.get("alternate_greetings"), "alternate_greetings", where)]
    alternates = [g for g in alternates if g]
    greeting = sub(text("first_mes"))
    if not greeting:
        greeting = alternates.pop(0) if alternates else f"Hi, I'm {name}!"
    personality = sub(text("personality"))
    description = sub(text("description")) or personality or f"{name}."

    style = f"Stays in character as {name}. Short spoken replies, no emoji, no markdown."
    if personality and len(personality) <= SHORT_PERSONALITY and "\n" not in personality:
        style += f" Personality: {personality}" + ("" if personality[-1] in ".!?" else ".")

    lore, book = _lore(data.get("character_book"), where, sub)

    data_ext = data.get("extensions") or {}
    if not isinstance(data_ext, dict):
        data_ext = {"value": data_ext}
    meta: dict[str, Any] = {"spec": spec or "chara_card_v1"}
    if spec_version is not None or version == 1:
        meta["spec_version"] = spec_version if spec_version is not None else "1.0"
    unused = {k: v for k, v in data.items() if k not in MAPPED}
    if unused:
        meta["unused"] = unused
    if top_unused:
        meta["card_level"] = top_unused
    if book is not None:
        meta["character_book"] = book  # the whole book: order, positions, constant entries, ...
    extensions = dict(data_ext)
    if "card" in extensions:
        meta["extensions_card"] = extensions.pop("card")
    extensions = {"card": meta, **extensions}

    persona_dict: dict[str, Any] = {
        "name": name,
        "description": description,
        "personality": personality,
        "speaking_style": style,
        "greeting": greeting,
        "scenario": sub(text("scenario")),
        "system_prompt": sub(_ORIGINAL.sub("", text("system_prompt"))),
        "post_history_instructions": sub(_ORIGINAL.sub("", text("post_history_instructions"))),
        "alternate_greetings": alternates,
        "example_lines": [x for x in (sub(line) for line in lines) if x],
        "example_exchanges": [
            {"user": u, "reply": r} for u, r in ((sub(u), sub(r)) for u, r in exchanges) if u and r
        ],
        "lore": lore,
        "tags": [t for t in (sub(t) for t in _str_list(data.get("tags"), "tags", where, split=True)) if t],
        "creator": text("creator"),
        "streamer_name": streamer,
        "extensions": extensions,
    }
    return persona_from_dict(persona_dict, where)


def parse_examples(mes_example: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Split a card's `mes_example` into (user, reply) pairs and unpaired character lines.

    Blocks are separated by `<START>`; a line starting `{{user}}:` / `<USER>:` opens a
    user turn, `{{char}}:` / `<BOT>:` a character turn, other lines continue the turn
    before them (text before the first turn of a block is dropped). A user turn followed
    by a character turn is an exchange; a character turn with no user turn before it is
    an example line. Macros are left in place (the caller substitutes them).
    """
    exchanges: list[tuple[str, str]] = []
    lines: list[str] = []
    for block in _START.split(mes_example or ""):
        turns: list[list[Any]] = []  # [speaker, [lines]]
        for raw in block.splitlines():
            m = _TURN.match(raw)
            if m:
                who = "user" if "user" in m.group(1).lower() else "char"
                turns.append([who, [m.group(2).strip()]])
            elif turns and raw.strip():
                turns[-1][1].append(raw.strip())
        pending_user: str | None = None
        for who, parts in turns:
            said = "\n".join(x for x in parts if x).strip()
            if not said:
                continue
            if who == "user":
                pending_user = f"{pending_user}\n{said}" if pending_user else said
            elif pending_user is not None:
                exchanges.append((pending_user, said))
                pending_user = None
            else:
                lines.append(said)
    return exchanges, lines


def _str_list(value: Any, key: str, where: str, split: bool = False) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [x.strip() for x in value.split(",")] if split else [value.strip()]
    if not isinstance(value, list):
        raise UserError(f"{where}: character card field '{key}' must be a list, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, str):
            out.append(v.strip())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(str(v))
        elif v is not None:
            raise UserError(f"{where}: character card field '{key}' must hold text, got {type(v).__name__}")
    return [x for x in out if x]


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [k.strip() for k in value.split(",") if k.strip()]
    if isinstance(value, list):
        ok = [k for k in value if isinstance(k, (str, int, float)) and not isinstance(k, bool)]
        return [str(k).strip() for k in ok if str(k).strip()]
    return []


def _lore(book: Any, where: str, sub) -> tuple[list[dict], Any]:
    """Persona lore entries from a character_book (and the book, to keep whole)."""
    if book is None:
        return [], None
    if not isinstance(book, dict):
        raise UserError(f"{where}: character card field 'character_book' must be an object")
    entries = book.get("entries") or []
    if isinstance(entries, dict):  # SillyTavern world-info export: {"0": {...}, "1": {...}}
        entries = list(entries.values())
    if not isinstance(entries, list):
        raise UserError(f"{where}: character_book 'entries' must be a list")
    lore = []
    for e in entries:
        if not isinstance(e, dict) or e.get("use_regex"):
            continue  # regex keys do not work as the substring keys lore_for matches
        keys = _keys(e.get("keys", e.get("key"))) + _keys(e.get("secondary_keys", e.get("keysecondary")))
        keys = list(dict.fromkeys(k for k in (sub(k) for k in keys) if k))
        content = e.get("content")
        content = sub(content) if isinstance(content, str) else ""
        if not keys or not content:
            continue
        enabled = e.get("enabled", not e.get("disable", False))
        lore.append(
            {
                "keys": keys,
                "content": content,
                "enabled": bool(True if enabled is None else enabled),
                "case_sensitive": bool(e.get("case_sensitive") or False),
            }
        )
    return lore, book


# --------------------------------------------------------------------------- writing


def slug(name: str) -> str:
    """A file-name-safe form of a name: 'Luna the Bard!' -> 'luna-the-bard'."""
    s = re.sub(r"[^\w]+", "-", name.casefold()).strip("-_")
    return s[:64].strip("-_") or "persona"


def write_persona_yaml(persona: Persona, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a persona as YAML, atomically (temp file, then rename); refuses to replace a file
    unless `overwrite`."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{p}: is a folder; give a .yaml file name")
    if p.exists() and not overwrite:
        raise UserError(f"{p}: already exists (use --force to replace it)")
    body = yaml.safe_dump(persona_to_dict(persona), sort_keys=False, allow_unicode=True, width=100)
    source = f" from {Path(persona.path).name}" if persona.path else ""
    header = f"# {persona.name}: imported{source}. Edit freely (format: docs/personas.md).\n"
    header = header.replace("\n", " ").replace("\r", " ").rstrip() + "\n"
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(header + body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a persona is an ordinary file
        os.replace(tmp, p)
        tmp = None
    except OSError as e:
        raise UserError(f"{p}: cannot write persona ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return p


def import_card(
    card: str | os.PathLike,
    out: str | os.PathLike | None = None,
    streamer_name: str = "the streamer",
    overwrite: bool = False,
) -> tuple[Persona, Path]:
    """`vtuber persona import`: load a card and write it as a persona YAML file
    (default: personas/<slug of name>.yaml, where `--persona <slug>` finds it)."""
    persona = load_card(card, streamer_name)
    target = Path(out).expanduser() if out else user_personas() / f"{slug(persona.name)}.yaml"
    return persona, write_persona_yaml(persona, target, overwrite=overwrite)
