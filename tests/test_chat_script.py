"""Unit tests for chat scripts (JSONL): what a rehearsal replays, and every way a file can be wrong."""

from __future__ import annotations

import json
import os

import pytest

from vtuber.errors import MAX_JSON_LINE, UserError, json_lines
from vtuber.events import ChatMessage
from vtuber.redteam import parse_cases
from vtuber.sources.chat_script import MAX_TEXT, parse_chat_script


def write(tmp_path, text: str, name: str = "chat.jsonl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def user_error(path, match: str | None = None) -> UserError:
    with pytest.raises(UserError) as info:
        parse_chat_script(path)
    msg = str(info.value)
    assert "\n" not in msg, "a UserError is shown as one line"
    assert str(path) in msg, "the message names the file"
    if match is not None:
        assert match in msg, msg
    return info.value


def test_valid_script_all_fields(tmp_path):
    p = write(
        tmp_path,
        json.dumps({"t": 2.0, "user": "alice", "text": "hi Miko!", "badges": ["subscriber"], "bits": 100}) + "\n"
        + json.dumps({"t": 5, "user": "bob", "text": "what game is this?"}) + "\n",
    )
    msgs = parse_chat_script(p)
    assert msgs == [
        ChatMessage(user="alice", text="hi Miko!", t=2.0, badges=("subscriber",), bits=100, source="script", id="script-1"),
        ChatMessage(user="bob", text="what game is this?", t=5.0, badges=(), bits=0, source="script", id="script-2"),
    ]
    assert isinstance(msgs[1].t, float)


def test_defaults_user_viewer_and_t_from_previous_line(tmp_path):
    p = write(tmp_path, '{"t": 3.5, "text": "first"}\n{"text": "second"}\n')
    msgs = parse_chat_script(p)
    assert [(m.user, m.t, m.badges, m.bits) for m in msgs] == [("viewer", 3.5, (), 0), ("viewer", 3.5, (), 0)]


def test_first_line_without_t_starts_at_zero(tmp_path):
    msgs = parse_chat_script(write(tmp_path, '{"text": "hello"}\n'))
    assert msgs[0].t == 0.0


def test_comments_and_blank_lines_skipped_and_line_numbers_kept(tmp_path):
    p = write(
        tmp_path,
        "# a rehearsal script\n\n   \n{\"t\": 1, \"text\": \"one\"}\n  # indented comment\n{\"t\": 2, \"text\": \"two\"}\n",
    )
    msgs = parse_chat_script(p)
    assert [m.text for m in msgs] == ["one", "two"]
    assert [m.id for m in msgs] == ["script-4", "script-6"]  # ids carry the file's line number


def test_sorted_by_t(tmp_path):
    p = write(tmp_path, '{"t": 9, "text": "late"}\n{"t": 1, "text": "early"}\n{"t": 4, "text": "middle"}\n')
    assert [m.text for m in parse_chat_script(p)] == ["early", "middle", "late"]


def test_text_and_user_trimmed_and_long_text_cut(tmp_path):
    long = "a" * (MAX_TEXT + 250)
    p = write(tmp_path, json.dumps({"user": "  carol  ", "text": "  " + long + "  "}) + "\n")
    (m,) = parse_chat_script(p)
    assert m.user == "carol"
    assert MAX_TEXT == 500
    assert m.text == "a" * 500


def test_unicode_text_kept(tmp_path):
    (m,) = parse_chat_script(write(tmp_path, json.dumps({"text": "こんにちは Miko ✨"}, ensure_ascii=False) + "\n"))
    assert m.text == "こんにちは Miko ✨"


@pytest.mark.parametrize("content", ["", "# only a comment\n\n", "\n   \n"])
def test_a_script_with_nothing_in_it_is_one_line(tmp_path, content):
    path = write(tmp_path, content)
    msg = str(user_error(path))
    assert str(path) in msg and "no messages" in msg


def test_huge_integer_time_is_one_line(tmp_path):
    path = write(tmp_path, '{"t": ' + "9" * 400 + ', "text": "hi"}\n')
    msg = str(user_error(path))
    assert f"{path}:1" in msg and "'t'" in msg
    assert len(msg) < 300  # the 400-digit value is quoted cut short


def test_deeply_nested_json_is_one_line(tmp_path):
    path = write(tmp_path, '{"text": ' + "[" * 10000 + "]" * 10000 + "}\n")
    msg = str(user_error(path))
    assert f"{path}:1" in msg and ("nested" in msg or "text" in msg)


def test_a_huge_value_is_not_repeated_in_the_error_line(tmp_path):
    path = write(tmp_path, json.dumps({"event": "x" * 50_000, "user": "a"}) + "\n")
    msg = str(user_error(path))
    assert len(msg) < 400 and "50000 characters" in msg


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_up_front(tmp_path):
    fifo = tmp_path / "chat.jsonl"
    os.mkfifo(fifo)  # nobody writes: reading it would block forever
    msg = str(user_error(fifo))
    assert str(fifo) in msg and "not a regular file" in msg


@pytest.mark.timeout(10)
def test_dev_zero_is_refused_not_read_forever():
    msg = str(user_error("/dev/zero"))
    assert "/dev/zero" in msg and "not a regular file" in msg


def test_a_script_over_the_size_cap_is_one_line(tmp_path):
    from vtuber.errors import MAX_TEXT_FILE

    line = '{"text": "hi"}\n'
    path = write(tmp_path, line * (MAX_TEXT_FILE // len(line) + 1))
    msg = str(user_error(path))
    assert str(path) in msg and "too large" in msg


# ---- bad input: every one is a one-line UserError naming the file (and line) ----


def test_not_json_names_path_and_line(tmp_path):
    p = write(tmp_path, '{"text": "ok"}\n# fine\n{"text": "broken"\n')
    user_error(p, f"{p}:3")


def test_json_array_line(tmp_path):
    p = write(tmp_path, '{"text": "ok"}\n["hi", "there"]\n')
    user_error(p, f"{p}:2")


@pytest.mark.parametrize("line", ['"just a string"', "42", "null"])
def test_json_non_object_line(tmp_path, line):
    p = write(tmp_path, line + "\n")
    user_error(p, f"{p}:1")


@pytest.mark.parametrize(
    "obj",
    [{"t": 1}, {"t": 1, "text": ""}, {"t": 1, "text": "   "}, {"t": 1, "text": None}, {"t": 1, "text": 5}, {"t": 1, "text": ["hi"]}],
)
def test_missing_or_empty_text(tmp_path, obj):
    p = write(tmp_path, '{"text": "fine"}\n' + json.dumps(obj) + "\n")
    err = user_error(p, f"{p}:2")
    assert "text" in str(err)


@pytest.mark.parametrize("t", [-1, -0.5, "3", "soon", None, True, [1]])
def test_bad_t(tmp_path, t):
    p = write(tmp_path, json.dumps({"t": t, "text": "hi"}) + "\n")
    err = user_error(p, f"{p}:1")
    assert "'t'" in str(err)


@pytest.mark.parametrize("t", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_t(tmp_path, t):
    # Python's json accepts these; a NaN breaks the sort and an infinite time never arrives.
    p = write(tmp_path, '{"t": %s, "text": "hi"}\n' % t)
    err = user_error(p, f"{p}:1")
    assert "'t'" in str(err)


@pytest.mark.parametrize("user", ["", "   ", 7, None, ["bob"]])
def test_bad_user(tmp_path, user):
    p = write(tmp_path, json.dumps({"user": user, "text": "hi"}) + "\n")
    err = user_error(p, f"{p}:1")
    assert "user" in str(err)


@pytest.mark.parametrize("badges", ["subscriber", ["vip", 3], {"vip": True}, None, 1])
def test_bad_badges(tmp_path, badges):
    p = write(tmp_path, json.dumps({"text": "hi", "badges": badges}) + "\n")
    err = user_error(p, f"{p}:1")
    assert "badges" in str(err)


@pytest.mark.parametrize("bits", [-5, 2.5, "100", True, None, [100]])
def test_bad_bits(tmp_path, bits):
    p = write(tmp_path, json.dumps({"text": "hi", "bits": bits}) + "\n")
    err = user_error(p, f"{p}:1")
    assert "bits" in str(err)


def test_missing_file(tmp_path):
    user_error(tmp_path / "nope.jsonl", "not found")


def test_non_utf8_bytes(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    user_error(p, "UTF-8")


def test_directory_instead_of_file(tmp_path):
    user_error(tmp_path)


def test_json_lines_gives_number_place_and_object_skipping_blanks_and_comments():
    text = '# a comment\n\n  {"text": "hi"}  \n{"t": 2, "text": "yo"}\n'
    assert list(json_lines(text, "f.jsonl")) == [
        (3, "f.jsonl:3", {"text": "hi"}),
        (4, "f.jsonl:4", {"t": 2, "text": "yo"}),
    ]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("not json", "f.jsonl:2: not JSON (Expecting value)"),
        ("[1, 2]", "f.jsonl:2: expected a JSON object"),
        ("[" * 100000 + "]" * 100000, "f.jsonl:2: line too long (200000 characters; at most 65536)"),
        ("[" * 30000 + "]" * 30000, "f.jsonl:2: JSON nested too deeply"),
    ],
)
def test_json_lines_mistakes_are_one_line_naming_the_place(line, expected):
    with pytest.raises(UserError) as info:
        list(json_lines('{"text": "ok"}\n' + line + "\n", "f.jsonl"))
    msg = str(info.value)
    assert msg.startswith(expected) and "\n" not in msg, msg


@pytest.mark.parametrize("line", ["not json", "[1, 2]", "x" * (MAX_JSON_LINE + 1)])
def test_chat_scripts_and_redteam_cases_report_a_bad_line_alike(tmp_path, line):
    path = write(tmp_path, '{"text": "ok"}\n' + line + "\n")
    from_script = str(user_error(path))
    with pytest.raises(UserError) as info:
        parse_cases(path.read_text(encoding="utf-8"), str(path))
    assert str(info.value) == from_script
