"""A local fake Twitch on 127.0.0.1 that speaks the documented protocol, for the real twitchio.

- id.twitch.tv: `GET /oauth2/validate`, `POST /oauth2/token` (refresh_token and
  device_code grants), `POST /oauth2/device`;
- Helix under /helix/: `GET users`, `POST eventsub/subscriptions`, `POST chat/messages`;
- EventSub WebSocket at /ws: session_welcome, session_keepalive, notification,
  session_reconnect (with a reconnect_url), revocation, and closes (a dropped socket,
  4003).

Shapes follow dev.twitch.tv/docs (EventSub reference, Helix reference, auth guides).
The test drives it: `notify(...)`, `drop()`, `session_reconnect()`, `close_4003()`,
`revoke(...)`, and reads what the client did: `subscriptions`, `sent`, `ws_connects`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

from aiohttp import WSMsgType, web

BROADCASTER = {"id": "1001", "login": "streamer", "display_name": "Streamer"}
BOT = {"id": "2002", "login": "mikobot", "display_name": "MikoBot"}
CLIENT_ID = "fake-client-id"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _user(u: dict) -> dict:
    return {
        "id": u["id"],
        "login": u["login"],
        "display_name": u["display_name"],
        "type": "",
        "broadcaster_type": "affiliate",
        "description": "",
        "profile_image_url": "https://example.invalid/p.png",
        "offline_image_url": "",
        "view_count": 0,
        "created_at": "2020-01-01T00:00:00Z",
    }


class _Session:
    def __init__(self, ws: web.WebSocketResponse, sid: str):
        self.ws = ws
        self.id = sid
        self.open = True
        self.welcomed = asyncio.Event()


class FakeTwitch:
    def __init__(self, keepalive_s: float = 5.0, port: int = 0):
        self.keepalive_s = keepalive_s
        self.users = {u["login"]: u for u in (BROADCASTER, BOT)}
        self.tokens: dict[str, dict] = {}  # access token -> {user_id, login, scopes, expires_in}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user id
        self.sessions: dict[str, _Session] = {}
        self.subscriptions: dict[str, dict] = {}  # subscription id -> subscription (with transport session id)
        self.sub_history: list[tuple[str, str]] = []  # (type, session id) of every create
        self.sent: list[dict] = []  # chat/messages bodies, with "t" from `clock`
        self.ws_connects = 0
        self.refuse_ws = 0  # refuse this many more websocket upgrades (network trouble)
        self.forbidden_types: set[str] = set()  # subscription types the token has no scope for
        self.drop_reason: dict | None = None  # chat/messages answers is_sent false with this
        self.device_codes: dict[str, dict] = {}  # device code -> {approved, user}
        self.clock = time.monotonic
        self.requests: list[str] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = port

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeTwitch:
        app = web.Application()
        app.router.add_get("/oauth2/validate", self._validate)
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_post("/oauth2/device", self._device)
        app.router.add_get("/helix/users", self._users)
        app.router.add_post("/helix/eventsub/subscriptions", self._subscribe)
        app.router.add_post("/helix/chat/messages", self._chat_message)
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for s in list(self.sessions.values()):
            if s.open:
                await s.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/helix/"

    @property
    def id_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def eventsub_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def issue_token(self, user: dict = BOT, expires_in: int = 14400, scopes=("user:read:chat", "user:write:chat")) -> tuple[str, str]:
        access, refresh = f"at-{uuid.uuid4().hex[:12]}", f"rt-{uuid.uuid4().hex[:12]}"
        self.tokens[access] = {"user_id": user["id"], "login": user["login"], "scopes": list(scopes), "expires_in": expires_in}
        self.refresh_tokens[refresh] = user["id"]
        return access, refresh

    def revoke_tokens(self) -> None:
        """The user disconnected the app: every token and refresh token is dead."""
        self.tokens.clear()
        self.refresh_tokens.clear()

    # --- id.twitch.tv ----------------------------------------------------------------------

    def _auth(self, request: web.Request) -> dict | None:
        h = request.headers.get("Authorization", "")
        token = h.split(" ", 1)[1] if " " in h else ""
        return self.tokens.get(token)

    async def _validate(self, request: web.Request) -> web.Response:
        self.requests.append("validate")
        info = self._auth(request)
        if info is None:
            return web.json_response({"status": 401, "message": "invalid access token"}, status=401)
        return web.json_response(
            {"client_id": CLIENT_ID, "login": info["login"], "scopes": info["scopes"], "user_id": info["user_id"], "expires_in": info["expires_in"]}
        )

    def _grant(self, user_id: str) -> dict:
        user = next(u for u in self.users.values() if u["id"] == user_id)
        access, refresh = self.issue_token(user)
        return {"access_token": access, "refresh_token": refresh, "expires_in": 14400, "scope": ["user:read:chat"], "token_type": "bearer"}

    async def _token(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if request.can_read_body:
            q.update(dict(await request.post()))
        grant = q.get("grant_type")
        self.requests.append(f"token:{grant}")
        if grant == "refresh_token":
            user_id = self.refresh_tokens.pop(q.get("refresh_token", ""), None)
            if user_id is None:
                return web.json_response({"status": 400, "message": "Invalid refresh token"}, status=400)
            return web.json_response(self._grant(user_id))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            code = self.device_codes.get(q.get("device_code", ""))
            if code is None:
                return web.json_response({"status": 400, "message": "invalid device code"}, status=400)
            if not code["approved"]:
                return web.json_response({"status": 400, "message": "authorization_pending"}, status=400)
            del self.device_codes[q["device_code"]]
            return web.json_response(self._grant(code["user"]["id"]))
        return web.json_response({"status": 400, "message": "unsupported grant type"}, status=400)

    async def _device(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if request.can_read_body:
            q.update(dict(await request.post()))
        if q.get("client_id") != CLIENT_ID:
            return web.json_response({"status": 400, "message": "invalid client"}, status=400)
        code = uuid.uuid4().hex
        self.device_codes[code] = {"approved": False, "user": BOT, "scopes": q.get("scopes", "")}
        return web.json_response(
            {
                "device_code": code,
                "expires_in": 1800,
                "interval": 1,
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.id_base}activate?device-code=ABCD-EFGH",
            }
        )

    def approve_devices(self) -> None:
        for code in self.device_codes.values():
            code["approved"] = True

    # --- Helix -----------------------------------------------------------------------------

    def _unauthorized(self) -> web.Response:
        return web.json_response({"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}, status=401)

    async def _users(self, request: web.Request) -> web.Response:
        self.requests.append("users " + request.headers.get("Authorization", "-"))
        info = self._auth(request)
        if info is None:
            return self._unauthorized()
        logins = request.query.getall("login", [])
        ids = request.query.getall("id", [])
        found = [u for u in self.users.values() if u["login"] in logins or u["id"] in ids]
        if not logins and not ids:
            found = [u for u in self.users.values() if u["id"] == info["user_id"]]
        return web.json_response({"data": [_user(u) for u in found]})

    async def _subscribe(self, request: web.Request) -> web.Response:
        info = self._auth(request)
        if info is None:
            return self._unauthorized()
        body = await request.json()
        sid = body["transport"].get("session_id", "")
        session = self.sessions.get(sid)
        if session is None or not session.open:
            return web.json_response({"error": "Bad Request", "status": 400, "message": "websocket transport session does not exist or has already disconnected"}, status=400)
        if body["type"] in self.forbidden_types:
            return web.json_response({"error": "Forbidden", "status": 403, "message": "subscription missing proper authorization"}, status=403)
        sub_id = str(uuid.uuid4())
        sub = {
            "id": sub_id,
            "status": "enabled",
            "type": body["type"],
            "version": body["version"],
            "condition": body["condition"],
            "created_at": _now(),
            "transport": {"method": "websocket", "session_id": sid, "connected_at": _now()},
            "cost": 0,
        }
        self.subscriptions[sub_id] = sub
        self.sub_history.append((body["type"], sid))
        return web.json_response({"data": [sub], "total": len(self.subscriptions), "total_cost": 0, "max_total_cost": 10}, status=202)

    async def _chat_message(self, request: web.Request) -> web.Response:
        if self._auth(request) is None:
            return self._unauthorized()
        body = await request.json()
        body["t"] = self.clock()
        self.sent.append(body)
        msg_id = uuid.uuid4().hex
        if self.drop_reason is not None:
            return web.json_response({"data": [{"message_id": "", "is_sent": False, "drop_reason": self.drop_reason}]})
        return web.json_response({"data": [{"message_id": msg_id, "is_sent": True, "drop_reason": None}]})

    # --- EventSub WebSocket ------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_ws > 0:
            self.refuse_ws -= 1
            return web.Response(status=503, text="unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connects += 1
        old_id = request.query.get("reconnect")
        sid = f"session-{next(self._ids)}"
        session = _Session(ws, sid)
        self.sessions[sid] = session
        if old_id:  # a reconnect_url: the subscriptions move to the new session
            for sub in self.subscriptions.values():
                if sub["transport"]["session_id"] == old_id:
                    sub["transport"]["session_id"] = sid
        await ws.send_str(self._envelope("session_welcome", {"session": self._session(sid)}))
        session.welcomed.set()
        keepalive = asyncio.create_task(self._keepalive(session))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:  # clients must not send: Twitch closes with 4001
                    await ws.close(code=4001)
        finally:
            keepalive.cancel()
            session.open = False
        return ws

    def _session(self, sid: str, reconnect_url: str | None = None) -> dict:
        return {
            "id": sid,
            "status": "reconnecting" if reconnect_url else "connected",
            "connected_at": _now(),
            "keepalive_timeout_seconds": 10,
            "reconnect_url": reconnect_url,
            "recovery_url": None,
        }

    def _envelope(self, kind: str, payload: dict, sub_type: str | None = None, version: str = "1") -> str:
        meta = {"message_id": str(uuid.uuid4()), "message_type": kind, "message_timestamp": _now()}
        if sub_type:
            meta.update(subscription_type=sub_type, subscription_version=version)
        return json.dumps({"metadata": meta, "payload": payload})

    async def _keepalive(self, session: _Session) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            if session.ws.closed:
                return
            await session.ws.send_str(self._envelope("session_keepalive", {}))

    def live_sessions(self) -> list[_Session]:
        return [s for s in self.sessions.values() if s.open and not s.ws.closed]

    async def wait_subscribed(self, sub_type: str = "channel.chat.message", timeout: float = 10.0) -> dict:
        """The subscription of `sub_type` on a live session, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sub in self.subscriptions.values():
                s = self.sessions.get(sub["transport"]["session_id"])
                if sub["type"] == sub_type and s is not None and s.open and not s.ws.closed:
                    return sub
            await asyncio.sleep(0.02)
        raise AssertionError(f"no live {sub_type} subscription within {timeout} s")

    async def notify(self, sub_type: str, event: dict) -> int:
        """Send a notification to each live session subscribed to `sub_type`; how many got it."""
        n = 0
        for sub in list(self.subscriptions.values()):
            if sub["type"] != sub_type:
                continue
            s = self.sessions.get(sub["transport"]["session_id"])
            if s is None or not s.open or s.ws.closed:
                continue
            await s.ws.send_str(self._envelope("notification", {"subscription": sub, "event": event}, sub_type, sub["version"]))
            n += 1
        return n

    async def drop(self) -> None:
        """The network drops every socket (an abnormal close, no reason given)."""
        for s in self.live_sessions():
            s.open = False
            await s.ws.close(code=1011)

    async def session_reconnect(self) -> str:
        """Twitch moves the client to a new edge: a session_reconnect with a reconnect_url."""
        (s,) = self.live_sessions()
        url = f"{self.eventsub_url}?reconnect={s.id}"
        await s.ws.send_str(self._envelope("session_reconnect", {"session": self._session(s.id, url)}))
        return s.id

    async def close_4003(self) -> None:
        """Connection unused: Twitch closes a socket that holds no subscription."""
        for s in self.live_sessions():
            s.open = False
            await s.ws.close(code=4003, message=b"connection unused")

    async def revoke(self, sub_type: str, status: str = "authorization_revoked") -> None:
        for sub_id, sub in list(self.subscriptions.items()):
            if sub["type"] != sub_type:
                continue
            s = self.sessions.get(sub["transport"]["session_id"])
            del self.subscriptions[sub_id]
            if s is not None and s.open:
                await s.ws.send_str(self._envelope("revocation", {"subscription": {**sub, "status": status}}, sub_type, sub["version"]))


