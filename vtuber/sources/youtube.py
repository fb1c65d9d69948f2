"""YouTube live chat in (and out), through the YouTube Data API v3 with aiohttp.

    vtuber auth youtube                # once: paste an API key (token file, never the config)
    vtuber run --youtube VIDEO_ID      # or --youtube @handle: that channel's live stream

- The chat: `videos.list` (liveStreamingDetails.activeLiveChatId) for a video id; for
  a handle, `channels.list?forHandle` then `search.list` (eventType=live) first.
- Polling `liveChat/messages` honours `pollingIntervalMillis` and `nextPageToken`;
  the first page (what was said before we came) is skipped, not answered.
- Mapping: textMessageEvent -> ChatMessage; superChatEvent / superStickerEvent ->
  ChatMessage with `amount` and `currency` (when there is a comment) and a
  StreamEvent "superchat" / "supersticker"; newSponsorEvent -> StreamEvent "member";
  memberMilestoneChatEvent -> StreamEvent "milestone" (amount: months);
  messageDeletedEvent -> Moderation delete; userBannedEvent -> Moderation ban.
  Author flags become badges: broadcaster (owner), moderator, member (sponsor), verified.
- Quota: every call's cost is counted (`quota_used`); with `daily_quota` units to last
  `stream_hours`, polling slows down when the suggested pace would run out first, and
  says so once.
- Errors: 403 quotaExceeded, 5xx, timeouts and network errors back off (said once) and
  pick up again; liveChatNotFound / not live waits for the stream; liveChatEnded ends
  the source; a bad key is "needs auth". Never an exit, never a traceback.
- Replies (`--reply-in-chat`): `liveChat/messages` insert with an OAuth token
  ("youtube_oauth" in the token file or VTUBER_YOUTUBE_OAUTH), "@name " first (YouTube
  has no reply threads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vtuber.clock import Clock
from vtuber.events import ChatMessage, Moderation, StreamEvent
from vtuber.resilience import Backoff
from vtuber.sources.platforms import ChatPlatform, register
from vtuber.tokens import TokenStore

log = logging.getLogger("vtuber.youtube")

KEY_NAME = "youtube"
OAUTH_NAME = "youtube_oauth"
AUTH_HINT = "run `vtuber auth youtube`"
COST = {"videos": 1, "channels": 1, "search": 100, "list": 5, "insert": 50}  # quota units a call
MAX_NAMES = 2000


@dataclass
class YouTubeSettings:
    api_base: str = "https://www.googleapis.com/youtube/v3/"
    daily_quota: int = 10000
    stream_hours: float = 4.0
    min_poll_s: float = 1.0
    reply_limit: int = 20
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    not_live_retry_s: float = 30.0
    quota_retry_s: float = 300.0  # out of quota: try again this often (it comes back at midnight Pacific)
    timeout_s: float = 10.0


def settings_from(c) -> YouTubeSettings:
    return YouTubeSettings(
        api_base=c.api_base, daily_quota=c.daily_quota, stream_hours=c.stream_hours, min_poll_s=c.min_poll_s, reply_limit=c.reply_limit
    )


class _ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str = ""):
        super().__init__(f"{status} {reason}: {message}"[:200])
        self.status, self.reason, self.message = status, reason, message


class YouTubeSource:
    """Live chat of one YouTube stream (see the module docstring)."""

    name = "youtube"

    def __init__(
        self,
        target: str,
        settings: YouTubeSettings | object | None = None,
        tokens: TokenStore | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        self.target = target.strip()
        if settings is not None and not isinstance(settings, YouTubeSettings):
            settings = settings_from(settings)
        self.settings = settings or YouTubeSettings()
        self.tokens = tokens or TokenStore()
        self.sleep = sleep or asyncio.sleep
        self.state = "connecting"
        self.counters: Counter[str] = Counter()
        self.quota_used = 0
        self.poll_s = 0.0
        self.live_chat_id = ""
        self._names: OrderedDict[str, str] = OrderedDict()  # message id -> author (for "@name" replies)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._said: set[str] = set()
        self._session = None
        self._clock: Clock | None = None
        self._emit: Callable[[object], None] = lambda ev: None
        self._started = time.monotonic()

    def preflight(self) -> None:
        """Before any model loads: no API key is the user's one-line mistake."""
        from vtuber.errors import UserError

        if not self._key():
            raise UserError(f"youtube: no YouTube API key yet: {AUTH_HINT} first")

    def reply_limit(self) -> int:
        return self.settings.reply_limit

    def _say_once(self, key: str, level: int, msg: str, *args) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, msg, *args)

    # --- HTTP ------------------------------------------------------------------------------

    def _key(self) -> str:
        saved = self.tokens.get(KEY_NAME)
        if isinstance(saved, dict):
            saved = saved.get("api_key", "")
        return saved if isinstance(saved, str) else ""

    async def _call(self, method: str, path: str, cost: int, params: dict, body: dict | None = None, oauth: str = "") -> dict:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        headers = {"Authorization": f"Bearer {oauth}"} if oauth else {}
        if not oauth:
            params = {**params, "key": self._key()}
        self.quota_used += cost
        self.counters["quota used"] = self.quota_used
        url = self.settings.api_base.rstrip("/") + "/" + path
        async with self._session.request(method, url, params=params, json=body, headers=headers) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = {}
            if resp.status >= 400:
                err = (data or {}).get("error", {}) if isinstance(data, dict) else {}
                reasons = err.get("errors") or [{}]
                raise _ApiError(resp.status, reasons[0].get("reason", "") or str(err.get("status", "")), err.get("message", ""))
            return data or {}

    # --- run -------------------------------------------------------------------------------

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        import aiohttp

        self._clock, self._emit = clock, emit
        failures = 0
        try:
            if not self._key():
                self.state = f"needs auth: no YouTube API key; {AUTH_HINT}"
                self._say_once("auth", logging.ERROR, "youtube: no API key; %s (the other sources keep running)", AUTH_HINT)
                return
            first = True
            page = ""
            while True:
                try:
                    if not self.live_chat_id:
                        self.state = "connecting"
                        self.live_chat_id = await self._find_chat()
                        first, page = True, ""
                    data = await self._call(
                        "GET", "liveChat/messages", COST["list"],
                        {"liveChatId": self.live_chat_id, "part": "snippet,authorDetails", "maxResults": 2000, **({"pageToken": page} if page else {})},
                    )
                except _ApiError as e:
                    wait = self._on_error(e, failures)
                    if wait is None:
                        return
                    failures += 1
                    await self.sleep(wait)
                    continue
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                    wait = self._backoff(failures)
                    self.state = f"reconnecting in {wait:.0f} s"
                    self._say_once("net", logging.WARNING, "youtube: cannot reach YouTube (%s); retrying with backoff (said once)", str(e) or type(e).__name__)
                    failures += 1
                    await self.sleep(wait)
                    continue
                if failures:
                    log.info("youtube: back (after %d failed tries)", failures)
                failures = 0
                page = data.get("nextPageToken", page)
                for item in data.get("items", []):
                    if first:
                        self._seen_before(item.get("id", ""))
                    else:
                        self._item(item)
                first = False
                self.poll_s = self._interval(data.get("pollingIntervalMillis", 5000) / 1000.0)
                if not self.state.startswith("live"):
                    self.state = "live"
                await self.sleep(self.poll_s)
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    def _backoff(self, failures: int) -> float:
        s = self.settings
        return Backoff(s.backoff_initial_s, s.backoff_max_s).delay(failures)

    def _on_error(self, e: _ApiError, failures: int) -> float | None:
        """What an API error means: seconds to wait, or None to stop (said once, in one line)."""
        reason = e.reason
        if reason in ("quotaExceeded", "rateLimitExceeded", "dailyLimitExceeded"):
            wait = self._backoff(failures) if reason == "rateLimitExceeded" else self.settings.quota_retry_s
            self.state = f"quota exceeded: retrying in {wait:.0f} s"
            self._say_once("quota", logging.WARNING, "youtube: the API quota is used up (%s); polling backs off and picks up again", reason)
            return wait
        if reason == "liveChatEnded":
            self.state = "ended: the live chat is over"
            self._say_once("ended", logging.WARNING, "youtube: the live chat ended")
            return None
        if reason in ("videoNotFound", "channelNotFound"):
            self.state = f"error: {e.message}"
            self._say_once("missing", logging.ERROR, "youtube: %s", e.message)
            return None
        if reason in ("liveChatNotFound", "notLive") or e.status == 404:
            self.live_chat_id = ""
            wait = self.settings.not_live_retry_s
            self.state = f"waiting: {self.target} has no live chat now; looking again in {wait:.0f} s"
            self._say_once("notlive", logging.WARNING, "youtube: %s has no live chat (not live?); looking again every %.0f s", self.target, wait)
            return wait
        if reason in ("keyInvalid", "badRequest", "forbidden", "accessNotConfigured", "ipRefererBlocked", "keyExpired") or e.status in (400, 401, 403):
            self.state = f"needs auth: YouTube refused the key ({reason or e.status}); {AUTH_HINT}"
            self._say_once("auth", logging.ERROR, "youtube: YouTube refused the key (%s: %s); %s", reason or e.status, e.message, AUTH_HINT)
            return None
        wait = self._backoff(failures)  # 5xx and the rest: back off, say once, pick up again
        self.state = f"reconnecting in {wait:.0f} s"
        self._say_once("5xx", logging.WARNING, "youtube: the API failed (%s); retrying with backoff (said once)", e)
        return wait

    async def _find_chat(self) -> str:
        video = self.target
        if video.startswith("@"):
            ch = await self._call("GET", "channels", COST["channels"], {"part": "id", "forHandle": video})
            if not ch.get("items"):
                raise _ApiError(404, "channelNotFound", f"no YouTube channel {video}")
            found = await self._call(
                "GET", "search", COST["search"], {"part": "id", "channelId": ch["items"][0]["id"], "eventType": "live", "type": "video"}
            )
            if not found.get("items"):
                raise _ApiError(404, "notLive", f"{video} is not live")
            video = found["items"][0]["id"]["videoId"]
        data = await self._call("GET", "videos", COST["videos"], {"part": "liveStreamingDetails", "id": video})
        items = data.get("items") or []
        if not items:
            raise _ApiError(404, "videoNotFound", f"no YouTube video {video}")
        chat = (items[0].get("liveStreamingDetails") or {}).get("activeLiveChatId")
        if not chat:
            raise _ApiError(404, "notLive", f"{video} is not live")
        return chat

    def _interval(self, suggested: float) -> float:
        """The API's pace, slowed when the quota would not last the stream."""
        s = self.settings
        left_s = max(s.stream_hours * 3600 - (time.monotonic() - self._started), 60.0)
        polls_left = max((s.daily_quota - self.quota_used) / COST["list"], 1.0)
        budget = left_s / polls_left
        interval = max(suggested, s.min_poll_s)
        if budget > interval:
            self.counters["slowed for quota"] += 1
            self._say_once(
                "slow", logging.WARNING, "youtube: polling every %.1f s (not %.1f) so %d quota units last %.1f h", budget, interval, s.daily_quota, s.stream_hours
            )
            self.state = f"live (slowed to {budget:.0f} s for quota)"
            return budget
        return interval

    # --- items -> events -------------------------------------------------------------------

    def _seen_before(self, item_id: str) -> bool:
        if not item_id:
            return False
        if item_id in self._seen:
            self.counters["duplicates"] += 1
            return True
        self._seen[item_id] = None
        while len(self._seen) > 5000:
            self._seen.popitem(last=False)
        return False

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else 0.0

    def _item(self, item: dict) -> None:
        if self._seen_before(item.get("id", "")):
            return
        sn = item.get("snippet") or {}
        au = item.get("authorDetails") or {}
        kind = sn.get("type", "")
        name = au.get("displayName") or "viewer"
        uid = au.get("channelId") or sn.get("authorChannelId", "")
        badges = tuple(
            b for b, flag in (("broadcaster", "isChatOwner"), ("moderator", "isChatModerator"), ("member", "isChatSponsor"), ("verified", "isVerified")) if au.get(flag)
        )
        mid = item.get("id", "")
        now = self._now()

        def message(text: str, amount: float = 0.0, currency: str = "") -> None:
            if not text.strip():
                return
            self.counters["messages"] += 1
            self._names[mid] = name
            while len(self._names) > MAX_NAMES:
                self._names.popitem(last=False)
            self._emit(ChatMessage(name, text, now, badges, 0, "youtube", mid, uid, amount, currency))

        def event(kind: str, amount: int = 0, text: str = "") -> None:
            self.counters["events"] += 1
            self._emit(StreamEvent(kind, name, now, amount, text, "youtube", mid, uid))

        if kind == "textMessageEvent":
            message((sn.get("textMessageDetails") or {}).get("messageText") or sn.get("displayMessage", ""))
        elif kind in ("superChatEvent", "superStickerEvent"):
            d = sn.get("superChatDetails") or sn.get("superStickerDetails") or {}
            amount = int(d.get("amountMicros", 0) or 0) / 1e6
            currency = d.get("currency", "")
            message(d.get("userComment", ""), amount, currency)
            event("superchat" if kind == "superChatEvent" else "supersticker", round(amount), d.get("amountDisplayString", ""))
        elif kind == "newSponsorEvent":
            event("member", 0, (sn.get("newSponsorDetails") or {}).get("memberLevelName", ""))
        elif kind == "memberMilestoneChatEvent":
            d = sn.get("memberMilestoneChatDetails") or {}
            event("milestone", int(d.get("memberMonth", 0) or 0), d.get("memberLevelName", ""))
            message(d.get("userComment", ""))
        elif kind == "messageDeletedEvent":
            gone = (sn.get("messageDeletedDetails") or {}).get("deletedMessageId", "")
            self.counters["moderation"] += 1
            self._emit(Moderation("delete", now, message_id=gone, source="youtube"))
        elif kind == "userBannedEvent":
            d = sn.get("userBannedDetails") or {}
            who = d.get("bannedUserDetails") or {}
            self.counters["moderation"] += 1
            self._emit(Moderation("ban", now, user=who.get("displayName", ""), user_id=who.get("channelId", ""), source="youtube", reason=d.get("banType", "")))
        else:
            self.counters[f"ignored {kind or 'unknown'}"] += 1

    # --- replies ---------------------------------------------------------------------------

    async def send_reply(self, text: str, reply_to_id: str) -> str:
        import aiohttp

        oauth = self.tokens.get(OAUTH_NAME)
        if isinstance(oauth, dict):
            oauth = oauth.get("access_token", "")
        if not oauth:
            self._say_once("oauth", logging.WARNING, "youtube: chat replies need an OAuth token (%s); not posting", OAUTH_NAME)
            return "no oauth token"
        if not self.live_chat_id:
            return "not connected"
        name = self._names.get(reply_to_id, "")
        text = f"@{name} {text}" if name else text
        body = {"snippet": {"liveChatId": self.live_chat_id, "type": "textMessageEvent", "textMessageDetails": {"messageText": text[:200]}}}
        try:
            await self._call("POST", "liveChat/messages", COST["insert"], {"part": "snippet"}, body, oauth=oauth)
        except _ApiError as e:
            return f"{e.reason or e.status}: {e.message}"[:120]
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return f"network: {e}"
        self.counters["replies sent"] += 1
        return ""


