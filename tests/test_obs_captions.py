"""Captions into an OBS Text source: the real client (simpleobsws) against a local fake
obs-websocket v5 server that does the documented Hello (challenge and salt) / Identify
authentication and records SetInputSettings, driven by a real Session on the real clock."""

from __future__ import annotations

import base64
import hashlib
import logging
import time

import msgpack
import pytest
from aiohttp import WSMsgType, web

from stream_helpers import chat, scripted_session
from vtuber.errors import UserError
from vtuber.events import ClausePlaying, PlaybackFinished
from vtuber.outputs.obs_captions import TOKEN_NAME, ObsCaptions, tail
from vtuber.sources import ChatScriptSource
from vtuber.tokens import TokenStore


class FakeObs:
    PASSWORD = "correct horse battery"

    def __init__(self):
        self.salt, self.challenge = "c2FsdHNhbHQ=", "Y2hhbGxlbmdl"
        self.texts: list[tuple[float, str, str]] = []  # (time, input name, text)
        self.identified = 0
        self.refused = 0

    def expected_auth(self) -> str:
        secret = base64.b64encode(hashlib.sha256((self.PASSWORD + self.salt).encode()).digest())
        return base64.b64encode(hashlib.sha256(secret + self.challenge.encode()).digest()).decode()

    async def start(self):
        app = web.Application()
        app.router.add_get("/", self.ws)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def ws(self, request):
        ws = web.WebSocketResponse(protocols=("obswebsocket.json", "obswebsocket.msgpack"))
        await ws.prepare(request)
        packed = ws.ws_protocol == "obswebsocket.msgpack"

        async def send(op, d):
            msg = {"op": op, "d": d}
            await (ws.send_bytes(msgpack.packb(msg)) if packed else ws.send_json(msg))

        await send(0, {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1, "authentication": {"challenge": self.challenge, "salt": self.salt}})
        async for raw in ws:
            if raw.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            msg = msgpack.unpackb(raw.data) if raw.type == WSMsgType.BINARY else raw.json()
            if msg["op"] == 1:  # Identify
                if msg["d"].get("authentication") != self.expected_auth() or msg["d"].get("rpcVersion") != 1:
                    self.refused += 1
                    await ws.close(code=4009, message=b"Authentication failed.")
                    break
                self.identified += 1
                await send(2, {"negotiatedRpcVersion": 1})
            elif msg["op"] == 6:  # Request
                d = msg["d"]
                ok = d["requestType"] == "SetInputSettings" and d["requestData"]["inputName"] == "Captions"
                if ok:
                    self.texts.append((time.monotonic(), d["requestData"]["inputName"], d["requestData"]["inputSettings"]["text"]))
                status = {"result": ok, "code": 100 if ok else 600}
                await send(7, {"requestType": d["requestType"], "requestId": d["requestId"], "requestStatus": status})
        return ws


class Quiet:
    """A source that says nothing until `until` (the session goes on after the reply)."""

    def __init__(self, until):
        self.until = until

    async def run(self, clock, emit):
        clock.add_source()
        try:
            await clock.sleep_until(self.until)
        finally:
            clock.source_done()


async def test_the_text_source_gets_each_heard_clause_and_is_cleared_after_the_reply():
    fake = FakeObs()
    await fake.start()
    TokenStore().set(TOKEN_NAME, FakeObs.PASSWORD)
    obs = ObsCaptions("Captions", f"ws://127.0.0.1:{fake.port}", clear_after_s=0.4)
    session = scripted_session(["Good evening, chat. Welcome back to the stream! Let us begin."], [obs], per_word=0.15)
    heard, ends = [], []
    session.observers.append(lambda ev: isinstance(ev, ClausePlaying) and heard.append((time.monotonic(), ev.text)))
    session.observers.append(lambda ev: isinstance(ev, PlaybackFinished) and ends.append(time.monotonic()))
    # OBS is connected before the first reply (the message comes at 1.0 s).
    await session.run([ChatScriptSource([chat(1.0, "good evening!")]), Quiet(5.0)])
    await fake.runner.cleanup()

    assert fake.identified == 1 and fake.refused == 0
    texts = [t for _, _, t in fake.texts]
    assert len(heard) >= 2
    expected = [" ".join(h for _, h in heard[: i + 1]) for i in range(len(heard))]
    assert texts[: len(expected)] == expected  # the reply so far, as each clause is heard
    for (t_heard, _), (t_sent, _, _) in zip(heard, fake.texts):
        assert t_heard - 0.05 <= t_sent <= t_heard + 1.0
    assert texts[-1] == "" and len(texts) == len(expected) + 1  # then cleared, once
    assert fake.texts[-1][0] >= ends[-1] + 0.35  # after clear_after_s


