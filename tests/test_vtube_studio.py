"""VTube Studio lip sync against a local fake VTube Studio that speaks the documented
Public API (AuthenticationTokenRequest once, AuthenticationRequest each connection,
InjectParameterDataRequest recorded), driven by a real Session on the real clock."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from stream_helpers import chat, scripted_session
from vtuber.errors import UserError
from vtuber.events import PlaybackFinished, PlaybackStarted
from vtuber.outputs.vtube_studio import TOKEN_NAME, VTubeStudio, envelope
from vtuber.sources import ChatScriptSource
from vtuber.tokens import TokenStore


class FakeVTubeStudio:
    """The API's auth flow and parameter injection; records what it was sent, when."""

    TOKEN = "token-from-the-popup"

    def __init__(self, port: int = 0):
        self.port = port
        self.requests: list[tuple[float, dict]] = []
        self.injected: list[tuple[float, float]] = []  # (time.monotonic, MouthOpen)
        self.sessions = 0
        self.runner = None
        self.deny = False

    async def start(self):
        app = web.Application()
        app.router.add_get("/", self.ws)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self):
        await self.runner.cleanup()

    def reply(self, req, message_type, data):
        return {"apiName": "VTubeStudioPublicAPI", "apiVersion": "1.0", "timestamp": int(time.time() * 1000),
                "requestID": req.get("requestID", ""), "messageType": message_type, "data": data}

    async def ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sessions += 1
        authed = False
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = msg.json()
            self.requests.append((time.monotonic(), req))
            kind, data = req["messageType"], req.get("data", {})
            assert req["apiName"] == "VTubeStudioPublicAPI" and req["apiVersion"] == "1.0"
            if kind == "AuthenticationTokenRequest" and self.deny:
                await ws.send_json(self.reply(req, "APIError", {"errorID": 50, "message": "User has denied API access for your plugin."}))
            elif kind == "AuthenticationTokenRequest":
                assert 3 <= len(data["pluginName"]) <= 32 and 3 <= len(data["pluginDeveloper"]) <= 32
                await ws.send_json(self.reply(req, "AuthenticationTokenResponse", {"authenticationToken": self.TOKEN}))
            elif kind == "AuthenticationRequest":
                authed = data.get("authenticationToken") == self.TOKEN
                await ws.send_json(self.reply(req, "AuthenticationResponse", {"authenticated": authed, "reason": "ok" if authed else "bad token"}))
            elif kind == "InjectParameterDataRequest":
                if not authed:
                    await ws.send_json(self.reply(req, "APIError", {"errorID": 8, "message": "not authenticated"}))
                    continue
                (value,) = [p["value"] for p in data["parameterValues"] if p["id"] == "MouthOpen"]
                self.injected.append((time.monotonic(), value))
                await ws.send_json(self.reply(req, "InjectParameterDataResponse", {}))
        return ws

    def kinds(self):
        return [r["messageType"] for _, r in self.requests]


