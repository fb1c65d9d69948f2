"""A stop mid-reply with every stream output connected (L9), and the overlay and dock under
abuse while a session runs (L10). Real clients and servers on 127.0.0.1: the overlay's own
server with aiohttp clients, VTube Studio and obs-websocket fakes speaking their protocols;
the LLM and voice are scripted so the reply is mid-way every time."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import aiohttp
import pytest

from stream_helpers import chat, scripted_session
from test_obs_captions import FakeObs
from test_vtube_studio import FakeVTubeStudio
from vtuber.events import ClausePlaying, PlaybackFinished, PlaybackStarted, ReplyFinished
from vtuber.memory import ViewerMemory
from vtuber.outputs.obs_captions import TOKEN_NAME as OBS_TOKEN
from vtuber.outputs.obs_captions import ObsCaptions
from vtuber.outputs.overlay import OverlayServer
from vtuber.outputs.vtube_studio import VTubeStudio
from vtuber.sources import ChatScriptSource
from vtuber.tokens import TokenStore

LONG = "Let me tell you a long story about the old castle on the hill, the one with the red door and the tall tower."


class Quiet:
    """A source that says nothing until `until` (the session stays up)."""

    def __init__(self, until):
        self.until = until

    async def run(self, clock, emit):
        clock.add_source()
        try:
            await clock.sleep_until(self.until)
        finally:
            clock.source_done()


@pytest.mark.timeout(60)
async def test_a_stop_mid_reply_fades_tells_every_client_flushes_memory_and_ends_within_2_s(tmp_path):
    vts_fake, obs_fake = FakeVTubeStudio(), FakeObs()
    await vts_fake.start()
    await obs_fake.start()
    TokenStore().set(OBS_TOKEN, FakeObs.PASSWORD)
    overlay = OverlayServer(port=0)
    vts = VTubeStudio(f"ws://127.0.0.1:{vts_fake.port}", rate_hz=40.0)
    obs = ObsCaptions("Captions", f"ws://127.0.0.1:{obs_fake.port}")
    session = scripted_session([LONG], [overlay, vts, obs], per_word=0.25)
    memory = ViewerMemory(tmp_path / "memory.sqlite3")
    session.memory = session.mind.memory = session.intake.memory = memory
    events: list = []
    session.observers.append(lambda ev: isinstance(ev, (PlaybackStarted, ClausePlaying, PlaybackFinished)) and events.append(ev))
    run = asyncio.create_task(session.run([ChatScriptSource([chat(0.3, "tell me a story!", user="ann")]), Quiet(60.0)]))
    async with aiohttp.ClientSession() as http:
        page = None
        for _ in range(100):
            if overlay.port:
                try:
                    page = await http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws")
                    break
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.05)
        assert page is not None
        while sum(isinstance(e, ClausePlaying) for e in events) < 2:  # mid-reply
            await asyncio.sleep(0.02)
        assert vts.connected if hasattr(vts, "connected") else True
        t0 = time.monotonic()
        session.stop("SIGTERM")
        await asyncio.wait_for(run, 10)
        took = time.monotonic() - t0
        # The page was told: the reply cut short, then the socket closed (not left hanging).
        seen, closed = [], False
        while True:
            msg = await page.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                closed = True
                break
            seen.append(msg.json()["type"])
        assert closed and "playback_finished" in seen, seen
    await vts_fake.stop()
    await obs_fake.runner.cleanup()
    assert took < 2.0, took
    finished = [e for e in events if isinstance(e, PlaybackFinished)]
    assert finished and finished[-1].cut_short  # faded out, not played to the end
    assert vts_fake.injected and vts_fake.injected[-1][1] == 0.0  # the mouth closed
    assert obs_fake.texts and obs_fake.texts[-1][2] == ""  # the caption cleared
    rows = sqlite3.connect(tmp_path / "memory.sqlite3").execute("SELECT name, messages FROM viewers").fetchall()
    assert rows == [("ann", 1)]  # the viewer's note is on disk


@pytest.mark.timeout(90)
async def test_overlay_abuse_is_refused_or_closed_and_the_session_goes_on():
    overlay = OverlayServer(port=0, max_clients=16, max_message_bytes=4096)
    session = scripted_session(["Sure thing, here you go."], [overlay], per_word=0.05)
    replies: list[float] = []
    session.observers.append(lambda ev: isinstance(ev, ReplyFinished) and replies.append(time.monotonic()))
    msgs = [chat(0.3 + 0.5 * i, f"question {w}?", user=f"v{i}") for i, w in enumerate("one two three four five six seven eight".split())]
    run = asyncio.create_task(session.run([ChatScriptSource(msgs), Quiet(120.0)]))
    results = {"refused": 0, "closed": 0, "served": 0}
    async with aiohttp.ClientSession() as http:
        while not overlay.port:
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{overlay.port}/ws"
        for i in range(100):  # connect and drop, some after sending garbage or a huge frame
            try:
                ws = await http.ws_connect(url)
            except aiohttp.WSServerHandshakeError:
                results["refused"] += 1
                continue
            results["served"] += 1
            if i % 3 == 0:
                await ws.send_bytes(b"\x00\xff" * 10)  # malformed: not JSON, not text
            elif i % 3 == 1:
                await ws.send_str("x" * (1 << 20))  # 1 MB
                while True:  # the hello, then the close (1009: message too big)
                    msg = await ws.receive(timeout=5)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                if ws.closed and ws.close_code == 1009:
                    results["closed"] += 1
            await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await http.ws_connect(url, headers={"Origin": "https://evil.example"})
        assert foreign.value.status == 403
        bad = await http.post(f"http://127.0.0.1:{overlay.port}/api/skip", headers={"X-Dock-Token": "wrong"})
        assert bad.status in (401, 403)
        deadline = time.monotonic() + 60
        while len(replies) < len(msgs) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        session.stop("test over")
        await asyncio.wait_for(run, 10)
    assert results["served"] == 100 and results["closed"] >= 30  # every 1 MB frame closed its connection
    assert len(replies) == len(msgs)  # the session answered everything meanwhile
    assert not overlay.clients  # nothing left connected
