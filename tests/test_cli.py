"""The command line: a user's mistake is one clear line and exit code 2, and nothing is written."""

from __future__ import annotations

import wave

import pytest

from vtuber.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.err.strip().splitlines()


@pytest.fixture
def good_chat(tmp_path):
    p = tmp_path / "chat.jsonl"
    p.write_text('{"t": 0.5, "user": "alice", "text": "hi"}\n', encoding="utf-8")
    return p


def _bad_files(tmp_path):
    chat = tmp_path / "bad.jsonl"
    chat.write_text('{"t": 1, "text": "ok"}\n{"t": 2, "user": "x"}\n', encoding="utf-8")
    notjson = tmp_path / "notjson.jsonl"
    notjson.write_text("hello there\n", encoding="utf-8")
    persona = tmp_path / "p.yaml"
    persona.write_text("name: Test\ndescription: d\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[llm]\ntemprature = 0.5\n", encoding="utf-8")
    trunc = tmp_path / "trunc.wav"
    with wave.open(str(trunc), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x00" * 16000)
    trunc.write_bytes(trunc.read_bytes()[:-10000])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    return {
        "chat line without text": (["--chat", str(chat)], "bad.jsonl:2: missing 'text'"),
        "chat line not JSON": (["--chat", str(notjson)], "notjson.jsonl:1: not JSON"),
        "persona missing fields": (["--chat", str(chat), "--persona", str(persona)], "missing persona field(s): speaking_style, greeting"),
        "unknown config key": (["--config", str(cfg)], "unknown key 'llm.temprature'"),
        "truncated wav": (["--speech", str(trunc)], "trunc.wav: WAV file is truncated"),
        "empty wav": (["--speech", str(empty)], "empty.wav: not a readable PCM WAV"),
        "missing model": (["--llm", str(tmp_path / "none.gguf")], "models.llm:"),
        "model that is not a GGUF": (["--llm", str(persona)], "not a GGUF file"),
        "missing voice": (["--voice", str(tmp_path / "v.onnx")], "models.voice:"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "chat line without text",
        "chat line not JSON",
        "persona missing fields",
        "unknown config key",
        "truncated wav",
        "empty wav",
        "missing model",
        "model that is not a GGUF",
        "missing voice",
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    argv, expected = _bad_files(tmp_path)[case]
    out = tmp_path / "out"
    rc, lines = run(capsys, "rehearse", *argv, "--out", str(out))
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("vtuber: error: "), lines
    assert expected in lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]


def test_speaker_without_a_usable_device_is_one_line(good_chat, tmp_path, capsys):
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--speaker", "no-such-device-xyz", "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1
    assert "--speaker" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--speech-at", "nan"], "--speech-at must be a number of seconds"),
        (["--speech-at", "inf"], "--speech-at must be a number of seconds"),
    ],
)
def test_bad_speech_offset(argv, expected, good_chat, tmp_path, capsys):
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), *argv, "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and expected in lines[0]


