"""The chat platform registry: a platform registered from one place is a `vtuber run`
flag, is checked before any model loads, feeds a session, and gets its replies back."""

from __future__ import annotations

import asyncio
import types

import pytest
from stream_helpers import NoVAD, ScriptedLLM, ToneTTS

from vtuber.cli import build_parser, main
from vtuber.events import ChatMessage
from vtuber.sources import platforms as registry
from vtuber.sources.platforms import ChatPlatform


class ToySource:
    """A toy chat room: one viewer says hello, then it waits for the co-host's reply."""

    name = "toy"

    def __init__(self, room: str, log: dict):
        self.room = room
        self.log = log
        self.counters = {"messages": 0}
        self.replied = asyncio.Event()

    def preflight(self) -> None:
        self.log["preflight"] = self.room

    def reply_limit(self) -> int:
        return 5

    async def send_reply(self, text: str, reply_to_id: str) -> str:
        self.log.setdefault("replies", []).append((reply_to_id, text))
        self.replied.set()
        return ""

    async def run(self, clock, emit) -> None:
        await clock.sleep_until(0.2)
        self.counters["messages"] += 1
        emit(ChatMessage(user="toyfan", text="hello from the toy room!", t=clock.now(), source="toy", id="toy-1"))
        await asyncio.wait_for(self.replied.wait(), 30)


@pytest.fixture
def toy():
    log: dict = {}
    registry.register(
        ChatPlatform(
            name="toy",
            flag="--toy",
            metavar="ROOM",
            hint="--toy ROOM",
            help="read chat from a toy room",
            open=lambda target, cfg: ToySource(target, log),
            can_reply=True,
            reply_max_wait_s=lambda cfg: 5.0,
            order=90,
        )
    )
    yield log
    registry.unregister("toy")


def run_help() -> str:
    return build_parser()._subparsers._group_actions[0].choices["run"].format_help()


def test_the_built_in_platforms_are_registered_with_their_flags():
    names = [p.name for p in registry.platforms()]
    assert names[:3] == ["chat_script", "twitch", "youtube"]
    text = run_help()
    for flag in ("--chat-script JSONL", "--twitch [CHANNEL]", "--youtube VIDEO_ID|@HANDLE"):
        assert flag in text


def test_nothing_to_listen_to_names_every_platform(capsys, toy):
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "vtuber: error: nothing to listen to: give --mic [DEVICE], --chat-script FILE, --twitch CHANNEL, "
        "--youtube VIDEO and/or --toy ROOM"
    ]


def test_a_platform_registers_twice_only_as_itself(toy):
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(ChatPlatform("toy", "--toy", "X", "--toy X", "another toy", open=lambda t, c: None))


def test_a_registered_platform_runs_a_session_and_gets_its_reply(toy, tmp_path, monkeypatch, capsys):
    from vtuber.commands import common
    from vtuber.pipeline import Engine

    assert "--toy ROOM" in run_help()
    reply = "Hi toyfan, welcome in!"

    def load(cfg, persona, quiet):
        no_asr = types.SimpleNamespace(prompt="", names=[])  # chat only: nothing is transcribed
        return Engine(cfg, persona, None, ScriptedLLM([reply]), no_asr, ToneTTS(0.05), NoVAD(), "CANARY-0000000000")

    monkeypatch.setattr(common, "load_engine", load)
    config = tmp_path / "c.toml"
    config.write_text("[plugins]\nenabled = []\n", encoding="utf-8")
    rc = main(["run", "--toy", "room7", "--reply-in-chat", "--duration", "60", "--config", str(config), "-q"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert toy["preflight"] == "room7"  # checked before the session
    assert [rid for rid, _ in toy["replies"]] == ["toy-1"]  # posted back to the message it answers
    assert "welcome in" in toy["replies"][0][1]
    assert "toy: messages 1" in out  # its counters in the end-of-run summary