def store_key(tokens: TokenStore, ask: Callable[[str], str]) -> None:
    """`vtuber auth youtube`: an API key (for reading chat) and optionally an OAuth access
    token (for --reply-in-chat), into the token file."""
    from vtuber.errors import UserError

    key = ask("YouTube Data API key (console.cloud.google.com > APIs & Services > Credentials): ").strip()
    if not key:
        raise UserError("youtube: no key given; nothing saved")
    tokens.set(KEY_NAME, key)
    oauth = ask("OAuth access token for posting replies (Enter to skip): ").strip()
    if oauth:
        tokens.set(OAUTH_NAME, oauth)


def login(cfg, store: TokenStore, args, say: Callable[[str], None]) -> str:
    """`vtuber auth youtube`: paste the API key (and optionally an OAuth token) into the token file."""
    import getpass

    from vtuber.tokens import token_file

    store_key(store, getpass.getpass)
    return f"YouTube key saved in {token_file()}"


register(
    ChatPlatform(
        name="youtube",
        flag="--youtube",
        metavar="VIDEO_ID|@HANDLE",
        hint="--youtube VIDEO",
        help="read the live chat of this YouTube video, or of the channel's live stream (key: `vtuber auth youtube`)",
        open=lambda target, cfg: YouTubeSource(target, cfg.youtube),
        can_reply=True,
        reply_max_wait_s=lambda cfg: cfg.youtube.reply_max_wait_s,
        login=login,
        order=30,
    )
)