async def test_mouth_opens_while_audio_is_heard_closes_after_and_on_cancel_and_reconnects_after_a_restart(caplog):
    caplog.set_level(logging.WARNING, "vtuber.vtube_studio")
    fake = FakeVTubeStudio()
    await fake.start()
    vts = VTubeStudio(f"ws://127.0.0.1:{fake.port}", rate_hz=40.0, backoff_start_s=0.2, backoff_max_s=0.5)
    long = "We could talk about this for a long time, my friend, really a very long time indeed."
    session = scripted_session(["Hello there, my friend. It is good to see you today!", long], [vts], per_word=0.2)
    plays: dict[int, list[float]] = {}
    restarted = asyncio.Event()

    def watch(ev):
        if isinstance(ev, PlaybackStarted):
            plays[ev.turn_id] = [time.monotonic()]
        elif isinstance(ev, PlaybackFinished):
            plays[ev.turn_id].append(time.monotonic())
            if len(plays) == 1:  # VTube Studio restarts between the two replies
                asyncio.get_running_loop().create_task(restart())

    async def restart():
        await asyncio.sleep(0.5)  # the mouth closed on the old connection first
        await fake.stop()
        await asyncio.sleep(0.3)
        fake.runner = None
        await fake.start()
        restarted.set()

    async def skip_second():
        while 2 not in plays:
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
        session.controls.skip()

    session.observers.append(watch)
    skipper = asyncio.create_task(skip_second())
    await asyncio.wait_for(session.run([ChatScriptSource([chat(0.3, "hi"), chat(5.5, "tell me more", user="bob")])]), 60)
    await skipper
    assert restarted.is_set()

    # One token request (the popup) ever; each connection authenticates with the stored token.
    assert fake.kinds().count("AuthenticationTokenRequest") == 1
    assert fake.kinds().count("AuthenticationRequest") == 2 and fake.sessions == 2 and vts.connects == 2
    assert TokenStore().get(TOKEN_NAME) == FakeVTubeStudio.TOKEN
    assert sum("not reachable" in r.message for r in caplog.records) <= 1  # said once, not per retry

    for turn, (start, end) in plays.items():
        during = [v for t, v in fake.injected if start + 0.1 < t < end - 0.05]
        assert len(during) >= 20 * (end - start - 0.15), (turn, len(during), end - start)  # >= 20 Hz (40 asked)
        assert max(during) > 0.5 and sum(v > 0.05 for v in during) > 0.8 * len(during)
        after = [(t, v) for t, v in fake.injected if t > end]
        closed = next(t for t, v in after if v == 0.0)
        assert closed - end < 0.3  # closed at once (a value already on its way may come first)
        assert all(v == 0.0 for t, v in after if closed <= t < end + 1.0)  # and stays closed
    first_end, second_start = plays[1][1], plays[2][0]
    assert second_start - first_end > 1.0  # the fake was down in between, and came back
    cut = next(e for e in session.recorder.finished() if e.id == 2)
    assert cut.cut_short and cut.cancel_reason == "skip"


def test_envelope_is_rms_per_20_ms():
    rate = 16000
    x = np.concatenate([np.zeros(320), np.full(320, 16384), np.full(160, -8192)]).astype(np.int16)
    env = envelope(x, rate)
    assert env.shape == (3,) and env[0] == 0.0 and env[1] == pytest.approx(0.5) and env[2] == pytest.approx(0.25)


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="ws://"):
        VTubeStudio("http://127.0.0.1:8001")
    with pytest.raises(UserError, match="rate_hz"):
        VTubeStudio(rate_hz=200)


async def test_a_denied_plugin_stops_asking(caplog):
    caplog.set_level(logging.WARNING, "vtuber.vtube_studio")
    fake = FakeVTubeStudio()
    fake.deny = True
    await fake.start()
    vts = VTubeStudio(f"ws://127.0.0.1:{fake.port}", backoff_start_s=0.05, backoff_max_s=0.05)
    vts.start()
    try:
        for _ in range(100):
            if vts.denied:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # long enough for several retries, had it gone on
        assert vts.denied and fake.kinds() == ["AuthenticationTokenRequest"]
        assert TokenStore().get(TOKEN_NAME) is None
        assert any("not allowed" in r.message for r in caplog.records)
    finally:
        await vts.aclose()
        await fake.stop()


async def test_a_reply_mood_triggers_its_hotkey_once():
    fake = FakeVTubeStudio()
    await fake.start()
    vts = VTubeStudio(f"ws://127.0.0.1:{fake.port}", moods={"surprised": "Shock", "happy": "Smile"})
    session = scripted_session(["Wow, really? That is amazing news. Wow!", "Sorry, I missed that one."], [vts], per_word=0.1)
    await session.run([ChatScriptSource([chat(0.5, "I won the raffle"), chat(2.5, "did you hear me?", user="bob")])])
    await fake.stop()
    hotkeys = [r["data"]["hotkeyID"] for _, r in fake.requests if r["messageType"] == "HotkeyTriggerRequest"]
    assert hotkeys == ["Shock"]  # the first reply's first mood, once; "sad" has no hotkey set


def test_moods_from_words_and_bad_mood_settings():
    from vtuber.outputs.vtube_studio import mood_of

    assert mood_of("Wow, really?") == "surprised" and mood_of("Haha, I love it!") == "happy"
    assert mood_of("Sorry about that.") == "sad" and mood_of("The barn is red.") is None
    with pytest.raises(UserError, match="unknown mood"):
        VTubeStudio(moods={"sleepy": "Yawn"})
    with pytest.raises(UserError, match="hotkey"):
        VTubeStudio(moods={"happy": ""})
