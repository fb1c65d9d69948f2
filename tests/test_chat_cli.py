"""`vtuber auth twitch` (device code flow against the fake Twitch), `vtuber auth youtube`,
and the live chat options of `vtuber run`: documented, and a user's mistake is one line."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

import fake_twitch as ft
from vtuber.cli import build_parser, main
from vtuber.tokens import TokenStore, token_file


def fake_config(tmp_path, fake, client_id=ft.CLIENT_ID):
    p = tmp_path / "twitch.toml"
    p.write_text(
        f'[twitch]\nclient_id = "{client_id}"\napi_base = "{fake.api_base}"\nid_base = "{fake.id_base}"\neventsub_url = "{fake.eventsub_url}"\n',
        encoding="utf-8",
    )
    return p


async def test_auth_twitch_runs_the_device_code_flow_and_saves_the_tokens_0600(tmp_path, capsys):
    fake = await ft.FakeTwitch().start()
    try:
        cfg = fake_config(tmp_path, fake)
        run = asyncio.ensure_future(asyncio.to_thread(main, ["auth", "twitch", "--config", str(cfg)]))
        while not fake.device_codes and not run.done():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the user reads the code, and the CLI polls: authorization_pending
        fake.approve_devices()
        rc = await asyncio.wait_for(run, 20)
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "ABCD-EFGH" in out and "/activate" in out and "logged in to Twitch as mikobot" in out
        saved = TokenStore().get("twitch")
        assert saved["access_token"] in fake.tokens and saved["refresh_token"] and saved["user_id"] == ft.BOT["id"]
        assert stat.S_IMODE(os.stat(token_file()).st_mode) == 0o600
        assert "access_token" not in cfg.read_text()
    finally:
        await fake.stop()


async def test_auth_twitch_mistakes_are_one_line(tmp_path, capsys):
    fake = await ft.FakeTwitch().start()
    try:
        rc = await asyncio.to_thread(main, ["auth", "twitch", "--config", str(fake_config(tmp_path, fake, client_id=""))])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "client id" in err[0]
        rc = await asyncio.to_thread(main, ["auth", "twitch", "--config", str(fake_config(tmp_path, fake, client_id="wrong"))])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "client_id" in err[0]
    finally:
        await fake.stop()
    # Twitch unreachable (nothing listens there any more)
    rc = await asyncio.to_thread(main, ["auth", "twitch", "--config", str(fake_config(tmp_path, fake))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot reach Twitch" in err[0]


def test_auth_youtube_stores_the_key(monkeypatch, capsys):
    answers = iter(["my-api-key", ""])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["auth", "youtube"]) == 0
    assert TokenStore().get("youtube") == "my-api-key" and TokenStore().get("youtube_oauth") is None


def test_a_token_in_the_config_is_refused(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('[twitch]\nclient_id = "abc"\naccess_token = "oauth:123"\n', encoding="utf-8")
    rc = main(["run", "--twitch", "streamer", "--config", str(p)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "twitch.access_token" in err[0] and "looks like a secret" in err[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--reply-in-chat", "--chat-script", "CHAT"], "--reply-in-chat needs --twitch"),
        (["run", "--twitch"], "--twitch needs a channel name"),
    ],
)
def test_run_chat_option_mistakes_are_one_line(argv, expected, tmp_path, capsys):
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"t": 0.5, "text": "hi"}\n', encoding="utf-8")
    assert main([str(chat) if a == "CHAT" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_run_without_a_token_is_one_line_before_any_model_loads(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('[twitch]\nclient_id = "abc"\n', encoding="utf-8")
    assert main(["run", "--twitch", "streamer", "--config", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vtuber auth twitch" in err[0], err
    assert main(["run", "--youtube", "abc123"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vtuber auth youtube" in err[0], err


def test_run_help_documents_the_chat_options():
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for opt in ("--twitch", "--youtube", "--reply-in-chat"):
        assert opt in text
    auth = build_parser()._subparsers._group_actions[0].choices["auth"].format_help()
    assert "twitch" in auth and "youtube" in auth and "device code" in auth
