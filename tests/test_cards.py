"""Character card import (SillyTavern V1/V2/V3, JSON and PNG): every card is built here."""

from __future__ import annotations

import base64
import json
import os
import random
import struct
import zipfile
import zlib

import pytest
import yaml
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from vtuber.errors import UserError, quote
from vtuber.mind.cards import import_card, load_card, parse_examples, slug, write_persona_yaml
from vtuber.mind.persona import Exchange, load_persona

# --------------------------------------------------------------------------- builders


def chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def b64(card: dict) -> bytes:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))


def text_chunk(key: str, text: bytes, kind: bytes = b"tEXt") -> bytes:
    """A tEXt chunk, or a compressed zTXt / iTXt one, holding `text` under `key`."""
    k = key.encode("latin-1") + b"\0"
    if kind == b"zTXt":
        return chunk(b"zTXt", k + b"\0" + zlib.compress(text))
    if kind == b"iTXt":
        return chunk(b"iTXt", k + b"\x01\x00\0\0" + zlib.compress(text))
    return chunk(b"tEXt", k + text)


def png(
    *text_chunks: tuple[str, bytes],
    itxt: tuple[str, bytes] | None = None,
    after: tuple[bytes, ...] = (),
    before: tuple[bytes, ...] = (),
    size: tuple[int, int] = (1, 1),
    idat: bytes | None = None,
) -> bytes:
    """A valid greyscale PNG (1x1 unless `size`) with the given tEXt chunks (keyword, text
    bytes) before the pixels, and raw chunks `before` / `after` the pixels (SillyTavern
    writes its card after them, just before IEND)."""
    ihdr = struct.pack(">IIBBBBB", *size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    if idat is None:
        idat = zlib.compress((b"\x00" + b"\x80" * size[0]) * size[1])  # filter byte + pixels, per row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for key, text in text_chunks:
        out += text_chunk(key, text)
    if itxt:
        out += text_chunk(*itxt, kind=b"iTXt")
    out += b"".join(before) + chunk(b"IDAT", idat) + b"".join(after)
    return out + chunk(b"IEND", b"")


def write_json(tmp_path, card: dict, name: str = "card.json"):
    p = tmp_path / name
    p.write_text(json.dumps(card), encoding="utf-8")
    return p


def write_png(tmp_path, data: bytes, name: str = "card.png"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def one_line_error(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, "a UserError is shown as one line"
    return msg


V1 = {
    "name": "Rook",
    "description": "A grumpy crow who guards the lighthouse.",
    "personality": "grumpy, loyal, secretly soft",
    "scenario": "A stormy night at the lighthouse.",
    "first_mes": "Caw. Who let you in?",
    "mes_example": "<START>\n{{user}}: Hi Rook!\n{{char}}: Hmph. Hello.",
}


def v2(**data) -> dict:
    base = {
        "name": "Luna",
        "description": "Luna is a bard who sings to {{user}}.",
        "personality": "cheerful and curious",
        "scenario": "{{char}} performs at a tavern.",
        "first_mes": "Hello {{user}}! I'm {{char}}.",
        "mes_example": "",
        "creator_notes": "Made for testing.",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["Oh, {{user}}, you came back!"],
        "tags": ["fantasy", "bard"],
        "creator": "tester",
        "character_version": "1.2",
        "extensions": {"talkativeness": "0.5", "depth_prompt": {"prompt": "x", "depth": 4}},
    }
    base.update(data)
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": base}


def v3(**data) -> dict:
    card = v2(**data)
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"].update(
        {
            "name": data.get("name", "Vela"),
            "nickname": "Vee",
            "group_only_greetings": ["Hi everyone!"],
            "creator_notes_multilingual": {"en": "notes"},
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        }
    )
    return card


# --------------------------------------------------------------------------- versions and formats


def test_v1_flat_json(tmp_path):
    p = load_card(write_json(tmp_path, V1))
    assert p.name == "Rook"
    assert p.description == "A grumpy crow who guards the lighthouse."
    assert p.personality == "grumpy, loyal, secretly soft"
    assert p.scenario == "A stormy night at the lighthouse."
    assert p.greeting == "Caw. Who let you in?"
    assert p.example_exchanges == (Exchange("Hi Rook!", "Hmph. Hello."),)
    assert p.speaking_style.startswith("Stays in character as Rook. Short spoken replies, no emoji, no markdown.")
    assert "grumpy, loyal, secretly soft" in p.speaking_style
    assert p.extensions["card"]["spec"] == "chara_card_v1"


def test_v1_old_tavern_field_names(tmp_path):
    old = {"char_name": "Pip", "char_persona": "shy", "char_greeting": "h-hi", "world_scenario": "a library"}
    p = load_card(write_json(tmp_path, old))
    assert (p.name, p.personality, p.greeting, p.scenario) == ("Pip", "shy", "h-hi", "a library")
    assert p.description == "shy"  # no description: falls back to the personality


def test_v2_json(tmp_path):
    p = load_card(write_json(tmp_path, v2()), streamer_name="Sam")
    assert p.name == "Luna"
    assert p.description == "Luna is a bard who sings to Sam."
    assert p.greeting == "Hello Sam! I'm Luna."
    assert p.alternate_greetings == ("Oh, Sam, you came back!",)
    assert p.tags == ("fantasy", "bard")
    assert p.creator == "tester"
    assert p.streamer_name == "Sam"
    assert p.extensions["card"]["spec"] == "chara_card_v2"
    assert p.extensions["card"]["spec_version"] == "2.0"
    assert p.path.endswith("card.json")


def test_v2_png(tmp_path):
    p = load_card(write_png(tmp_path, png(("chara", b64(v2())))))
    assert p.name == "Luna"
    assert p.greeting == "Hello the streamer! I'm Luna."
    assert p.extensions["card"]["spec"] == "chara_card_v2"


def test_v3_png(tmp_path):
    p = load_card(write_png(tmp_path, png(("ccv3", b64(v3())))))
    assert p.name == "Vela"
    assert p.greeting == "Hello the streamer! I'm Vela."
    card = p.extensions["card"]
    assert card["spec"] == "chara_card_v3"
    assert card["unused"]["nickname"] == "Vee"
    assert card["unused"]["group_only_greetings"] == ["Hi everyone!"]
    assert card["unused"]["assets"][0]["type"] == "icon"


def test_png_with_both_chunks_prefers_ccv3(tmp_path):
    for order in ((("chara", b64(v2())), ("ccv3", b64(v3()))), (("ccv3", b64(v3())), ("chara", b64(v2())))):
        p = load_card(write_png(tmp_path, png(*order)))
        assert p.name == "Vela"
        assert p.extensions["card"]["spec"] == "chara_card_v3"


def test_png_itxt_compressed_chunk(tmp_path):
    raw = json.dumps(v2(name="Ünïcode ☆")).encode()
    p = load_card(write_png(tmp_path, png(itxt=("chara", base64.b64encode(raw)))))
    assert p.name == "Ünïcode ☆"


def test_charx_archive(tmp_path):
    path = tmp_path / "vela.charx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("card.json", json.dumps(v3()))
    assert load_card(path).name == "Vela"


# --------------------------------------------------------------------------- mapping


def test_macro_substitution_everywhere_case_insensitive(tmp_path):
    card = v2(
        description="{{Char}} adores <USER>. {{ user }} is <BOT>'s friend.",
        personality="fond of {{USER}}",
        scenario="<bot> meets {{user}}.",
        system_prompt="{{original}} Always speak as {{char}}.",
        post_history_instructions="Reply to {{user}} briefly.",
        alternate_greetings=["{{CHAR}} waves at {{User}}."],
        character_book={"entries": [{"keys": ["{{char}}'s hat"], "content": "{{char}} made it for {{user}}."}]},
    )
    p = load_card(write_json(tmp_path, card), streamer_name="Sam")
    assert p.description == "Luna adores Sam. Sam is Luna's friend."
    assert p.personality == "fond of Sam"
    assert p.scenario == "Luna meets Sam."
    assert p.system_prompt == "Always speak as Luna."
    assert p.post_history_instructions == "Reply to Sam briefly."
    assert p.alternate_greetings == ("Luna waves at Sam.",)
    assert p.lore[0].keys == ("Luna's hat",)
    assert p.lore_for("nice Luna's hat!") == ["Luna made it for Sam."]
    assert "Sam" in p.speaking_style and "{{" not in p.speaking_style


def test_mes_example_two_start_blocks_become_exchanges(tmp_path):
    mes = (
        "<START>\n"
        "{{user}}: What's your favourite song?\n"
        "{{char}}: The one about the moon.\n"
        "It goes la-la-la.\n"
        "<START>\n"
        "<USER>: Can you sing for {{char}}'s fans?\n"
        "{{char}}: Only if {{user}} claps along!\n"
    )
    p = load_card(write_json(tmp_path, v2(mes_example=mes)), streamer_name="Sam")
    assert p.example_exchanges == (
        Exchange("What's your favourite song?", "The one about the moon.\nIt goes la-la-la."),
        Exchange("Can you sing for Luna's fans?", "Only if Sam claps along!"),
    )
    assert p.example_lines == ()


def test_unpaired_char_lines_become_example_lines():
    exchanges, lines = parse_examples(
        "<START>\n{{char}}: *tunes lute* Ready when you are.\n<START>\n{{user}}: hi\n{{char}}: hello\n{{char}}: again"
    )
    assert exchanges == [("hi", "hello")]
    assert lines == ["*tunes lute* Ready when you are.", "again"]


def test_character_book_becomes_lore(tmp_path):
    book = {
        "name": "Luna's world",
        "scan_depth": 3,
        "entries": [
            {"keys": ["moonstone"], "secondary_keys": ["gem"], "content": "The moonstone glows at night.",
             "enabled": True, "insertion_order": 10, "case_sensitive": False},
            {"keys": ["Tavern"], "content": "The Silver Tavern is by the sea.", "enabled": False,
             "insertion_order": 20, "case_sensitive": True},
            {"keys": [], "content": "no keys: skipped", "constant": True},
            {"keys": ["empty"], "content": "  "},
        ],
    }
    p = load_card(write_json(tmp_path, v2(character_book=book)))
    assert len(p.lore) == 2
    assert p.lore[0].keys == ("moonstone", "gem")
    assert p.lore_for("Where did you find that MOONSTONE?") == ["The moonstone glows at night."]
    assert p.lore_for("a shiny gem") == ["The moonstone glows at night."]
    assert p.lore[1].enabled is False and p.lore[1].case_sensitive is True
    assert p.lore_for("the Tavern") == []  # disabled
    # the whole book is kept, constant entries and ordering included
    assert p.extensions["card"]["character_book"]["entries"][2]["constant"] is True


def test_missing_greeting_and_description_fall_back(tmp_path):
    p = load_card(write_json(tmp_path, v2(first_mes="", description="", personality="")))
    assert p.greeting == "Oh, the streamer, you came back!"
    assert p.alternate_greetings == ()
    assert p.description == "Luna."


def test_long_personality_stays_out_of_speaking_style(tmp_path):
    long = "very " * 60 + "talkative"
    p = load_card(write_json(tmp_path, v2(personality=long)))
    assert p.speaking_style == "Stays in character as Luna. Short spoken replies, no emoji, no markdown."
    assert p.personality == long


def test_unknown_fields_kept_and_survive_yaml_round_trip(tmp_path):
    card = v2(mystery_field={"nested": [1, 2.5, None, True]}, character_version="9")
    card["create_date"] = "2024-1-1 @12h"  # card-level field a V2 exporter adds
    card["name"] = "Luna"  # V1 duplicate at the top level: same as data.name, not kept twice
    persona = load_card(write_json(tmp_path, card), streamer_name="Sam")
    ext = persona.extensions
    assert ext["card"]["unused"]["mystery_field"] == {"nested": [1, 2.5, None, True]}
    assert ext["card"]["unused"]["creator_notes"] == "Made for testing."
    assert ext["card"]["unused"]["character_version"] == "9"
    assert ext["card"]["card_level"] == {"create_date": "2024-1-1 @12h"}
    assert ext["depth_prompt"] == {"prompt": "x", "depth": 4}  # data.extensions merged at the top
    assert ext["talkativeness"] == "0.5"

    out = write_persona_yaml(persona, tmp_path / "personas" / "luna.yaml")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Luna: imported from card.json.")
    assert yaml.safe_load(text)["name"] == "Luna"  # plain YAML, keys in persona order
    back = load_persona(str(out))
    assert back.extensions == persona.extensions
    for field in ("name", "description", "personality", "speaking_style", "greeting", "scenario",
                  "alternate_greetings", "example_exchanges", "tags", "creator", "streamer_name"):
        assert getattr(back, field) == getattr(persona, field), field
    assert not list(out.parent.glob(".*.tmp")), "no temp file left behind"


def test_round_trip_with_lore_and_exchanges(tmp_path):
    card = v2(
        mes_example="<START>\n{{user}}: hi\n{{char}}: hey there",
        character_book={"entries": [{"keys": ["lute"], "content": "Her lute is named Echo."}]},
    )
    back = load_persona(str(write_persona_yaml(load_card(write_json(tmp_path, card)), tmp_path / "l.yaml")))
    assert back.example_exchanges == (Exchange("hi", "hey there"),)
    assert back.lore_for("play the lute") == ["Her lute is named Echo."]


def test_import_card_writes_slugged_file_and_refuses_overwrite(tmp_path):
    card = write_png(tmp_path, png(("chara", b64(v2(name="Luna the Bard!")))))
    persona, out = import_card(card, tmp_path / "out.yaml", streamer_name="Sam")
    assert out.exists() and load_persona(str(out)).name == "Luna the Bard!"
    before = out.read_text(encoding="utf-8")
    msg = one_line_error(import_card, card, tmp_path / "out.yaml")
    assert "out.yaml" in msg and "already exists" in msg
    assert out.read_text(encoding="utf-8") == before
    _, again = import_card(card, tmp_path / "out.yaml", streamer_name="Kim", overwrite=True)
    assert load_persona(str(again)).streamer_name == "Kim"
    assert slug(persona.name) == "luna-the-bard"
    assert slug("☆☆") == "persona"


def test_write_refuses_overwrite(tmp_path):
    persona = load_card(write_json(tmp_path, V1))
    target = tmp_path / "rook.yaml"
    target.write_text("keep me", encoding="utf-8")
    msg = one_line_error(write_persona_yaml, persona, target)
    assert "rook.yaml" in msg and "already exists" in msg
    assert target.read_text(encoding="utf-8") == "keep me"
    write_persona_yaml(persona, target, overwrite=True)
    assert load_persona(str(target)).name == "Rook"


# --------------------------------------------------------------------------- errors


def test_broken_base64(tmp_path):
    path = write_png(tmp_path, png(("chara", b"this is not base64 !!!")))
    msg = one_line_error(load_card, path)
    assert "card.png" in msg and "base64" in msg


def test_broken_json_in_png(tmp_path):
    path = write_png(tmp_path, png(("chara", base64.b64encode(b'{"name": "Luna",'))))
    msg = one_line_error(load_card, path)
    assert "card.png" in msg and "not valid JSON" in msg


def test_broken_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"spec": "chara_card_v2", "data": {', encoding="utf-8")
    msg = one_line_error(load_card, path)
    assert "bad.json" in msg and "not valid JSON" in msg and "line 1" in msg


def test_json_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    assert "must be a JSON object" in one_line_error(load_card, path)


def test_png_without_card_chunk(tmp_path):
    path = write_png(tmp_path, png(("Comment", b"just a picture")), "plain.png")
    msg = one_line_error(load_card, path)
    assert "plain.png" in msg
    assert "not a character card: no 'chara' or 'ccv3' text chunk" in msg


def test_non_png_named_png(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"GIF89a not really")
    msg = one_line_error(load_card, path)
    assert "fake.png" in msg and "not a PNG" in msg


def test_truncated_png(tmp_path):
    data = png(("chara", b64(v2())))
    for cut in (len(data) - 20, 60, 12):  # inside IDAT, inside the card chunk, in a chunk header
        path = write_png(tmp_path, data[:cut], "cut.png")
        msg = one_line_error(load_card, path)
        assert "cut.png" in msg and "truncated PNG" in msg


def test_truncated_png_anywhere_card_after_the_pixels(tmp_path):
    data = png(after=(text_chunk("chara", b64(v2())),))
    for cut in range(8, len(data) - 4, 7):  # every kind of place, up to IEND's own header
        path = write_png(tmp_path, data[:cut], "cut.png")
        msg = one_line_error(load_card, path)
        assert "cut.png" in msg and "truncated PNG" in msg, cut
    assert "not a PNG" in one_line_error(load_card, write_png(tmp_path, data[:5], "cut.png"))


@pytest.mark.parametrize("where", ["before the pixels", "after the pixels"])
def test_damaged_card_chunk_crc(tmp_path, where):
    card = text_chunk("chara", b64(v2()))
    data = bytearray(png(before=(card,)) if where == "before the pixels" else png(after=(card,)))
    i = data.index(b"tEXtchara") + 20
    data[i] ^= 0x01  # flip a bit inside the base64 text, CRC now wrong
    msg = one_line_error(load_card, write_png(tmp_path, bytes(data)))
    assert "card.png" in msg and "damaged PNG" in msg  # Pillow's reason follows: "bad header checksum"


def test_damaged_pixels_are_one_line(tmp_path):
    # the card after the pixels is only reached by decoding them: a broken zlib stream (with a right CRC)
    data = png(after=(text_chunk("chara", b64(v2())),), idat=b"not a zlib stream")
    msg = one_line_error(load_card, write_png(tmp_path, data))
    assert "card.png" in msg and "damaged PNG" in msg


def test_unknown_spec(tmp_path):
    path = write_json(tmp_path, {"spec": "chara_card_v9", "data": {"name": "X"}})
    msg = one_line_error(load_card, path)
    assert "card.json" in msg and "unknown character card spec 'chara_card_v9'" in msg


def test_card_without_name(tmp_path):
    msg = one_line_error(load_card, write_json(tmp_path, v2(name="  ")))
    assert "card.json" in msg and "no name" in msg


def test_field_of_wrong_type(tmp_path):
    msg = one_line_error(load_card, write_json(tmp_path, v2(description={"oops": 1})))
    assert "'description' must be text" in msg


def test_missing_file(tmp_path):
    msg = one_line_error(load_card, tmp_path / "nope.png")
    assert "nope.png" in msg and "not found" in msg


def test_unrecognised_file(tmp_path):
    path = tmp_path / "card.txt"
    path.write_text("hello", encoding="utf-8")
    assert "not a character card" in one_line_error(load_card, path)


@pytest.mark.parametrize("kind", [b"iTXt", b"zTXt"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_compressed_chunk_that_unpacks_huge_is_refused(tmp_path, kind, where):
    bomb = text_chunk("chara", b"A" * (40 << 20), kind)  # 40 MiB of nothing, a few KB compressed
    p = write_png(tmp_path, png(**{where: (bomb,)}))
    assert p.stat().st_size < 200_000
    msg = one_line_error(load_card, p)
    limit = PngImagePlugin.MAX_TEXT_CHUNK >> 20  # Pillow's own limit, 1 MiB unless changed
    assert f"unpacks to more than Pillow allows ({limit} MiB a chunk" in msg and str(p) in msg
    assert len(msg) < len(str(p)) + 120


def test_many_compressed_chunks_over_pillows_total_text_limit_are_refused(tmp_path):
    # each chunk under MAX_TEXT_CHUNK, all of them over MAX_TEXT_MEMORY (64 MiB): a bomb too
    each = PngImagePlugin.MAX_TEXT_CHUNK - 1
    count = PngImagePlugin.MAX_TEXT_MEMORY // each + 2
    piece = text_chunk("Comment", b"B" * each, b"zTXt")
    p = write_png(tmp_path, png(("chara", b64(v2())), after=(piece,) * count))
    assert p.stat().st_size < 2_000_000
    msg = one_line_error(load_card, p)
    assert "unpacks to more than Pillow allows" in msg and str(p) in msg


def test_compressed_card_chunks_are_read(tmp_path):
    for kind in (b"zTXt", b"iTXt"):
        for where in ("before", "after"):
            p = write_png(tmp_path, png(**{where: (text_chunk("chara", b64(v2(name="Zed")), kind),)}))
            assert load_card(p).name == "Zed", (kind, where)


def test_sillytavern_layout_card_after_the_pixels(tmp_path):
    # SillyTavern writes 'chara' (and 'ccv3') as tEXt chunks between the last IDAT and IEND
    p = write_png(tmp_path, png(("chara", b64(v2())), after=(text_chunk("ccv3", b64(v3())),)))
    assert load_card(p).name == "Vela"
    p = write_png(tmp_path, png(after=(text_chunk("chara", b64(v2())),)))
    assert load_card(p).name == "Luna"


def test_compressed_chunk_that_does_not_unpack(tmp_path):
    broken = chunk(b"zTXt", b"chara\0\0" + b"not zlib data")  # Pillow reads it as empty text
    msg = one_line_error(load_card, write_png(tmp_path, png(after=(broken,))))
    assert "card.png" in msg and "'chara' text chunk is empty or cannot be unpacked" in msg
    unknown = chunk(b"zTXt", b"chara\0\x05" + zlib.compress(b"x"))  # compression method 5
    msg = one_line_error(load_card, write_png(tmp_path, png(after=(unknown,))))
    assert "card.png" in msg and "damaged PNG" in msg


@pytest.mark.parametrize("size", [(8000, 8000), (1, 40_000_000)])
def test_pixel_bomb_is_refused_before_decoding(tmp_path, size):
    # the card after the pixels is reached by decoding them: a tiny file claiming a huge image is refused
    p = write_png(tmp_path, png(size=size, idat=zlib.compress(b"\0"), after=(text_chunk("chara", b64(v2())),)))
    msg = one_line_error(load_card, p)
    assert str(p) in msg and "image too large for a character card" in msg


def test_animated_png_with_too_many_frames_is_refused(tmp_path):
    actl = chunk(b"acTL", struct.pack(">II", 4000, 0))  # 4000 frames of 128 x 128: 65 Mpx to decode
    p = write_png(tmp_path, png(size=(128, 128), before=(actl,), after=(text_chunk("chara", b64(v2())),)))
    msg = one_line_error(load_card, p)
    assert "image too large" in msg and "frame" in msg


@pytest.mark.parametrize(
    "error",
    [
        Image.DecompressionBombError("Image size (200000000 pixels) exceeds limit"),
        UnidentifiedImageError("cannot identify image file"),
        ValueError("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"),
        ValueError("APNG contains truncated acTL chunk"),
        OSError("image file is truncated (3 bytes not processed)"),
        SyntaxError("broken PNG file (bad header checksum in b'tEXt')"),
        EOFError(),
        struct.error("unpack requires a buffer of 4 bytes"),
        MemoryError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_pillow_exception_escapes(tmp_path, monkeypatch, error):
    class Broken:
        def __init__(self, fp):
            raise error

    monkeypatch.setattr(PngImagePlugin, "PngImageFile", Broken)
    msg = one_line_error(load_card, write_png(tmp_path, png(("chara", b64(v2())))))
    assert "card.png" in msg and ("damaged PNG" in msg or "unpacks to more than" in msg)


def test_no_pillow_exception_escapes_from_reading_the_text(tmp_path, monkeypatch):
    class Lazy(PngImagePlugin.PngImageFile):
        @property
        def text(self):
            raise OSError("broken data stream when reading image file")

    monkeypatch.setattr(PngImagePlugin, "PngImageFile", Lazy)
    msg = one_line_error(load_card, write_png(tmp_path, png(("chara", b64(v2())))))
    assert "card.png" in msg and "damaged PNG (broken data stream" in msg


def test_mangled_pngs_are_one_line_or_a_card(tmp_path):
    # whatever Pillow makes of a damaged file, the user sees a card or one line naming it
    rng = random.Random(7)
    layouts = (png(("chara", b64(v2()))), png(after=(text_chunk("ccv3", b64(v3()), b"iTXt"),)))
    for n in range(300):
        data = bytearray(rng.choice(layouts))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(8, len(data))]
        path = write_png(tmp_path, bytes(data), "mangled.png")
        try:
            load_card(path)
        except UserError as e:
            assert "\n" not in str(e) and str(path) in str(e), n


def test_garbage_after_the_png_signature(tmp_path):
    for junk in (b"", b"\0" * 50, bytes(range(256)), b"IHDR" * 20):
        msg = one_line_error(load_card, write_png(tmp_path, b"\x89PNG\r\n\x1a\n" + junk, "junk.png"))
        assert "junk.png" in msg and ("truncated PNG" in msg or "damaged PNG" in msg)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_is_refused_at_once(tmp_path):
    p = tmp_path / "card.png"
    os.mkfifo(p)  # opening it for reading would wait for a writer forever
    msg = one_line_error(load_card, p)
    assert str(p) in msg and "not a regular file" in msg


@pytest.mark.timeout(10)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_dev_zero_is_refused_at_once():
    msg = one_line_error(load_card, "/dev/zero")  # st_size 0, but it never ends
    assert "/dev/zero" in msg and "not a regular file" in msg


def test_folder_is_one_line(tmp_path):
    assert "is a folder" in one_line_error(load_card, tmp_path)


def test_a_huge_spec_value_is_quoted_short(tmp_path):
    msg = one_line_error(load_card, write_json(tmp_path, {"spec": "x" * 5_000_000, "data": {"name": "X"}}))
    assert "unknown character card spec 'xxxx" in msg and "…' (5000000 characters)" in msg
    assert len(msg) < 300


def test_quote_shows_at_most_limit_characters():
    assert quote("abc") == "'abc'"
    assert quote("a" * 5_000_000) == "'" + "a" * 80 + "…' (5000000 characters)"
    assert quote("line\nbreak" * 20, 8) == "'line\\nbre…' (200 characters)"  # stays one line
    assert quote(b"\x00" * 100, 2) == "b'\\x00\\x00…' (100 bytes)"
    assert quote(list(range(1000))).endswith("… (4890 characters)")
    assert quote(42) == "42"


def test_written_persona_is_an_ordinary_readable_file(tmp_path):
    import stat

    persona = load_card(write_json(tmp_path, v2()))
    out = write_persona_yaml(persona, tmp_path / "luna.yaml")
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
