"""The OBS overlay (a browser source) and the control dock (a custom browser dock).

One small web server on 127.0.0.1 (aiohttp) serves two pages and one WebSocket:

- `/` (or `/overlay`): captions of the reply revealed as it is *heard*, the chat
  message being answered, a speaking indicator; styled by URL parameters; transparent.
  With `?audio=1` the reply audio comes over the WebSocket too and the page plays it
  with WebAudio as each clause is heard (OBS captures it: "Control audio via OBS").
- `/settings`: a form for the overlay's look with a live preview; it makes the URL.
- `/dock?dock=TOKEN`: what is queued and why, what was dropped, the current reply with
  Skip, Mute, persona switch, "answer this one next", counters and latencies.

Every event goes out as one JSON text frame in a versioned schema
(`docs/overlay-protocol.md`), so anyone can build their own overlay.

Safety and robustness:
- binds 127.0.0.1 by default; any other address needs the overlay token (`?token=`);
- WebSocket connections with a foreign `Origin` are refused (OBS sends none: allowed);
- incoming messages are capped (`max_message_bytes`: a larger one closes the socket),
  and so is the number of clients;
- every client has its own bounded queue and writer task: a stalled page drops (counted)
  and resynchronises later; `handle` never waits, so the pipeline never does;
- the dock's state-changing calls need the dock token and a same-origin request.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from vtuber.errors import UserError
from vtuber.events import (
    AudioChunk,
    ChatMessage,
    ClausePlaying,
    Moderation,
    PlaybackFinished,
    PlaybackStarted,
    ReplyStarted,
    SUBSCRIBER_BADGES,
    MODERATOR_BADGES,
    TurnCancelled,
    TurnDropped,
    Utterance,
    badge_names,
)

log = logging.getLogger("vtuber.overlay")

PROTOCOL_VERSION = 1
DEFAULT_PORT = 8777
# Ports other streaming tools listen on: never take them.
RESERVED_PORTS = {4455: "OBS's obs-websocket", 8001: "VTube Studio's API", 4343: "other stream tools"}
STATIC = Path(str(files("vtuber.outputs.overlay") / "static"))
DOCK_PUSH_S = 0.5  # how often docks get the queue and counters
DROPPED_KEPT = 20


def words_timing(text: str, duration: float) -> list[list]:
    """Each word's [word, start, end] in seconds from the clause start: the clause's
    duration spread over its words by length (Piper gives no word times)."""
    words = text.split()
    if not words:
        return []
    weights = [len(w) + 1 for w in words]
    total = float(sum(weights))
    out, t = [], 0.0
    for w, k in zip(words, weights):
        d = duration * k / total
        out.append([w, round(t, 3), round(t + d, 3)])
        t += d
    return out


def input_info(source: object, kind: str, user: str, text: str) -> dict:
    """What the reply answers, as the overlay shows it (plain text; the page never parses HTML)."""
    if isinstance(source, ChatMessage):
        names = badge_names(source.badges)
        return {
            "kind": "chat",
            "user": source.user,
            "text": source.text,
            "bits": source.bits,
            "amount": source.amount,
            "currency": source.currency,
            "subscriber": bool(names & SUBSCRIBER_BADGES),
            "moderator": bool(names & MODERATOR_BADGES),
            "badges": list(source.badges),
            "source": source.source,
            "id": source.id,
        }
    if isinstance(source, Utterance) or kind == "speech":
        return {"kind": "speech", "user": "streamer", "text": text}
    return {"kind": kind, "user": user, "text": text}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_secret(given: str, secret: str) -> bool:
    """Constant-time comparison (any text: a non-ASCII guess is just wrong, not an error)."""
    return bool(given) and secrets.compare_digest(given.encode("utf-8", "replace"), secret.encode("utf-8"))


def loopback_host(host_header: str) -> bool:
    """Is the Host header this machine's (127.0.0.1, localhost, [::1])? A page on another
    site whose name was pointed at 127.0.0.1 (DNS rebinding) sends its own name: refused."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback(host)