# --- event payloads, as documented ---------------------------------------------------------


def _broadcaster() -> dict:
    b = BROADCASTER
    return {"broadcaster_user_id": b["id"], "broadcaster_user_login": b["login"], "broadcaster_user_name": b["display_name"]}


def chat_message(
    text: str,
    user: str = "alice",
    user_id: str = "3003",
    message_id: str | None = None,
    badges: list[tuple[str, str, str]] = (),
    bits: int = 0,
    message_type: str = "text",
) -> dict:
    return {
        **_broadcaster(),
        "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None,
        "source_broadcaster_user_name": None,
        "chatter_user_id": user_id,
        "chatter_user_login": user.lower(),
        "chatter_user_name": user,
        "message_id": message_id or str(uuid.uuid4()),
        "source_message_id": None,
        "is_source_only": None,
        "message": {"text": text, "fragments": [{"type": "text", "text": text, "cheermote": None, "emote": None, "mention": None}]},
        "color": "#00FF7F",
        "badges": [{"set_id": s, "id": i, "info": info} for s, i, info in badges],
        "source_badges": None,
        "message_type": message_type,
        "cheer": {"bits": bits} if bits else None,
        "reply": None,
        "channel_points_custom_reward_id": None,
        "channel_points_animation_id": None,
    }


