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