def check_port(port: int, flag: str = "overlay.port") -> None:
    if not 0 <= port <= 65535:
        raise UserError(f"{flag} must be a port number in [1, 65535], got {port}")
    if port in RESERVED_PORTS:
        raise UserError(f"{flag} {port} is {RESERVED_PORTS[port]}'s port: pick another (default {DEFAULT_PORT})")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, taken now: a port in use is a user error before models load."""
    check_port(port)
    try:
        return socket.create_server((host, port), backlog=64)
    except OSError as e:
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise UserError(f"overlay port {port} on {host} is in use: pick another (--overlay PORT or overlay.port)") from None
        raise UserError(f"cannot serve the overlay on {host}:{port} ({e.strerror or e})") from None


@dataclass
class _Client:
    ws: Any
    queue: asyncio.Queue
    audio: bool = False
    dock: bool = False
    lagged: bool = False
    drops: int = 0
    task: asyncio.Task | None = None


@dataclass
class _Reply:
    turn_id: int
    input: dict
    clauses: list[dict] = field(default_factory=list)
    speaking: bool = False
    source: object = None  # the chat message answered (a moderator may take it back)


class OverlayServer:
    """The overlay and dock web server, as a session output (see the module docstring)."""

    name = "overlay"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        audio: bool = False,
        max_clients: int = 16,
        client_queue: int = 256,
        max_message_bytes: int = 4096,
        token: str = "",
        dock_token: str = "",
    ):
        if not is_loopback(host) and not token:
            raise UserError(f"overlay.host {host} is not this machine only: binding it needs an overlay token (vtuber keeps one in the token file)")
        if not 1 <= max_clients <= 1000:
            raise UserError(f"overlay.max_clients must be in [1, 1000], got {max_clients}")
        if not 8 <= client_queue <= 100000:
            raise UserError(f"overlay.client_queue must be in [8, 100000], got {client_queue}")
        if not 256 <= max_message_bytes <= 1 << 20:
            raise UserError(f"overlay.max_message_bytes must be in [256, 1048576], got {max_message_bytes}")
        self.host = host
        self.audio = audio
        self.max_clients = max_clients
        self.client_queue = client_queue
        self.max_message_bytes = max_message_bytes
        self.token = token
        self.dock_token = dock_token or secrets.token_urlsafe(18)
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.session = None
        self.clients: list[_Client] = []
        self.drops = 0  # messages a slow client could not take, all clients together
        self.refused: dict[str, int] = {}
        self.sent = 0
        self._reply: _Reply | None = None
        self._replies: dict[int, tuple[dict, object]] = {}  # turn -> (input info, source): made, maybe not heard yet
        self._dropped: deque[dict] = deque(maxlen=DROPPED_KEPT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._serving: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._personas: tuple[float, list[str]] = (-1e9, [])

    # --- addresses ---------------------------------------------------------------------

    def _base(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def overlay_url(self) -> str:
        return self._base() + "/" + (f"?token={self.token}" if self.token else "")

    @property
    def settings_url(self) -> str:
        return self._base() + "/settings" + (f"?token={self.token}" if self.token else "")

    @property
    def dock_url(self) -> str:
        return f"{self._base()}/dock?dock={self.dock_token}"

    # --- lifecycle -----------------------------------------------------------------------

    def attach(self, session) -> None:
        self.session = session

    def start(self) -> None:
        """Called by the output hub on the event loop: serve from now on."""
        if self._serving is None:
            self._serving = asyncio.get_running_loop().create_task(self.serve(), name="overlay-serve")

    async def serve(self) -> None:
        """Start serving (idempotent); returns once the server accepts connections."""
        if self._runner is not None:
            return
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._page("overlay.html"))
        app.router.add_get("/overlay", self._page("overlay.html"))
        app.router.add_get("/dock", self._page("dock.html"))
        app.router.add_get("/settings", self._page("settings.html"))
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_post("/api/{action}", self._api)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()
        self._ticker = self._loop.create_task(self._tick(), name="overlay-dock")

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        closing = []
        for c in list(self.clients):
            if c.task is not None:
                c.task.cancel()
            closing.append(asyncio.ensure_future(c.ws.close(code=1001, message=b"session over")))
        if closing:  # a stalled client cannot take a close frame: it is just dropped
            done, pending = await asyncio.wait(closing, timeout=1.0)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled():
                    task.exception()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.sock.close()

    def close(self) -> None:
        """Called by the output hub from a worker thread while the loop runs on."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self.sock.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(5.0)
        except Exception as e:  # noqa: BLE001 - closing must not fail the session
            log.warning("overlay did not close cleanly: %s", e)

    # --- HTTP --------------------------------------------------------------------------

    def _own_origin(self, request) -> str:
        return f"{request.scheme}://{request.host}"

    def _refuse(self, why: str, status: int):
        from aiohttp import web

        self.refused[why] = self.refused.get(why, 0) + 1
        return web.Response(status=status, text=why + "\n")

    @property
    def _guard(self):
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            # Bound beyond this machine: every request needs the overlay token.
            if self.token:
                if not request.path.startswith("/static/") and not same_secret(request.query.get("token", ""), self.token) and not self._dock_ok(request):
                    return self._refuse("token required", 403)
            elif not loopback_host(request.host):  # bound to 127.0.0.1: only this machine's names
                return self._refuse("unknown host", 403)
            response = await handler(request)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return guard

    def _page(self, name: str):
        from aiohttp import web

        async def page(request):
            resp = web.FileResponse(STATIC / name)
            resp.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:"
            return resp

        return page

    def _dock_ok(self, request) -> bool:
        """The dock token, from this machine only (the dock is never reachable from elsewhere)."""
        given = request.headers.get("X-Vtuber-Token") or request.query.get("dock", "")
        return same_secret(given, self.dock_token) and is_loopback(request.remote or "")

    async def _api_state(self, request):
        from aiohttp import web

        if not self._dock_ok(request):
            return self._refuse("dock token required", 403)
        return web.json_response(self.dock_state())

    async def _api(self, request):
        """The dock's buttons: token and same origin, or nothing happens."""
        from aiohttp import web

        if not self._dock_ok(request):
            return self._refuse("dock token required", 403)
        if request.headers.get("Origin") != self._own_origin(request):
            return self._refuse("same-origin request required", 403)
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            return self._refuse("same-origin request required", 403)
        if self.session is None:
            return self._refuse("no session", 409)
        try:
            body = await request.json() if request.can_read_body else {}
        except (ValueError, UnicodeDecodeError):
            return self._refuse("bad JSON", 400)
        if not isinstance(body, dict):
            return self._refuse("bad JSON", 400)
        controls = self.session.controls
        action = request.match_info["action"]
        try:
            if action == "skip":
                controls.skip()
            elif action == "mute":
                controls.set_muted(bool(body.get("muted", True)))
            elif action == "persona":
                controls.set_persona(str(body.get("name", "")))
            elif action == "answer_next":
                controls.answer_next(str(body.get("id", "")))
            else:
                return self._refuse("unknown action", 404)
        except UserError as e:
            return web.json_response({"ok": False, "error": str(e)}, status=400)
        log.info("dock: %s", action)
        return web.json_response({"ok": True})

    async def _ws(self, request):
        from aiohttp import WSMsgType, web

        origin = request.headers.get("Origin")
        if origin is not None and origin != self._own_origin(request):
            return self._refuse("foreign origin", 403)
        dock = request.query.get("role") == "dock"
        if dock and not self._dock_ok(request):
            return self._refuse("dock token required", 403)
        if len(self.clients) >= self.max_clients:
            return self._refuse("too many clients", 503)
        ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes, heartbeat=20.0, compress=False)
        await ws.prepare(request)
        client = _Client(ws, asyncio.Queue(self.client_queue), audio=self.audio and request.query.get("audio") == "1", dock=dock)
        self.clients.append(client)
        client.queue.put_nowait(self._hello(client))
        client.task = asyncio.get_running_loop().create_task(self._writer(client))
        try:
            async for msg in ws:  # pages only listen; anything they send is read and ignored
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            if client in self.clients:
                self.clients.remove(client)
            client.task.cancel()
        return ws

    async def _writer(self, client: _Client) -> None:
        try:
            while True:
                msg = await client.queue.get()
                await client.ws.send_str(msg)
                self.sent += 1
                if client.lagged and client.queue.empty():  # it missed events: the whole state again
                    client.lagged = False
                    client.queue.put_nowait(self._message("state", state=self._state()))
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    # --- events -> messages ---------------------------------------------------------------

    def _message(self, type_: str, /, **data) -> str:
        return json.dumps({"v": PROTOCOL_VERSION, "type": type_, **data}, separators=(",", ":"))

    def _hello(self, client: _Client) -> str:
        return self._message("hello", server="vtuber", audio=client.audio, dock=client.dock, state=self._state())

    def _state(self) -> dict:
        r = self._reply
        if r is None:
            return {"speaking": False, "turn_id": None, "input": None, "clauses": []}
        return {"speaking": r.speaking, "turn_id": r.turn_id, "input": r.input, "clauses": r.clauses}

    def _send(self, msg: str, audio_only: bool = False, dock_only: bool = False) -> None:
        for c in self.clients:
            if (audio_only and not c.audio) or (dock_only and not c.dock):
                continue
            try:
                c.queue.put_nowait(msg)
            except asyncio.QueueFull:
                c.drops += 1
                c.lagged = True
                self.drops += 1

    def handle(self, ev: object) -> None:
        """Never waits: each message goes into each client's bounded queue."""
        if isinstance(ev, ReplyStarted):
            t = ev.turn
            info = input_info(t.source, t.kind, t.user, t.text)
            self._replies[t.id] = (info, t.source)
            if len(self._replies) > 32:
                self._replies.pop(next(iter(self._replies)))
            self._send(self._message("reply", turn_id=t.id, input=info, t=ev.t))
        elif isinstance(ev, PlaybackStarted):
            info, source = self._replies.get(ev.turn_id, (None, None))
            self._reply = _Reply(ev.turn_id, info, speaking=True, source=source)
            self._send(self._message("playback_started", turn_id=ev.turn_id, input=info, t=ev.t))
        elif isinstance(ev, ClausePlaying):
            clause = {"index": ev.clause_index, "text": ev.text, "duration": round(ev.duration, 3), "words": words_timing(ev.text, ev.duration)}
            if self._reply is not None and self._reply.turn_id == ev.turn_id:
                self._reply.clauses.append(clause)
            self._send(self._message("clause", turn_id=ev.turn_id, t=ev.t, **clause))
        elif isinstance(ev, PlaybackFinished):
            if self._reply is not None and self._reply.turn_id == ev.turn_id:
                self._reply.speaking = False
            self._send(self._message("playback_finished", turn_id=ev.turn_id, t=ev.t, cut_short=ev.cut_short, reason=ev.reason))
            if ev.reason.startswith("moderated"):
                self._withdraw(ev.turn_id, ev.reason, ev.t)
        elif isinstance(ev, Moderation):
            r = self._reply
            if r is not None and ev.matches(r.source):  # the message answered was taken back: off the screen now
                self._withdraw(r.turn_id, f"moderated: {ev.action}", ev.t)
        elif isinstance(ev, TurnCancelled):
            self._send(self._message("cancelled", turn_id=ev.turn_id, reason=ev.reason, t=ev.t))
        elif isinstance(ev, AudioChunk):
            if self.audio and len(ev.samples) and any(c.audio for c in self.clients):
                pcm = base64.b64encode(np.ascontiguousarray(ev.samples, dtype="<i2").tobytes()).decode("ascii")
                msg = self._message("audio", turn_id=ev.turn_id, index=ev.clause_index, sample_rate=ev.sample_rate, format="s16le", pcm=pcm)
                self._send(msg, audio_only=True)
        elif isinstance(ev, TurnDropped):
            d = {"kind": ev.kind, "user": ev.user, "text": ev.text, "reason": ev.reason, "t": ev.t}
            self._dropped.append(d)
            self._send(self._message("dropped", **d), dock_only=True)

    def _withdraw(self, turn_id: int, reason: str, t: float) -> None:
        if self._reply is not None and self._reply.turn_id == turn_id:
            self._reply = None
        self._send(self._message("withdrawn", turn_id=turn_id, reason=reason, t=t))

    # --- the dock ---------------------------------------------------------------------------

    def dock_state(self) -> dict:
        s = self.session
        state: dict[str, Any] = {"reply": self._state(), "overlay": {"clients": len(self.clients), "drops": self.drops}}
        state["dropped"] = list(self._dropped)
        if s is None:
            return state
        from vtuber.mind.persona import list_personas

        now = time.monotonic()
        if now - self._personas[0] > 5.0:  # the folders are read every 5 s, not every push
            try:
                self._personas = (now, list_personas(s.persona_folders))
            except UserError:
                self._personas = (now, [])
        personas = self._personas[1]
        last = s.recorder.finished()[-1] if s.recorder.finished() else None
        stages = last.stages() if last else {}
        state.update(
            queue=[{**row, "score": None if row["score"] is None else round(row["score"], 2), "age_s": round(row["age_s"], 1)} for row in s.queued()],
            muted=bool(s.controls.muted),
            persona=s.controls.persona_name,
            personas=personas,
            counters=s.counters,
            latency={
                "ready_ms": None if stages.get("input_to_first_audio") is None else round(stages["input_to_first_audio"] * 1000),
                "heard_ms": None if stages.get("input_to_first_heard") is None else round(stages["input_to_first_heard"] * 1000),
                "turn_id": last.id if last else None,
            },
        )
        return state

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(DOCK_PUSH_S)
            if any(c.dock for c in self.clients):
                try:
                    self._send(self._message("dock_state", state=self.dock_state()), dock_only=True)
                except Exception as e:  # noqa: BLE001 - the dock must never take the session down
                    log.warning("dock state failed: %s", e)