def message_delete(message_id: str, user: str = "alice", user_id: str = "3003") -> dict:
    return {**_broadcaster(), "target_user_id": user_id, "target_user_login": user.lower(), "target_user_name": user, "message_id": message_id}


def clear_user(user: str = "alice", user_id: str = "3003") -> dict:
    return {**_broadcaster(), "target_user_id": user_id, "target_user_login": user.lower(), "target_user_name": user}


def chat_clear() -> dict:
    return _broadcaster()


def ban(user: str = "troll", user_id: str = "6666", reason: str = "spam", permanent: bool = True) -> dict:
    return {
        "user_id": user_id,
        "user_login": user.lower(),
        "user_name": user,
        **_broadcaster(),
        "moderator_user_id": BROADCASTER["id"],
        "moderator_user_login": BROADCASTER["login"],
        "moderator_user_name": BROADCASTER["display_name"],
        "reason": reason,
        "banned_at": _now(),
        "ends_at": None if permanent else _now(),
        "is_permanent": permanent,
    }


def channel_update(category: str, title: str = "Cozy stream", category_id: str = "509658") -> dict:
    """channel.update (v2): the channel's title and category changed."""
    return {**_broadcaster(), "title": title, "language": "en", "category_id": category_id, "category_name": category,
            "content_classification_labels": []}


