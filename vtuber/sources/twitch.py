"""Twitch chat in (and out), through twitchio 3 and EventSub over WebSocket.

    vtuber auth twitch            # once: device code flow, tokens into the token file
    vtuber run --twitch CHANNEL   # chat, events and moderation from CHANNEL

What comes in (one EventSub WebSocket, subscriptions made with the bot's user token):

- `channel.chat.message` -> `ChatMessage` (message id, chatter id, display name,
  badges "broadcaster", "moderator", "vip", "subscriber/MONTHS", "founder/MONTHS",
  "first-msg" for a first-time chatter's intro, cheer bits); the bot's own messages
  are skipped, and a message id seen before (a redelivery after a reconnect) is not
  emitted twice. A cheer is also a `StreamEvent("bits")`.
- `channel.chat.notification` -> `StreamEvent`: sub, resub (amount: months), gift
  (amount: subs gifted; a community gift is thanked once, not once a recipient), raid
  (amount: viewers), and the other notice types under their own names;
  `channel.follow` -> "follow", channel-point redemptions -> "redeem" (text: the reward).
- Moderation wins: `channel.chat.message_delete`, `channel.chat.clear_user_messages`,
  `channel.chat.clear` and `channel.ban` -> `Moderation` (delete, clear_user, clear,
  ban): the session drops those messages from the queue and cuts a reply to one.

Subscriptions the token has no scope for (follows need moderator:read:followers,
bans channel:moderate, redemptions channel:read:redemptions) are skipped with one line;
chat itself is required.

`state` is what the live console shows: connecting, live, reconnecting in N s,
needs auth (run `vtuber auth twitch`), or a one-line error; `counters` count what
came in. A dropped socket reconnects with backoff and twitchio restores the
subscriptions; a `session_reconnect` is honoured; an invalid token (401 that a
refresh cannot fix) or a connection Twitch ends for good (close 4003, every
subscription revoked) becomes "needs auth" with one line and no retry loop, while
the other sources keep running.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from vtuber.clock import Clock
from vtuber.events import ChatMessage, Moderation, StreamEvent
from vtuber.resilience import Backoff
from vtuber.sources.platforms import ChatPlatform, register
from vtuber.tokens import TokenStore

log = logging.getLogger("vtuber.twitch")

TOKEN_NAME = "twitch"
API_BASE = "https://api.twitch.tv/helix/"
ID_BASE = "https://id.twitch.tv/"
EVENTSUB_URL = "wss://eventsub.wss.twitch.tv/ws"
# What `vtuber auth twitch` asks for: read and send chat as the bot, and the events.
SCOPES = (
    "user:read:chat",
    "user:write:chat",
    "user:bot",
    "moderator:read:followers",
    "channel:read:redemptions",
    "channel:moderate",
    "channel:read:subscriptions",
    "bits:read",
)
AUTH_HINT = "run `vtuber auth twitch`"
SEEN_IDS = 5000  # message ids remembered against redelivery
REDEEM = "redeem"


def use_endpoints(api_base: str = API_BASE, id_base: str = ID_BASE, eventsub_url: str = EVENTSUB_URL) -> None:
    """Point twitchio at Twitch (the defaults) or at a local fake (tests, dry runs)."""
    import twitchio.eventsub.websockets as ws
    from twitchio.http import Route

    Route.BASE = api_base if api_base.endswith("/") else api_base + "/"
    Route.ID_BASE = id_base if id_base.endswith("/") else id_base + "/"
    ws.WSS = eventsub_url


@dataclass
class TwitchSettings:
    client_id: str = ""
    api_base: str = API_BASE
    id_base: str = ID_BASE
    eventsub_url: str = EVENTSUB_URL
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    reply_limit: int = 20  # chat messages per 30 s (Twitch's limit for a bot that is not a moderator)
    reply_limit_moderator: int = 100  # ... when the bot is a moderator or the broadcaster
    scopes: tuple[str, ...] = field(default_factory=lambda: SCOPES)


def badges_of(badges, first_time: bool = False) -> tuple[str, ...]:
    """Twitch badges as ChatMessage badges: "subscriber/12" keeps the months."""
    out = []
    for b in badges:
        set_id = (getattr(b, "set_id", "") or "").lower()
        if not set_id:
            continue
        if set_id in ("subscriber", "founder"):
            months = getattr(b, "info", "") or getattr(b, "id", "")
            out.append(f"{set_id}/{months}" if months else set_id)
        else:
            out.append(set_id)
    if first_time:
        out.append("first-msg")
    return tuple(out)


class _Backoff:
    """Replaces twitchio's websocket backoff: same role, our limits, and it tells the
    source how long the next try is away (the console's "reconnecting in N s")."""

    def __init__(self, source: TwitchSource):
        self.source = source
        s = source.settings
        # Jittered down to 75%: many co-hosts dropped by one outage do not come back in step.
        self.backoff = Backoff(s.reconnect_initial_s, s.reconnect_max_s, jitter=(0.75, 1.0))

    def calculate(self) -> float:
        delay = self.backoff.next()
        self.source._reconnecting(delay)
        return delay


class TwitchSource:
    """Chat, events and moderation from one Twitch channel (see the module docstring)."""

    name = "twitch"

    def __init__(self, channel: str, settings: TwitchSettings | None = None, tokens: TokenStore | None = None):
        self.channel = channel.strip().lstrip("#").lower()
        self.settings = settings or TwitchSettings()
        self.tokens = tokens or TokenStore()
        self.state = "connecting"
        self.counters: Counter[str] = Counter()
        self.client = None
        self.bot_id = ""
        self.bot_login = ""
        self.broadcaster_id = ""
        self.bot_is_moderator = False
        self.ready = asyncio.Event()  # live (tests wait on it)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._ended: asyncio.Event | None = None
        self._closing = False
        self._said: set[str] = set()
        self._clock: Clock | None = None
        self._emit: Callable[[object], None] = lambda ev: None
        self._sockets_seen = 0

    def preflight(self) -> None:
        """Before any model loads: a missing token or client id is the user's one-line mistake."""
        from vtuber.errors import UserError

        saved = self.tokens.get(TOKEN_NAME)
        if not saved or (isinstance(saved, dict) and not saved.get("access_token")):
            raise UserError(f"twitch: no Twitch token yet: {AUTH_HINT} first")
        if not self.settings.client_id and not (isinstance(saved, dict) and saved.get("client_id")):
            raise UserError("twitch: no client id: set [twitch] client_id in the config (see the README)")

    # --- what the console and the chat-reply output use ---------------------------------

    def reply_limit(self) -> int:
        s = self.settings
        mod = self.bot_is_moderator or (self.bot_id and self.bot_id == self.broadcaster_id)
        return s.reply_limit_moderator if mod else s.reply_limit

    async def send_reply(self, text: str, reply_to_id: str) -> str:
        """Post `text` as a reply to message `reply_to_id`; "" when sent, else why not."""
        if self.client is None or not self.broadcaster_id or self.state.startswith("needs auth"):
            return "not connected"
        from twitchio import HTTPException

        try:
            data = await self.client._http.post_chat_message(
                broadcaster_id=self.broadcaster_id,
                sender_id=self.bot_id,
                message=text,
                token_for=self.bot_id,
                reply_to_message_id=reply_to_id or None,
            )
        except HTTPException as e:
            if e.status in (401, 403):  # reading goes on; posting needs user:write:chat
                self._say_once("send-auth", logging.ERROR, "twitch: cannot post chat replies (%s: %s); %s", e.status, _message(e), AUTH_HINT)
            return f"http {e.status}: {_message(e)}"
        except (OSError, asyncio.TimeoutError) as e:
            return f"network: {e}"
        sent = (data or {}).get("data") or [{}]
        drop = sent[0].get("drop_reason")
        if not sent[0].get("is_sent", False) or drop:
            self.counters["replies dropped by Twitch"] += 1
            code = (drop or {}).get("code", "not sent")
            log.warning("Twitch dropped a chat reply: %s (%s)", (drop or {}).get("message", ""), code)
            return f"dropped by Twitch: {code}"
        self.counters["replies sent"] += 1
        return ""

    # --- run -----------------------------------------------------------------------------

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        self._clock, self._emit = clock, emit
        self._ended = asyncio.Event()
        try:
            await self._connect()
            if not self._ended.is_set():
                await self._watch()
        finally:
            await self.close()

    def _say_once(self, key: str, level: int, msg: str, *args) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, msg, *args)

    def _needs_auth(self, why: str) -> None:
        self.state = f"needs auth: {why}; {AUTH_HINT}"
        self._say_once("auth", logging.ERROR, "twitch: %s; %s (the other sources keep running)", why, AUTH_HINT)
        if self._ended is not None:
            self._ended.set()

    def _error(self, line: str) -> None:
        self.state = f"error: {line}"
        self._say_once("error", logging.ERROR, "twitch: %s", line)
        if self._ended is not None:
            self._ended.set()

    def _reconnecting(self, delay: float) -> None:
        self.state = f"reconnecting in {delay:.0f} s"
        self.counters["reconnects"] += 1
        self._say_once("reconnect", logging.WARNING, "twitch: connection lost, reconnecting with backoff (said once)")

    async def _retry(self, what: str, attempt: int) -> None:
        delay = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s).delay(attempt)
        self.state = f"reconnecting in {delay:.0f} s"
        self._say_once("net", logging.WARNING, "twitch: cannot reach Twitch (%s); retrying with backoff (said once)", what)
        await asyncio.sleep(delay)

    async def _connect(self) -> None:
        import aiohttp
        import twitchio
        from twitchio import HTTPException, InvalidTokenException

        s = self.settings
        use_endpoints(s.api_base, s.id_base, s.eventsub_url)
        saved = self.tokens.get(TOKEN_NAME)
        if isinstance(saved, str):
            saved = {"access_token": saved, "refresh_token": ""}
        if not isinstance(saved, dict) or not saved.get("access_token"):
            return self._needs_auth("no Twitch token yet")
        client_id = s.client_id or saved.get("client_id", "")
        if not client_id:
            return self._error("no Twitch client id: set [twitch] client_id in the config (see the README)")
        attempt = 0
        while True:
            self.state = "connecting"
            client = twitchio.Client(client_id=client_id, fetch_client_user=False)
            client.add_listener(self._on_refreshed, event="event_token_refreshed")
            try:
                valid = await client.add_token(saved["access_token"], saved.get("refresh_token", ""))
                break
            except InvalidTokenException:
                await _quiet_close(client)
                return self._needs_auth("the Twitch token is invalid or expired and cannot be refreshed")
            except HTTPException as e:
                await _quiet_close(client)
                if e.status in (400, 401, 403):
                    return self._needs_auth(f"Twitch refused the token ({e.status})")
                await self._retry(f"HTTP {e.status}", attempt)
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                await _quiet_close(client)
                await self._retry(str(e) or type(e).__name__, attempt)
            attempt += 1
        self.client = client
        if not valid.user_id:
            return self._needs_auth("the saved Twitch token is not a user token")
        self.bot_id, self.bot_login = valid.user_id, valid.login or ""
        client._bot_id = self.bot_id  # the bot is the token's user (twitchio's responders read it)
        # twitchio's default token: the bot's own (as with its device code flow); every request
        # below names the bot's user id, so refreshes go through its managed token.
        await client.login(token=client._http._tokens[self.bot_id]["token"], load_tokens=False, save_tokens=False)
        attempt = 0
        while True:
            try:
                users = await client.fetch_users(logins=[self.channel], token_for=self.bot_id)
                break
            except HTTPException as e:
                if e.status == 401:
                    return self._needs_auth("Twitch refused the token")
                if e.status == 400:
                    return self._error(f"{self.channel!r} is not a valid Twitch channel name")
                await self._retry(f"HTTP {e.status}", attempt)
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                await self._retry(str(e) or type(e).__name__, attempt)
            attempt += 1
        if not users:
            return self._error(f"no Twitch channel called {self.channel!r}")
        self.broadcaster_id = users[0].id
        for event, handler in self._handlers().items():
            client.add_listener(handler, event=event)
        await self._subscribe(client)

    def _handlers(self) -> dict:
        return {
            "event_message": self._on_message,
            "event_chat_notification": self._on_notification,
            "event_follow": self._on_follow,
            "event_custom_redemption_add": self._on_redeem,
            "event_message_delete": self._on_delete,
            "event_chat_clear_user": self._on_clear_user,
            "event_chat_clear": self._on_clear,
            "event_ban": self._on_ban,
            "event_websocket_welcome": self._on_welcome,
            "event_websocket_closed": self._on_closed,
            "event_subscription_revoked": self._on_revoked,
        }

    async def _subscribe(self, client) -> None:
        import aiohttp
        from twitchio import HTTPException, WebsocketConnectionException, eventsub

        b, me = self.broadcaster_id, self.bot_id
        chat = dict(broadcaster_user_id=b, user_id=me)
        subs = [
            (eventsub.ChatMessageSubscription(**chat), True),
            (eventsub.ChatMessageDeleteSubscription(**chat), True),
            (eventsub.ChatClearUserMessagesSubscription(**chat), True),
            (eventsub.ChatClearSubscription(**chat), True),
            (eventsub.ChatNotificationSubscription(**chat), False),
            (eventsub.ChannelBanSubscription(broadcaster_user_id=b), False),
            (eventsub.ChannelFollowSubscription(broadcaster_user_id=b, moderator_user_id=me), False),
            (eventsub.ChannelPointsRedeemAddSubscription(broadcaster_user_id=b), False),
        ]
        attempt = 0
        i = 0
        while i < len(subs):
            payload, required = subs[i]
            try:
                await client.subscribe_websocket(payload, token_for=me, as_bot=False)
                self.counters["subscriptions"] += 1
            except HTTPException as e:
                if e.status == 401:
                    return self._needs_auth("Twitch refused the token")
                if e.status >= 500 or e.status == 429:
                    await self._retry(f"HTTP {e.status}", attempt)
                    attempt += 1
                    continue
                if required:
                    return self._needs_auth(f"cannot read chat of {self.channel} ({e.status}: {_message(e)})")
                log.warning("twitch: no %s events (%s: %s)", payload.type, e.status, _message(e))
            except (WebsocketConnectionException, OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                await self._retry(str(e) or type(e).__name__, attempt)
                attempt += 1
                continue
            i += 1
        self._patch_backoff()
        self.state = "live"
        self.ready.set()
        log.info("twitch: live in %s as %s", self.channel, self.bot_login)

    def _sockets(self) -> list:
        if self.client is None:
            return []
        return [w for per_user in self.client._websockets.values() for w in per_user.values()]

    def _patch_backoff(self) -> None:
        for w in self._sockets():
            if not isinstance(w._backoff, _Backoff):
                w._backoff = _Backoff(self)

    async def _watch(self) -> None:
        """Until the session stops or Twitch ends the connection for good."""
        assert self._ended is not None
        while not self._ended.is_set():
            self._patch_backoff()
            sockets = self._sockets()
            up = bool(sockets) and any(w.connected and not w._connecting for w in sockets)
            if up and not self.state.startswith(("live", "needs auth", "error")):
                self.state = "live"
                log.info("twitch: live again")
            elif not up and self.state == "live":  # dropped: twitchio reconnects and resubscribes
                self.state = "reconnecting"
                self.counters["connection drops"] += 1
                self._say_once("drop", logging.WARNING, "twitch: the chat connection dropped; reconnecting (said once)")
            try:
                await asyncio.wait_for(self._ended.wait(), 0.25)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        self._closing = True
        client, self.client = self.client, None
        if client is not None:
            await _quiet_close(client)
        if not self.state.startswith(("needs auth", "error")):
            self.state = "stopped"

    # --- twitchio events -> our events ----------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else 0.0

    def _first(self, key: str) -> bool:
        if key in self._seen:
            self.counters["duplicates"] += 1
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    async def _on_message(self, m) -> None:
        chatter = m.chatter
        if chatter.id == self.bot_id:  # our own replies come back through chat
            if any((b.set_id or "") in ("moderator", "broadcaster") for b in m.badges):
                self.bot_is_moderator = True
            return
        if not self._first(f"msg:{m.id}"):
            return
        name = chatter.display_name or chatter.name or "viewer"
        bits = m.cheer.bits if m.cheer is not None else 0
        self.counters["messages"] += 1
        self._emit(
            ChatMessage(
                user=name,
                text=m.text,
                t=self._now(),
                badges=badges_of(m.badges, getattr(m, "type", "") == "user_intro"),
                bits=bits,
                source="twitch",
                id=m.id,
                user_id=chatter.id,
            )
        )
        if bits:
            self._event("bits", name, bits, f"bits:{m.id}", chatter.id)

    def _event(self, kind: str, user: str, amount: int, key: str, user_id: str = "", text: str = "") -> None:
        if not self._first(f"ev:{key}"):
            return
        self.counters["events"] += 1
        self._emit(StreamEvent(kind, user, self._now(), amount, text, "twitch", key, user_id))

    async def _on_notification(self, n) -> None:
        who = "an anonymous gifter" if n.anonymous else (n.chatter.display_name or n.chatter.name or "someone")
        kind = n.notice_type
        if kind == "sub" and n.sub is not None:
            self._event("sub", who, n.sub.months, n.id, n.chatter.id)
        elif kind == "resub" and n.resub is not None:
            self._event("resub", who, n.resub.cumulative_months, n.id, n.chatter.id)
        elif kind == "sub_gift" and n.sub_gift is not None:
            if not n.sub_gift.community_gift_id:  # one of a community gift's recipients: thanked once, below
                self._event("gift", who, 1, n.id, n.chatter.id)
        elif kind == "community_sub_gift" and n.community_sub_gift is not None:
            self._event("gift", who, n.community_sub_gift.total, n.id, n.chatter.id)
        elif kind == "raid" and n.raid is not None:
            r = n.raid.user
            self._event("raid", r.display_name or r.name or who, n.raid.viewer_count, n.id, r.id)
        else:
            self._event(kind, who, 0, n.id, n.chatter.id, n.system_message)

    async def _on_follow(self, f) -> None:
        self._event("follow", f.user.display_name or f.user.name, 0, f"follow:{f.user.id}", f.user.id)

    async def _on_redeem(self, r) -> None:
        self._event(REDEEM, r.user.display_name or r.user.name, r.reward.cost, r.id, r.user.id, r.reward.title)

    def _moderate(self, action: str, **kw) -> None:
        self.counters["moderation"] += 1
        self._emit(Moderation(action, self._now(), source="twitch", **kw))

    async def _on_delete(self, d) -> None:
        self._moderate("delete", message_id=d.message_id, user=d.user.name or "", user_id=d.user.id)

    async def _on_clear_user(self, c) -> None:
        self._moderate("clear_user", user=c.user.name or "", user_id=c.user.id)

    async def _on_clear(self, c) -> None:
        self._moderate("clear")

    async def _on_ban(self, b) -> None:
        self._moderate("ban", user=b.user.name or "", user_id=b.user.id, reason=(b.reason or "")[:200])

    async def _on_welcome(self, payload) -> None:
        self._sockets_seen += 1
        self._patch_backoff()
        for w in self._sockets():
            if isinstance(w._backoff, _Backoff):
                w._backoff.backoff.reset()
        if self.ready.is_set():
            self.state = "live"

    async def _on_closed(self, payload) -> None:
        await asyncio.sleep(0.05)  # a reconnect registers its new socket first
        if self._closing or self._ended is None or self._ended.is_set():
            return
        alive = [w for w in self._sockets() if (w.connected or w._connecting) and not w._closed]
        if not alive:  # twitchio gave up on purpose: 4003 (no subscription held), 4001, or all revoked
            self._needs_auth("Twitch ended the chat connection (the token was revoked or lacks a scope)")

    async def _on_revoked(self, payload) -> None:
        status = str(getattr(payload.status, "value", payload.status))
        log.warning("twitch: subscription %s revoked (%s)", getattr(payload, "type", "?"), status)
        if "authorization_revoked" in status.lower() or "user_removed" in status.lower():
            self._needs_auth("Twitch revoked the bot's authorization")

    async def _on_refreshed(self, payload) -> None:
        """twitchio refreshed the token: keep the new pair for the next run."""
        saved = self.tokens.get(TOKEN_NAME)
        entry = dict(saved) if isinstance(saved, dict) else {}
        entry.update(access_token=payload.token, refresh_token=payload.refresh_token)
        if self.client is not None:
            self.client._http._app_token = payload.token
        try:
            self.tokens.set(TOKEN_NAME, entry)
        except Exception as e:  # a read-only config folder must not stop the stream
            self._say_once("save", logging.WARNING, "twitch: could not save the refreshed token: %s", e)
        self.counters["token refreshes"] += 1


def _message(e) -> str:
    extra = getattr(e, "extra", None)
    if isinstance(extra, dict):
        return str(extra.get("message", ""))[:120]
    return str(extra or e)[:120]


async def _quiet_close(client) -> None:
    try:
        await client.close(save_tokens=False)
    except Exception as e:  # closing must never fail a stop
        log.debug("twitch: close: %s", e)


async def device_login(settings: TwitchSettings, tokens: TokenStore, show: Callable[[str], None], timeout_s: float = 1800.0) -> dict:
    """`vtuber auth twitch`: the device code flow. Shows where to go and the code to
    enter, waits for the user to approve, checks the token and saves it (with its
    refresh token) in the token file. One `UserError` line for each way it can fail."""
    import aiohttp
    import twitchio
    from twitchio import DeviceCodeFlowException, HTTPException
    from twitchio.authentication import OAuth

    from vtuber.errors import UserError

    if not settings.client_id:
        raise UserError(
            "twitch: no client id: register an application at dev.twitch.tv/console (client type: public) "
            "and set [twitch] client_id in the config, or pass --client-id"
        )
    use_endpoints(settings.api_base, settings.id_base, settings.eventsub_url)
    oauth = OAuth(client_id=settings.client_id, scopes=twitchio.Scopes(list(settings.scopes)))
    try:
        flow = await oauth.device_code_flow()
        show(f"Open {flow['verification_uri']} and enter the code {flow['user_code']} (signed in as the bot account).")
        async with asyncio.timeout(min(timeout_s, float(flow.get("expires_in", timeout_s)))):
            granted = await oauth.device_code_authorization(device_code=flow["device_code"], interval=int(flow.get("interval", 5)))
        valid = await oauth.validate_token(granted["access_token"])
    except DeviceCodeFlowException as e:
        reason = getattr(getattr(e, "reason", None), "value", "") or _message(e)
        raise UserError(f"twitch: authorization did not complete ({reason}); run `vtuber auth twitch` again") from None
    except HTTPException as e:
        raise UserError(f"twitch: Twitch refused the request ({e.status}: {_message(e)}); check [twitch] client_id") from None
    except TimeoutError:
        raise UserError("twitch: the code was not entered in time; run `vtuber auth twitch` again") from None
    except (OSError, aiohttp.ClientError) as e:
        raise UserError(f"twitch: cannot reach Twitch ({e})") from None
    finally:
        await oauth.close()
    entry = {
        "access_token": granted["access_token"],
        "refresh_token": granted.get("refresh_token", ""),
        "client_id": settings.client_id,
        "login": valid.login or "",
        "user_id": valid.user_id or "",
        "scopes": list(granted.get("scope") or []),
    }
    tokens.set(TOKEN_NAME, entry)
    return entry


def settings_from(c) -> TwitchSettings:
    """TwitchSettings from the config's [twitch] section."""
    return TwitchSettings(
        client_id=c.client_id,
        api_base=c.api_base,
        id_base=c.id_base,
        eventsub_url=c.eventsub_url,
        reconnect_max_s=c.reconnect_max_s,
        reply_limit=c.reply_limit,
        reply_limit_moderator=c.reply_limit_moderator,
        scopes=tuple(c.scopes) or SCOPES,
    )


def open_platform(channel: str, cfg) -> TwitchSource:
    """`vtuber run --twitch [CHANNEL]`: the channel given, or the config's."""
    from vtuber.errors import UserError

    channel = channel or cfg.twitch.channel
    if not channel:
        raise UserError("--twitch needs a channel name (or set [twitch] channel in the config)")
    return TwitchSource(channel, settings_from(cfg.twitch))


def login(cfg, store: TokenStore, args, say: Callable[[str], None]) -> str:
    """`vtuber auth twitch`: the device code flow; returns who is logged in."""
    import dataclasses

    from vtuber.tokens import token_file

    settings = settings_from(cfg.twitch)
    if getattr(args, "client_id", None):
        settings = dataclasses.replace(settings, client_id=args.client_id)
    entry = asyncio.run(device_login(settings, store, say))
    return f"logged in to Twitch as {entry['login']}; token saved in {token_file()}"


register(
    ChatPlatform(
        name="twitch",
        flag="--twitch",
        metavar="CHANNEL",
        hint="--twitch CHANNEL",
        help="read chat, events and moderation from this Twitch channel (EventSub; log in first: `vtuber auth twitch`)",
        open=open_platform,
        optional_value=True,
        can_reply=True,
        reply_max_wait_s=lambda cfg: cfg.twitch.reply_max_wait_s,
        login=login,
        order=20,
    )
)
