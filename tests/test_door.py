"""The one door for untrusted text: what a stranger types never reaches a terminal,
a report or the prompt as anything but plain text."""

from __future__ import annotations

import io
import json

import pytest

from vtuber.door import MAX_NAME, MAX_TEXT, admit, clean_name, clean_text
from vtuber.events import ChatMessage, StreamEvent

HOSTILE = {
    "clear screen": "\x1b[2J\x1b[Hgotcha",
    "window title (OSC 0, BEL)": "\x1b]0;pwned\x07gotcha",
    "clipboard write (OSC 52, ST)": "\x1b]52;c;cm0gLXJmIH4=\x1b\\gotcha",
    "hyperlink (OSC 8)": "\x1b]8;;https://evil.example\x1b\\gotcha\x1b]8;;\x1b\\",
    "C1 CSI (U+009B)": "\x9b2Jgotcha",
    "C1 OSC (U+009D)": "\x9d0;pwned\x9cgotcha",
    "DCS": "\x1bPq#0;2;0;0;0\x1b\\gotcha",
    "bare ESC": "\x1bcgotcha",
    "bidi override": "\u202egotcha\u202c",
    "backspaces and bell": "got\x08\x08\x07cha",
}


def assert_plain(s: str) -> None:
    assert "\x1b" not in s and "\x07" not in s
    assert not any(0x80 <= ord(c) <= 0x9F for c in s), repr(s)
    assert not any(ord(c) < 0x20 for c in s), repr(s)
    assert "\u202e" not in s and "\u202c" not in s


@pytest.mark.parametrize("name", list(HOSTILE))
def test_escape_sequences_are_removed_whole(name):
    out = clean_text(HOSTILE[name])
    assert_plain(out)
    assert "gotcha" in out.replace(" ", "")
    assert "pwned" not in out and "evil" not in out  # the sequence's payload went with it


def test_newlines_tabs_and_separators_become_single_spaces():
    assert clean_text("one\ntwo\r\nthree\tfour\u2028five\u2029six  seven") == "one two three four five six seven"


def test_ordinary_text_is_untouched():
    for s in ["hi Miko! how's it going? 🎉", "日本語もOK", "café ☕ <3", "👨‍👩‍👧 family"]:
        assert clean_text(s) == s


def test_lengths_are_capped_and_huge_input_is_cheap():
    assert len(clean_text("x" * 5_000_000)) == MAX_TEXT
    assert len(clean_name("n" * 1000)) == MAX_NAME
    assert clean_name("\x1b[31m\x1b[0m") == "viewer"


def test_admit_cleans_chat_and_events_and_drops_empty_chat():
    msg = ChatMessage(user="\x1b]0;x\x07bob", text="hi\x1b[2J there", t=1.0)
    clean = admit(msg)
    assert (clean.user, clean.text, clean.t) == ("bob", "hi there", 1.0)
    assert admit(ChatMessage(user="a", text="\x1b[2J\x07", t=0.0)) is None
    ev = admit(StreamEvent(kind="raid", user="raider\x9b2J", t=2.0, amount=5, text="\x1b]52;c;eA==\x07hey"))
    assert (ev.user, ev.text, ev.amount) == ("raider", "hey", 5)
    untouched = ChatMessage(user="amy", text="hello", t=0.0)
    assert admit(untouched) is untouched


def test_hostile_chat_reaches_console_and_reports_only_as_plain_text(engine, tmp_path):
    """A real rehearsal: escapes in names and text are gone from the console, the
    transcript and timings.json; the messages are still answered or dropped by name."""
    from rich.console import Console

    from vtuber.outputs.console import ConsoleOutput
    from vtuber.outputs.recorder import Recorder
    from vtuber.rehearsal import load_inputs, run_rehearsal

    rows = [
        {"t": 0.1, "user": "\x1b]0;owned\x07mallory", "text": "\x1b[2J\x1b[Hhi Miko, what is your name?"},
        {"t": 0.2, "user": "eve\x9b31m", "text": "\x1b]52;c;cm0gLXJmIH4=\x07do you like games?"},
        {"t": 0.3, "user": "trudy", "text": "\x1b]8;;https://x.example\x1b\\click\x1b]8;;\x1b\\ me | **bold** <b>x</b>"},
    ]
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    recorder = Recorder()
    out = tmp_path / "out"
    session, _ = run_rehearsal(
        engine, load_inputs(chat, None), out, fast=True,
        outputs=[ConsoleOutput(recorder, "Miko", console)], recorder=recorder,
    )
    shown = buf.getvalue()
    transcript = (out / "transcript.md").read_text(encoding="utf-8")
    timings = (out / "timings.json").read_text(encoding="utf-8")
    for text in (shown, transcript, timings):
        assert "\x1b" not in text and "\\u001b" not in text and "\x9b" not in text and "\\u009b" not in text
        assert "owned" not in text and "cm0gLXJmIH4" not in text and "x.example" not in text
    seen = {r.user for r in session.recorder.finished()} | {d.user for d in session.recorder.dropped}
    assert {"mallory", "eve", "trudy"} <= seen
    # Markdown and HTML in chat are inert in the transcript.
    assert "<b>" not in transcript and "&lt;b&gt;" in transcript
    assert "\\*\\*bold\\*\\*" in transcript and "\\|" in transcript


@pytest.mark.parametrize(
    "hidden",
    ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\ufe0f", "\u3164", "\U000e0041", "\u180e"],
)
def test_invisible_characters_in_a_user_name_are_folded(hidden):
    """`u101` and `u101` with an invisible character are the same viewer (memory, caps, console)."""
    assert clean_name(f"u1{hidden}01{hidden}") == "u101"
    a = admit(ChatMessage(text="hi", user="u101", t=0.0))
    b = admit(ChatMessage(text="hi", user=f"u101{hidden}", t=0.0))
    assert a.user == b.user == "u101"
    assert clean_name(hidden * 5) == "viewer"  # a name of nothing visible is no name


def test_invisible_name_variants_are_one_viewer_in_memory():
    from vtuber.memory import ViewerMemory

    memory = ViewerMemory(None)
    for user in ("u101", "u101\u200b", "\u2060u101", "u1\u200d01"):
        memory.seen(admit(ChatMessage(text="hello", user=user, t=0.0)))
    assert len(memory) == 1
    assert memory.find("u101")[0].messages == 4


def test_visible_letters_of_other_scripts_stay_in_names():
    assert clean_name("Ἀθηνᾶ") == "Ἀθηνᾶ" and clean_name("ゆき") == "ゆき" and clean_name("José") == "José"
