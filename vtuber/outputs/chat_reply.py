"""Replies in chat (`vtuber run --reply-in-chat`): what the co-host said, posted as a reply
to the chat message she answered, on the platform it came from.

- Only a reply heard to the end is posted (`PlaybackFinished` without `cut_short`): a
  turn cancelled by barge-in, !skip, mute or a moderator posts nothing.
- The text is the gated clauses (`ReplyClause`: what passed the safety gate, the same
  text that was spoken), joined and cut to the platform's 500 characters.
- A message a moderator took back (`Moderation`) is never replied to, even when its
  reply is already waiting for the limiter.
- Each platform has a client-side sliding-window limiter (`SlidingWindow`): Twitch
  allows 20 messages per 30 s (100 when the bot is a moderator or the broadcaster); a
  reply that waited longer than `max_wait_s` for its slot is dropped as stale, counted.

A platform is anything with `name`, `async send_reply(text, reply_to_id) -> str`
(returns "" when sent, else why it was dropped) and `reply_limit()` (messages per
window); the Twitch and YouTube sources are both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vtuber.events import (
    ChatMessage,
    Moderation,
    PlaybackFinished,
    ReplyClause,
    ReplyStarted,
    TurnCancelled,
)

log = logging.getLogger("vtuber.chat_reply")

MAX_CHARS = 500  # Twitch's and YouTube's limit for one chat message


class SlidingWindow:
    """At most `limit()` events in any `window_s` seconds, on an injectable clock.

    `await acquire()` returns when one more event fits and records it at that time.
    `now` and `sleep` default to the event loop's monotonic clock; a test passes a fake
    clock so 200 replies run through in no real time."""

    def __init__(
        self,
        limit: int | Callable[[], int],
        window_s: float = 30.0,
        now: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        self._limit = limit if callable(limit) else (lambda: limit)
        self.window_s = window_s
        self.now = now or time.monotonic
        self.sleep = sleep or asyncio.sleep
        self.sent: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.window_s:
            self.sent.popleft()

    def wait_s(self) -> float:
        """How long until one more event fits (0 if it fits now)."""
        now = self.now()
        self._trim(now)
        limit = max(1, self._limit())
        if len(self.sent) < limit:
            return 0.0
        return self.sent[len(self.sent) - limit] + self.window_s - now

    async def acquire(self) -> None:
        while (wait := self.wait_s()) > 0:
            await self.sleep(wait)
        self.sent.append(self.now())


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """One line of at most `limit` characters, cut at a word where it can be."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


@dataclass
class _Pending:
    message: ChatMessage
    clauses: dict[int, str] = field(default_factory=dict)


@dataclass
class _Queued:
    platform: str
    text: str
    message: ChatMessage
    t: float


class ChatReplyOutput:
    """Posts each finished reply to a platform chat message back to that chat."""

    name = "chat-reply"

    def __init__(
        self,
        platforms: dict[str, object],
        window_s: float = 30.0,
        max_wait_s: float = 60.0,
        queue_size: int = 256,
        now: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        self.platforms = platforms
        self.max_wait_s = max_wait_s
        self.now = now or time.monotonic
        self.limiters = {
            name: SlidingWindow(getattr(p, "reply_limit", lambda: 20), window_s, now, sleep) for name, p in platforms.items()
        }
        self.counters: Counter[str] = Counter()
        self._pending: dict[int, _Pending] = {}
        self._taken_back: list[Moderation] = []
        self._queues: dict[str, asyncio.Queue[_Queued]] = {}
        self._queue_size = queue_size
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for name in self.platforms:
            q: asyncio.Queue[_Queued] = asyncio.Queue(self._queue_size)
            self._queues[name] = q
            self._tasks.append(asyncio.create_task(self._sender(name, q), name=f"chat-reply-{name}"))

    def handle(self, ev: object) -> None:
        if isinstance(ev, ReplyStarted):
            src = ev.turn.source
            if isinstance(src, ChatMessage) and src.source in self.platforms and src.id:
                self._pending[ev.turn.id] = _Pending(src)
                for stale in list(self._pending)[:-16]:  # a turn that failed never finishes: forget it
                    del self._pending[stale]
        elif isinstance(ev, ReplyClause):
            p = self._pending.get(ev.turn_id)
            if p is not None and not ev.opener:  # chat gets her answer; the opener is a sound
                p.clauses[ev.index] = ev.text
        elif isinstance(ev, TurnCancelled):
            if self._pending.pop(ev.turn_id, None) is not None:
                self.counters["not posted: cut short"] += 1
        elif isinstance(ev, Moderation):
            self._taken_back.append(ev)
            del self._taken_back[:-256]
        elif isinstance(ev, PlaybackFinished):
            p = self._pending.pop(ev.turn_id, None)
            if p is None:
                return
            if ev.cut_short:
                self.counters["not posted: cut short"] += 1
                return
            text = " ".join(p.clauses[i] for i in sorted(p.clauses))
            self.queue(p.message, text[:1].upper() + text[1:])  # (after an opener it may start in lower case)

    def queue(self, message: ChatMessage, text: str) -> bool:
        text = clip(text)
        if not text:
            return False
        q = self._queues.get(message.source)
        if q is None:
            return False
        try:
            q.put_nowait(_Queued(message.source, text, message, self.now()))
        except asyncio.QueueFull:
            self.counters["not posted: queue full"] += 1
            return False
        return True

    def _moderated(self, message: ChatMessage) -> bool:
        return any(m.matches(message) for m in self._taken_back)

    async def _sender(self, name: str, q: asyncio.Queue[_Queued]) -> None:
        platform = self.platforms[name]
        limiter = self.limiters[name]
        while True:
            item = await q.get()
            try:
                await self._post(name, platform, limiter, item)
            finally:
                q.task_done()

    async def _post(self, name: str, platform, limiter: SlidingWindow, item: _Queued) -> None:
        if self._moderated(item.message):
            self.counters["not posted: moderated"] += 1
            return
        await limiter.acquire()
        if self._moderated(item.message):  # taken back while it waited for its slot
            self.counters["not posted: moderated"] += 1
            return
        if self.now() - item.t > self.max_wait_s:
            self.counters["not posted: stale"] += 1
            return
        try:
            dropped = await platform.send_reply(item.text, item.message.id)
        except Exception as e:  # a failed post must not stop the others
            dropped = f"error: {e}"[:120]
        if dropped:
            self.counters[f"not posted: {dropped.split(':')[0]}"] += 1
            log.warning("%s did not post a chat reply: %s", name, dropped)
        else:
            self.counters["posted"] += 1

    async def drain(self) -> None:
        """Wait until every queued reply was posted or dropped (tests)."""
        for q in self._queues.values():
            await q.join()

    def close(self) -> None:
        """Stop posting (the hub calls this from a worker thread)."""
        loop = getattr(self, "_loop", None)
        for task in self._tasks:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        self._tasks.clear()
