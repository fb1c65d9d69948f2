"""Unit tests for persona files: the bundled one, the streamer's own, and every way one can be wrong."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from vtuber.errors import UserError
from vtuber.mind.persona import Persona, load_persona, persona_from_dict
from vtuber.paths import bundled

GOOD = {
    "name": "Nova",
    "description": "A calm space-themed co-host.",
    "speaking_style": "Soft and dry.",
    "greeting": "Hello, travellers.",
}


def write(tmp_path, text: str, name: str = "nova.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def one_line_error(fn, *args) -> str:
    with pytest.raises(UserError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg, "a UserError is shown as one line"
    return msg


def test_bundled_miko_loads_by_name():
    p = load_persona("miko")
    assert isinstance(p, Persona)
    assert p.name == "Miko"
    assert p.streamer_name == "Sam"
    assert p.banned_words == ("heck",)
    assert p.max_tokens == 48
    assert p.max_chars == 220
    assert len(p.example_lines) == 3
    assert p.greeting.startswith("Hi chat")
    assert p.path == str(bundled("personas") / "miko.yaml")
    # The recogniser is primed with the persona's and the streamer's names first.
    assert p.asr_prompt.startswith("Hi Miko. Hello, Sam!")


def test_yaml_file_by_path(tmp_path):
    p = write(
        tmp_path,
        """\
        name: "  Nova  "
        description: A calm space-themed co-host.
        speaking_style: Soft and dry.
        greeting: Hello, travellers.
        example_lines: [Stars are out tonight., "   "]
        reply_length: {max_tokens: 32}
        banned_words: [darn]
        hotwords: [Nova, nebula]
        """,
    )
    persona = load_persona(str(p))
    assert persona.name == "Nova"  # trimmed
    assert persona.example_lines == ("Stars are out tonight.",)  # blank entries dropped
    assert persona.max_tokens == 32
    assert persona.max_chars == 240  # default
    assert persona.banned_words == ("darn",)
    assert persona.streamer_name == "the streamer"  # default
    assert persona.asr_prompt == "Hi Nova. Hello, the streamer! Nova, nebula."
    assert persona.path == str(p)


def test_minimal_dict_defaults():
    p = persona_from_dict(dict(GOOD), "test")
    assert (p.max_tokens, p.max_chars, p.banned_words, p.example_lines, p.hotwords) == (60, 240, (), (), ())


def test_missing_fields_listed_all_at_once(tmp_path):
    p = write(tmp_path, "name: Nova\ngreeting: '   '\n")
    msg = one_line_error(load_persona, str(p))
    assert str(p) in msg
    # All three problems in one go (a blank greeting counts as missing), the good `name` not among them.
    assert msg.endswith("missing persona field(s): description, speaking_style, greeting")


def test_non_string_required_field_is_reported():
    msg = one_line_error(persona_from_dict, {**GOOD, "name": 123}, "where.yaml")
    assert "where.yaml" in msg and "name" in msg


def test_unknown_field(tmp_path):
    p = write(tmp_path, yaml.safe_dump({**GOOD, "catchphrase": "nya"}))
    msg = one_line_error(load_persona, str(p))
    assert str(p) in msg and "catchphrase" in msg


def test_several_unknown_fields_of_mixed_key_types():
    # YAML turns `on:` and `1:` into a bool and an int key; the error must still be one clean line.
    msg = one_line_error(persona_from_dict, {**GOOD, True: "x", 1: "y", "mood": "z"}, "where.yaml")
    assert "where.yaml" in msg and "mood" in msg


@pytest.mark.parametrize(
    "reply_length,key",
    [
        ([48], "reply_length"),
        ("short", "reply_length"),
        ({"max_words": 10}, "reply_length"),
        ({"max_tokens": 4}, "max_tokens"),
        ({"max_tokens": 10000}, "max_tokens"),
        ({"max_tokens": "48"}, "max_tokens"),
        ({"max_tokens": 48.5}, "max_tokens"),
        ({"max_chars": 5}, "max_chars"),
        ({"max_chars": 5000}, "max_chars"),
    ],
)
def test_bad_reply_length(tmp_path, reply_length, key):
    p = write(tmp_path, yaml.safe_dump({**GOOD, "reply_length": reply_length}))
    msg = one_line_error(load_persona, str(p))
    assert str(p) in msg and key in msg


@pytest.mark.parametrize("key", ["banned_words", "example_lines", "hotwords"])
@pytest.mark.parametrize("value", ["heck", [1, 2], {"a": "b"}])
def test_bad_string_lists(key, value):
    msg = one_line_error(persona_from_dict, {**GOOD, key: value}, "where.yaml")
    assert "where.yaml" in msg and key in msg


@pytest.mark.parametrize("value", ["", "  ", 5])
def test_bad_streamer_name(value):
    msg = one_line_error(persona_from_dict, {**GOOD, "streamer_name": value}, "where.yaml")
    assert "streamer_name" in msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_not_a_mapping(tmp_path, text):
    p = write(tmp_path, text)
    msg = one_line_error(load_persona, str(p))
    assert str(p) in msg and "mapping" in msg


def test_invalid_yaml_names_the_line(tmp_path):
    p = write(
        tmp_path,
        """\
        name: Nova
        description: calm
        speaking_style: [soft, dry
        greeting: hi
        """,
    )
    msg = one_line_error(load_persona, str(p))
    assert "not valid YAML" in msg
    # The problem is found on line 4 (where the unclosed list meets the next key).
    assert f"{p}:4" in msg


def test_invalid_yaml_tab_indent_line_number(tmp_path):
    p = write(tmp_path, "name: Nova\ndescription: calm\n\tspeaking_style: soft\n")
    msg = one_line_error(load_persona, str(p))
    assert f"{p}:3" in msg


def test_missing_persona_name_lists_bundled_personas():
    msg = one_line_error(load_persona, "no_such_persona")
    assert "no persona named 'no_such_persona'" in msg
    assert "miko" in msg


def test_missing_persona_path(tmp_path):
    missing = tmp_path / "gone.yaml"
    msg = one_line_error(load_persona, str(missing))
    assert str(missing) in msg and "not found" in msg


def test_non_utf8_persona(tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: Caf\u00e9\n".encode("latin-1"))
    msg = one_line_error(load_persona, str(p))
    assert str(p) in msg and "UTF-8" in msg


def test_directory_as_persona(tmp_path):
    msg = one_line_error(load_persona, str(tmp_path))
    assert str(tmp_path) in msg


def test_empty_persona_name():
    # `persona = ""` in the config ends up here; it must not try to read the current directory.
    msg = one_line_error(load_persona, "")
    assert "persona" in msg


# ---- where personas come from: the user's folder, the config's folders, the package ----


def _persona_yaml(name: str) -> str:
    return f"name: {name}\ndescription: d\nspeaking_style: s\ngreeting: hi\n"


def test_user_folder_is_the_platform_config_dir(user_config_dir):
    from vtuber.paths import user_personas

    assert user_personas() == user_config_dir / "personas"


def test_a_persona_in_the_user_folder_is_found_by_name_and_hides_the_bundled_one(user_config_dir):
    from vtuber.mind.persona import find_personas

    folder = user_config_dir / "personas"
    folder.mkdir(parents=True)
    (folder / "miko.yaml").write_text(_persona_yaml("My Miko"), encoding="utf-8")
    (folder / "nova.yaml").write_text(_persona_yaml("Nova"), encoding="utf-8")
    assert load_persona("nova").name == "Nova"
    assert load_persona("miko").name == "My Miko"
    found = find_personas()
    assert found["miko"] == (folder / "miko.yaml", "user")
    assert found["nova"][1] == "user"


def test_config_folders_come_after_the_user_folder_and_before_the_bundled_ones(tmp_path, user_config_dir):
    from vtuber.mind.persona import find_personas, list_personas

    extra = tmp_path / "team-personas"
    extra.mkdir()
    (extra / "rook.yaml").write_text(_persona_yaml("Rook"), encoding="utf-8")
    (extra / "miko.yaml").write_text(_persona_yaml("Team Miko"), encoding="utf-8")
    assert load_persona("rook", [str(extra)]).name == "Rook"
    assert load_persona("miko", [str(extra)]).name == "Team Miko"
    assert find_personas([str(extra)])["rook"] == (extra / "rook.yaml", "config")
    assert "rook" not in list_personas()  # only where the config names the folder
    with pytest.raises(UserError):
        load_persona("rook")


def test_persona_list_shows_where_each_comes_from(user_config_dir, tmp_path, capsys):
    from vtuber.cli import main

    folder = user_config_dir / "personas"
    folder.mkdir(parents=True)
    (folder / "nova.yaml").write_text(_persona_yaml("Nova"), encoding="utf-8")
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "rook.yaml").write_text(_persona_yaml("Rook"), encoding="utf-8")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'persona_folders = ["{extra}"]\n', encoding="utf-8")
    assert main(["persona", "list", "--config", str(cfg)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "nova Nova" in out and f"(user: {folder / 'nova.yaml'})" in out
    assert "rook Rook" in out and f"(config: {extra / 'rook.yaml'})" in out
    assert "miko Miko" in out and "(bundled: " in out
