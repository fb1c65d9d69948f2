"""The OBS overlay and dock server: its WebSocket protocol and its guards, with a real
aiohttp client (and a raw socket for a client that stalls) against the real server on
127.0.0.1; the pages themselves in headless Chromium are in test_overlay_browser.py."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import aiohttp
import numpy as np
import pytest

from vtuber.errors import UserError
from vtuber.events import AudioChunk, ChatMessage, ClausePlaying, PlaybackFinished, PlaybackStarted, ReplyStarted, Turn
from vtuber.outputs.overlay import PROTOCOL_VERSION, OverlayServer, words_timing


async def served(**kw) -> OverlayServer:
    overlay = OverlayServer(port=0, **kw)
    await overlay.serve()
    return overlay


async def next_json(ws, timeout=5.0) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def a_reply(overlay: OverlayServer, turn_id=1, user="amy", text="hi", clauses=("Hello there.",)):
    msg = ChatMessage(user=user, text=text, t=0.0, bits=100, badges=("subscriber/3",), id="m1")
    overlay.handle(ReplyStarted(Turn(turn_id, "chat", user, text, 0.0, 0.0, 0.0, msg), 0.1))
    overlay.handle(PlaybackStarted(turn_id, 0.2))
    for i, c in enumerate(clauses):
        overlay.handle(ClausePlaying(turn_id, i, c, 0.2 + i, 1.0))
    overlay.handle(PlaybackFinished(turn_id, 0.2 + len(clauses)))


async def test_a_page_gets_hello_then_every_event_in_the_versioned_schema():
    overlay = await served()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws") as ws:
            hello = await next_json(ws)
            assert hello["v"] == PROTOCOL_VERSION and hello["type"] == "hello" and hello["state"]["turn_id"] is None
            a_reply(overlay, clauses=("Hello there,", "my friend."))
            got = [await next_json(ws) for _ in range(5)]
            assert [m["type"] for m in got] == ["reply", "playback_started", "clause", "clause", "playback_finished"]
            assert got[0]["input"] == {
                "kind": "chat", "user": "amy", "text": "hi", "bits": 100, "amount": 0.0, "currency": "",
                "subscriber": True, "moderator": False, "badges": ["subscriber/3"], "source": "script", "id": "m1",
            }
            assert [m["text"] for m in got[2:4]] == ["Hello there,", "my friend."]
            assert got[3]["words"] == words_timing("my friend.", 1.0) and got[3]["duration"] == 1.0
            assert all(m["v"] == PROTOCOL_VERSION for m in got)
        # A page opened late gets the reply so far in its hello.
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws") as ws:
            state = (await next_json(ws))["state"]
            assert state["turn_id"] == 1 and not state["speaking"] and [c["text"] for c in state["clauses"]] == ["Hello there,", "my friend."]
    finally:
        await overlay.aclose()


def test_words_are_spread_over_the_clause_by_length():
    w = words_timing("a bbb cc", 2.0)
    assert [x[0] for x in w] == ["a", "bbb", "cc"]
    assert w[0][1] == 0.0 and abs(w[-1][2] - 2.0) < 0.01
    assert all(a[2] == pytest.approx(b[1], abs=0.002) for a, b in zip(w, w[1:]))
    assert (w[1][2] - w[1][1]) > (w[0][2] - w[0][1])  # longer words take longer
    assert words_timing("", 1.0) == []


async def test_a_foreign_origin_is_refused_and_own_or_absent_origin_allowed():
    overlay = await served()
    url = f"http://127.0.0.1:{overlay.port}/ws"
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(url, headers={"Origin": "http://evil.example"})
            assert e.value.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(url, headers={"Origin": "null"})  # a file:// page
            for headers in ({}, {"Origin": f"http://127.0.0.1:{overlay.port}"}):
                async with http.ws_connect(url, headers=headers) as ws:
                    assert (await next_json(ws))["type"] == "hello"
        assert overlay.refused["foreign origin"] == 2
    finally:
        await overlay.aclose()


async def test_an_oversize_message_closes_the_connection_and_clients_are_capped():
    overlay = await served(max_message_bytes=1024, max_clients=2)
    url = f"http://127.0.0.1:{overlay.port}/ws"
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url)
            await next_json(ws)
            await ws.send_str("x" * 1000)  # under the cap: read and ignored
            await ws.send_str("x" * 5000)
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            assert ws.close_code == 1009  # message too big
            await ws.close()
            for _ in range(50):
                if not overlay.clients:
                    break
                await asyncio.sleep(0.02)
            a, b = await http.ws_connect(url), await http.ws_connect(url)
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(url)
            assert e.value.status == 503
            await a.close()
            await b.close()
    finally:
        await overlay.aclose()


def raw_ws_connect(port: int, path: str) -> socket.socket:
    """A WebSocket handshake by hand, then a client that never reads again (a frozen page)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    s.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    )
    s.settimeout(5)
    assert b"101" in s.recv(1024).split(b"\r\n")[0]
    return s