def test_out_that_is_a_file_is_refused_before_any_work(good_chat, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--out", str(target))
    assert rc == 2 and lines == [f"vtuber: error: --out {target}: exists and is not a folder"]
    assert target.read_text() == "keep me"


def test_missing_banned_words_file_is_one_line(good_chat, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[safety]\nbanned_words_file = "{tmp_path / "nope.txt"}"\n')
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and "cannot read the banned words file" in lines[0]


def test_unknown_plugin_is_one_line(good_chat, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[plugins]\nenabled = ["commands", "nope"]\n')
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and "no plugin named 'nope'" in lines[0]


def test_persona_check_lists_every_problem(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("name: X\nreply_length: {max_tokens: 2}\nmood: happy\n")
    rc, lines = run(capsys, "persona", "check", str(p))
    assert rc == 2 and len(lines) == 3
    assert any("unknown persona field(s): 'mood'" in line for line in lines)
    assert any("missing persona field(s): description, speaking_style, greeting" in line for line in lines)
    assert any("reply_length.max_tokens" in line for line in lines)


def test_bench_rejects_a_bad_turn_count(capsys):
    rc, lines = run(capsys, "bench", "--turns", "0")
    assert rc == 2 and lines == ["vtuber: error: --turns must be in [1, 200], got 0"]


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["rehearse", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--chat", "--speech", "--fast", "--out", "--speaker", "--persona", "--config"):
        assert flag in text


def test_an_empty_chat_script_is_one_line(tmp_path, capsys):
    chat = tmp_path / "empty.jsonl"
    chat.write_text("# nothing yet\n\n", encoding="utf-8")
    rc, lines = run(capsys, "rehearse", "--chat", str(chat), "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and "no messages" in lines[0] and str(chat) in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.timeout(20)
def test_a_fifo_as_chat_script_is_refused_at_once(tmp_path, capsys):
    import os

    fifo = tmp_path / "chat.jsonl"
    os.mkfifo(fifo)
    rc, lines = run(capsys, "rehearse", "--chat", str(fifo), "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and "not a regular file" in lines[0]


@pytest.mark.timeout(20)
def test_dev_zero_as_chat_script_is_refused_at_once(tmp_path, capsys):
    rc, lines = run(capsys, "rehearse", "--chat", "/dev/zero", "--out", str(tmp_path / "o"))
    assert rc == 2 and len(lines) == 1 and "/dev/zero" in lines[0]


def test_out_holding_the_users_files_is_refused_before_any_work(good_chat, tmp_path, capsys):
    mine = tmp_path / "transcript.md"
    mine.write_text("my own notes", encoding="utf-8")
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--out", str(tmp_path))
    assert rc == 2 and len(lines) == 1 and "--force" in lines[0] and "chat.jsonl" in lines[0]
    assert mine.read_text(encoding="utf-8") == "my own notes"


def test_out_that_cannot_be_written_is_found_up_front(good_chat, capsys):
    rc, lines = run(capsys, "rehearse", "--chat", str(good_chat), "--out", "/proc/vtuber-x")
    assert rc == 2 and len(lines) == 1 and "/proc/vtuber-x" in lines[0] and "cannot write" in lines[0]


@pytest.mark.models
def test_a_persona_too_long_for_the_context_fails_check_and_load(tmp_path, capsys):
    p = tmp_path / "long.yaml"
    lore = "\n".join(f"  - keys: [k{i}]\n    content: {'lots of background words ' * 20}" for i in range(3))
    p.write_text(
        "name: Long\ndescription: " + "a very long description of who she is. " * 120
        + "\nspeaking_style: s\ngreeting: hi\nlore:\n" + lore + "\n",
        encoding="utf-8",
    )
    rc, lines = run(capsys, "persona", "check", str(p))
    assert rc == 2 and len(lines) == 1
    assert "llm.context is 1024" in lines[0] and " over" in lines[0]
    cfg = tmp_path / "big.toml"
    cfg.write_text("[llm]\ncontext = 8192\n", encoding="utf-8")
    rc, lines = run(capsys, "persona", "check", str(p), "--config", str(cfg))
    assert rc == 0, lines
    chat = tmp_path / "c.jsonl"
    chat.write_text('{"text": "hi"}\n', encoding="utf-8")
    rc, lines = run(capsys, "rehearse", "--chat", str(chat), "--persona", str(p), "--out", str(tmp_path / "o"), "-q")
    assert rc == 2 and len(lines) == 1 and "llm.context is 1024" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.models
def test_a_plugin_that_calls_sys_exit_is_disabled_and_the_run_goes_on(tmp_path, capsys, caplog):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "quitter.py").write_text(
        "import sys\nfrom vtuber.plugins import Plugin\n"
        "class Quitter(Plugin):\n    def on_chat(self, msg):\n        sys.exit(0)\n",
        encoding="utf-8",
    )
    (plugins / "leaver.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    (plugins / "sleeper.py").write_text("import time\ntime.sleep(3600)\n", encoding="utf-8")  # never enabled: never run
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[plugins]\nfolder = "{plugins}"\nenabled = ["commands", "quitter", "leaver"]\n', encoding="utf-8")
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"t": 0.1, "user": "amy", "text": "hi Miko!"}\n', encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["rehearse", "--chat", str(chat), "--config", str(cfg), "--fast", "-q", "--out", str(out)])
    assert rc == 0
    assert (out / "transcript.md").is_file() and "amy" in (out / "transcript.md").read_text(encoding="utf-8")
    disabled = [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()]
    assert any("quitter" in m and "SystemExit" in m for m in disabled), disabled
    assert sum("leaver" in m for m in disabled) == 1, disabled  # logged once, not once per load


def test_each_command_says_its_module_docstring_in_help_and_description():
    import argparse
    import importlib

    from vtuber.cli import build_parser
    from vtuber.commands import COMMANDS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert list(helps) == list(COMMANDS)
    for name in COMMANDS:
        doc = importlib.import_module(f"vtuber.commands.{name}").__doc__
        first, _, rest = doc.strip().partition("\n\n")
        assert helps[name] == " ".join(first.split()) != "", name  # its line in `vtuber --help`
        assert sub.choices[name].description == (" ".join(rest.split()) or None), name