def follow(user: str = "newfan", user_id: str = "4004") -> dict:
    return {"user_id": user_id, "user_login": user.lower(), "user_name": user, **_broadcaster(), "followed_at": _now()}


_NOTICES = (
    "sub", "resub", "sub_gift", "community_sub_gift", "gift_paid_upgrade", "prime_paid_upgrade", "raid", "unraid",
    "pay_it_forward", "announcement", "bits_badge_tier", "charity_donation", "watch_streak", "modiversary",
)


def notification(notice_type: str, user: str = "bob", user_id: str = "5005", /, **detail) -> dict:
    """A channel.chat.notification; `detail` is the object named by notice_type."""
    ev = {
        **_broadcaster(),
        "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None,
        "source_broadcaster_user_name": None,
        "chatter_user_id": user_id,
        "chatter_user_login": user.lower(),
        "chatter_user_name": user,
        "chatter_is_anonymous": False,
        "color": "",
        "badges": [],
        "source_badges": None,
        "system_message": f"{user} did a {notice_type}",
        "message_id": str(uuid.uuid4()),
        "source_message_id": None,
        "message": {"text": "", "fragments": []},
        "notice_type": notice_type,
    }
    for name in _NOTICES:
        ev[name] = None
        ev[f"shared_chat_{name}"] = None
    ev[notice_type] = detail
    return ev


def sub(user: str = "bob", months: int = 1) -> dict:
    return notification("sub", user, sub_tier="1000", is_prime=False, duration_months=months)


def resub(user: str = "bob", months: int = 12) -> dict:
    return notification(
        "resub", user, cumulative_months=months, duration_months=1, streak_months=None, sub_tier="1000",
        is_prime=False, is_gift=False, gifter_is_anonymous=None, gifter_user_id=None, gifter_user_name=None, gifter_user_login=None,
    )


def community_gift(user: str = "carol", total: int = 5) -> dict:
    return notification("community_sub_gift", user, id="cg-1", total=total, sub_tier="1000", cumulative_total=None)


def raid(user: str = "bigstreamer", user_id: str = "7007", viewers: int = 40) -> dict:
    return notification(
        "raid", user, user_id, user_id=user_id, user_name=user, user_login=user.lower(), viewer_count=viewers,
        profile_image_url="https://example.invalid/r.png",
    )


def redemption(user: str = "dana", user_id: str = "8008", title: str = "Hydrate!", cost: int = 500, text: str = "") -> dict:
    return {
        "id": str(uuid.uuid4()),
        **_broadcaster(),
        "user_id": user_id,
        "user_login": user.lower(),
        "user_name": user,
        "user_input": text,
        "status": "unfulfilled",
        "reward": {"id": "reward-1", "title": title, "cost": cost, "prompt": ""},
        "redeemed_at": _now(),
    }