async def test_a_stalled_client_drops_counted_and_never_delays_the_others_or_the_pipeline():
    overlay = await served(audio=True, client_queue=16)
    stalled = await asyncio.to_thread(raw_ws_connect, overlay.port, "/ws?audio=1")
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws?audio=1", max_msg_size=0) as ws:
            await next_json(ws)
            while len(overlay.clients) < 2:
                await asyncio.sleep(0.01)
            samples = (np.sin(np.arange(22050) * 0.1) * 9000).astype(np.int16)  # 1 s of audio a message
            got = []

            async def read():
                while len(got) < 200:
                    got.append(await next_json(ws))

            reader = asyncio.create_task(read())
            slowest = 0.0
            for i in range(200):
                t0 = time.perf_counter()
                overlay.handle(AudioChunk(1, i, samples, 22050, 0.0))  # the pipeline's call: never waits
                slowest = max(slowest, time.perf_counter() - t0)
                await asyncio.sleep(0.002)
            await asyncio.wait_for(reader, 30)
            assert [m["index"] for m in got] == list(range(200))  # the live page got everything, in order
            pcm = np.frombuffer(base64.b64decode(got[-1]["pcm"]), dtype="<i2")
            assert np.array_equal(pcm, samples)
            # The frozen page took what socket buffers hold (a few MB, machine-dependent) and its
            # 16 queued; the rest was dropped and counted, against it alone.
            (frozen,) = [c for c in overlay.clients if c.drops]
            assert len(overlay.clients) == 2 and overlay.drops == frozen.drops > 0
            assert slowest < 0.25, slowest  # handle() only queues (generous: a shared, noisy machine)
    finally:
        stalled.close()
        await overlay.aclose()


def test_reserved_ports_a_port_in_use_and_a_public_host_without_token_are_user_errors():
    for port in (4455, 8001, 4343):
        with pytest.raises(UserError, match=f"{port}"):
            OverlayServer(port=port)
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(UserError, match="in use"):
            OverlayServer(port=taken.getsockname()[1])
    finally:
        taken.close()
    with pytest.raises(UserError, match="needs an overlay token"):
        OverlayServer(host="0.0.0.0", port=0)


async def test_bound_beyond_loopback_every_request_needs_the_token():
    overlay = OverlayServer(host="0.0.0.0", port=0, token="s3cret-token")
    await overlay.serve()
    base = f"http://127.0.0.1:{overlay.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as r:
                assert r.status == 403
            async with http.get(base + "/?token=s3cret-token") as r:
                assert r.status == 200 and "overlay.js" in await r.text()
            async with http.get(base + "/static/overlay.js") as r:
                assert r.status == 200  # the scripts are not secret
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(base + "/ws")
            async with http.ws_connect(base + "/ws?token=s3cret-token") as ws:
                assert (await next_json(ws))["type"] == "hello"
            assert overlay.overlay_url.endswith("/?token=s3cret-token")
    finally:
        await overlay.aclose()


async def test_the_dock_api_needs_its_token_and_a_same_origin_request():
    overlay = await served()
    base = f"http://127.0.0.1:{overlay.port}"
    own = {"Origin": base, "X-Vtuber-Token": overlay.dock_token}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/api/skip", headers={"Origin": base}) as r:
                assert r.status == 403  # no token
            async with http.post(base + "/api/skip", headers={**own, "X-Vtuber-Token": "guess"}) as r:
                assert r.status == 403
            async with http.post(base + "/api/skip", headers={**own, "Origin": "http://evil.example"}) as r:
                assert r.status == 403
            async with http.post(base + "/api/skip", headers={"X-Vtuber-Token": overlay.dock_token}) as r:
                assert r.status == 403  # no Origin: not provably same-origin
            async with http.get(base + "/api/state") as r:
                assert r.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(base + "/ws?role=dock")
            async with http.get(base + "/api/state", headers={"X-Vtuber-Token": overlay.dock_token}) as r:
                assert r.status == 200 and (await r.json())["reply"]["turn_id"] is None
            async with http.post(base + "/api/skip", headers=own) as r:
                assert r.status == 409  # right token, right origin: refused only for want of a session
        assert overlay.refused["dock token required"] == 4 and overlay.refused["same-origin request required"] == 2
    finally:
        await overlay.aclose()


async def test_a_moderated_message_is_withdrawn_from_the_screen_at_once():
    from vtuber.events import Moderation

    overlay = await served()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws") as ws:
            await next_json(ws)
            a_reply(overlay, user="troll", clauses=("Sure thing.",))  # heard to the end, still on screen (fading)
            got = [await next_json(ws) for _ in range(4)]
            assert got[-1]["type"] == "playback_finished"
            overlay.handle(Moderation("delete", 5.0, message_id="other"))  # another message: nothing happens
            overlay.handle(Moderation("clear_user", 5.1, user="TROLL"))
            withdrawn = await next_json(ws)
            assert withdrawn["type"] == "withdrawn" and withdrawn["turn_id"] == 1 and withdrawn["reason"] == "moderated: clear_user"
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{overlay.port}/ws") as ws:
            assert (await next_json(ws))["state"]["turn_id"] is None  # a page opened now shows nothing of it
    finally:
        await overlay.aclose()


async def test_a_foreign_host_name_is_refused_and_a_non_ascii_token_is_just_wrong():
    overlay = await served()
    base = f"http://127.0.0.1:{overlay.port}"
    try:
        async with aiohttp.ClientSession() as http:
            # DNS rebinding: a site's own name pointed at 127.0.0.1 sends that name as Host (and Origin).
            rebound = {"Host": f"evil.example:{overlay.port}", "Origin": f"http://evil.example:{overlay.port}"}
            async with http.get(base + "/", headers=rebound) as r:
                assert r.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(base + "/ws", headers=rebound)
            for host in (f"localhost:{overlay.port}", f"127.0.0.1:{overlay.port}"):
                async with http.get(base + "/", headers={"Host": host}) as r:
                    assert r.status == 200
            async with http.post(base + "/api/skip", headers={"Origin": base, "X-Vtuber-Token": "é"}) as r:
                assert r.status == 403
            async with http.get(base + "/api/state?dock=%C3%A9") as r:
                assert r.status == 403
    finally:
        await overlay.aclose()
