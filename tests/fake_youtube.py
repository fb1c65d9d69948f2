"""A local fake of the YouTube Data API v3 (the parts live chat uses), on 127.0.0.1.

videos.list (liveStreamingDetails), channels.list (forHandle), search.list (eventType=live),
liveChatMessages.list (pollingIntervalMillis, nextPageToken) and .insert, answering in the
documented JSON shapes, including the errors: 403 quotaExceeded, 403 liveChatEnded,
404 liveChatNotFound, 5xx, and a hang (a timeout)."""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import web

KEY = "fake-api-key"
OAUTH = "fake-oauth"


def error(status: int, reason: str, message: str = "") -> web.Response:
    body = {"error": {"code": status, "message": message or reason, "errors": [{"domain": "youtube.liveChat", "reason": reason, "message": message or reason}]}}
    return web.json_response(body, status=status)


class FakeYouTube:
    def __init__(self, poll_ms: int = 50):
        self.poll_ms = poll_ms
        self.videos = {"vid1": "chat1"}  # video id -> active live chat id ("" when not live)
        self.handles = {"@miko": ("UCmiko", "vid1")}
        self.items: list[dict] = []  # the whole chat; a page token is an index into it
        self.backlog = 0  # items before the client came (the first page)
        self.failures: list[tuple[int, str]] = []  # the next list calls fail with these
        self.hang_s = 0.0  # the next list call hangs this long (once)
        self.ended = False
        self.inserted: list[dict] = []
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self._runner = None
        self.port = 0

    async def start(self) -> FakeYouTube:
        app = web.Application()
        app.router.add_get("/youtube/v3/videos", self._videos)
        app.router.add_get("/youtube/v3/channels", self._channels)
        app.router.add_get("/youtube/v3/search", self._search)
        app.router.add_get("/youtube/v3/liveChat/messages", self._list)
        app.router.add_post("/youtube/v3/liveChat/messages", self._insert)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/youtube/v3/"

    def _key_ok(self, request) -> bool:
        return request.query.get("key") == KEY or request.headers.get("Authorization") == f"Bearer {OAUTH}"

    async def _videos(self, request):
        self.calls.append("videos")
        if not self._key_ok(request):
            return error(400, "keyInvalid", "API key not valid. Please pass a valid API key.")
        vid = request.query["id"]
        if vid not in self.videos:
            return web.json_response({"kind": "youtube#videoListResponse", "items": []})
        details = {"actualStartTime": "2026-01-01T00:00:00Z"}
        if self.videos[vid]:
            details["activeLiveChatId"] = self.videos[vid]
        return web.json_response({"kind": "youtube#videoListResponse", "items": [{"kind": "youtube#video", "id": vid, "liveStreamingDetails": details}]})

    async def _channels(self, request):
        self.calls.append("channels")
        h = self.handles.get(request.query.get("forHandle", ""))
        return web.json_response({"kind": "youtube#channelListResponse", "items": [{"kind": "youtube#channel", "id": h[0]}] if h else []})

    async def _search(self, request):
        self.calls.append("search")
        vid = next((v for c, v in self.handles.values() if c == request.query.get("channelId")), None)
        live = request.query.get("eventType") == "live" and vid and self.videos.get(vid)
        items = [{"kind": "youtube#searchResult", "id": {"kind": "youtube#video", "videoId": vid}}] if live else []
        return web.json_response({"kind": "youtube#searchListResponse", "items": items})

    async def _list(self, request):
        self.calls.append("list")
        if not self._key_ok(request):
            return error(403, "forbidden")
        if self.hang_s:
            hang, self.hang_s = self.hang_s, 0.0
            await asyncio.sleep(hang)
        if self.failures:
            status, reason = self.failures.pop(0)
            return error(status, reason)
        if self.ended:
            return error(403, "liveChatEnded", "The live chat is no longer live.")
        chat = request.query.get("liveChatId")
        if chat not in self.videos.values() or not chat:
            return error(404, "liveChatNotFound", "The live chat that you are trying to retrieve cannot be found.")
        token = request.query.get("pageToken")
        start = int(token) if token else 0
        end = len(self.items) if token else self.backlog
        page = self.items[start:end] if token else self.items[:end]
        return web.json_response(
            {
                "kind": "youtube#liveChatMessageListResponse",
                "pollingIntervalMillis": self.poll_ms,
                "pageInfo": {"totalResults": len(page), "resultsPerPage": len(page)},
                "nextPageToken": str(end),
                "items": page,
            }
        )

    async def _insert(self, request):
        if request.headers.get("Authorization") != f"Bearer {OAUTH}":
            return error(401, "authError", "Invalid Credentials")
        body = await request.json()
        self.inserted.append(body)
        return web.json_response({"kind": "youtube#liveChatMessage", "id": f"sent-{next(self._ids)}", "snippet": body["snippet"]})

    # --- chat items, documented shapes -----------------------------------------------------

    def add(self, kind: str, author: str = "Amy", channel: str = "UCamy", flags: dict | None = None, **details) -> str:
        mid = f"yt-{next(self._ids)}"
        snippet = {"type": kind, "liveChatId": next(iter(self.videos.values()), ""), "authorChannelId": channel, "publishedAt": "2026-01-01T00:00:00Z", "hasDisplayContent": True, "displayMessage": ""}
        snippet.update(details)
        author_details = {"channelId": channel, "channelUrl": f"http://www.youtube.com/channel/{channel}", "displayName": author,
                          "profileImageUrl": "", "isVerified": False, "isChatOwner": False, "isChatSponsor": False, "isChatModerator": False}
        author_details.update(flags or {})
        self.items.append({"kind": "youtube#liveChatMessage", "id": mid, "snippet": snippet, "authorDetails": author_details})
        return mid

    def text(self, text: str, author: str = "Amy", channel: str = "UCamy", **flags) -> str:
        return self.add("textMessageEvent", author, channel, flags, displayMessage=text, textMessageDetails={"messageText": text})