async def test_a_wrong_password_is_said_as_authentication_failed_naming_its_origin(caplog):
    caplog.set_level(logging.INFO, "vtuber.obs")
    fake = FakeObs()
    await fake.start()
    store = TokenStore()
    store.set(TOKEN_NAME, "wrong")
    obs = ObsCaptions("Captions", f"ws://127.0.0.1:{fake.port}", backoff_start_s=0.1, backoff_max_s=0.2)
    session = scripted_session(["Hello there."], [obs], per_word=0.1)
    await session.run([ChatScriptSource([chat(1.0, "hi")])])
    await fake.runner.cleanup()
    assert fake.refused >= 2 and fake.texts == []  # it kept trying in the background
    said = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, said  # said once
    assert "authentication failed (4009)" in said[0] and str(store.path) in said[0], said
    assert "not reachable" not in said[0]
    assert obs.state == "authentication failed"
    assert len(session.recorder.finished()) == 1  # the reply went on regardless


async def test_a_missing_password_says_so_and_an_environment_password_is_named(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, "vtuber.obs")
    fake = FakeObs()
    await fake.start()
    obs = ObsCaptions("Captions", f"ws://127.0.0.1:{fake.port}", backoff_start_s=0.1, backoff_max_s=0.2)
    assert "no password set" in obs.password_origin()
    monkeypatch.setenv("VTUBER_OBS_WEBSOCKET", "also wrong")
    session = scripted_session(["Hello there."], [obs], per_word=0.1)
    await session.run([ChatScriptSource([chat(0.6, "hi")])])
    await fake.runner.cleanup()
    said = [r.message for r in caplog.records]
    assert len(said) == 1 and "authentication failed" in said[0] and "VTUBER_OBS_WEBSOCKET" in said[0], said
    assert "also wrong" not in said[0]  # the password itself is never printed


async def _restart(fake: FakeObs) -> None:
    """OBS back on the same port (a new server; the old texts are kept)."""
    app = web.Application()
    app.router.add_get("/", fake.ws)
    fake.runner = web.AppRunner(app, shutdown_timeout=0.5)
    await fake.runner.setup()
    await web.TCPSite(fake.runner, "127.0.0.1", fake.port).start()


async def test_obs_closing_and_returning_is_said_in_our_words_and_captions_come_back_soon(caplog):
    import asyncio

    caplog.set_level(logging.INFO, "vtuber.obs")
    fake = FakeObs()
    await fake.start()
    TokenStore().set(TOKEN_NAME, FakeObs.PASSWORD)
    obs = ObsCaptions("Captions", f"ws://127.0.0.1:{fake.port}", clear_after_s=0.2, retry_s=0.5)
    session = scripted_session(["First reply here.", "Second reply here."], [obs], per_word=0.1)
    events: dict[str, float] = {}

    async def obs_goes_away_and_returns():
        await asyncio.sleep(2.5)  # after the first reply
        await fake.runner.cleanup()
        events["gone"] = time.monotonic()
        await asyncio.sleep(3.0)  # longer than the old 1-2-4 s backoff would have waited on its own
        await _restart(fake)
        events["back"] = time.monotonic()

    bounce = asyncio.create_task(obs_goes_away_and_returns())
    await session.run([ChatScriptSource([chat(1.0, "first"), chat(7.5, "second")]), Quiet(9.5)])
    await bounce
    await fake.runner.cleanup()
    assert fake.identified == 2  # connected again by itself
    reconnected = [r for r in caplog.records if "OBS connected" in r.message]
    assert len(reconnected) == 2 and all(r.levelno == logging.INFO for r in reconnected)  # not a warning
    warnings = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings and "OBS closed" in warnings[0], warnings
    assert not any("ConnectionClosed" in w or "code =" in w or "Errno" in w for w in warnings), warnings
    assert obs.state == "connected"
    second = [t for t, _, text in fake.texts if text.startswith("Second")]
    assert second, fake.texts  # the second reply's captions reached OBS after it came back
    # Back within about `retry_s` of OBS returning: the connect happened before the second reply.
    assert obs.sent and obs.sent[-1] == ""


def test_obs_not_running_is_one_line_without_the_library_text():
    from vtuber.outputs.obs_captions import _why

    assert "is OBS running" in _why(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 4455)"))
    assert _why(OSError(113, "No route to host")) == "No route to host"


def test_settings_and_caption_tail():
    with pytest.raises(UserError, match="Text source"):
        ObsCaptions(" ")
    with pytest.raises(UserError, match="ws://"):
        ObsCaptions("Captions", url="127.0.0.1:4455")
    assert tail("one two three four", 12) == "three four"
    assert tail("short", 20) == "short"
