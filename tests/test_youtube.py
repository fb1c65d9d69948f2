"""The YouTube source with aiohttp against a local fake Data API (tests/fake_youtube.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fake_youtube as fy
from vtuber.clock import Clock
from vtuber.events import ChatMessage, Moderation, StreamEvent
from vtuber.sources.youtube import KEY_NAME, OAUTH_NAME, YouTubeSettings, YouTubeSource
from vtuber.tokens import TokenStore


@pytest.fixture
async def fake():
    f = await fy.FakeYouTube().start()
    yield f
    await f.stop()


class Running:
    def __init__(self, fake, target="vid1", key=fy.KEY, **kw):
        store = TokenStore()
        if key:
            store.set(KEY_NAME, key)
        else:
            store.forget(KEY_NAME)
        store.set(OAUTH_NAME, fy.OAUTH)
        opts = dict(api_base=fake.api_base, daily_quota=10**9, min_poll_s=0.02, backoff_initial_s=0.05, backoff_max_s=0.2, not_live_retry_s=0.1, quota_retry_s=0.1, timeout_s=0.5)
        opts.update(kw)
        self.source = YouTubeSource(target, YouTubeSettings(**opts), store)
        self.events: list = []

    async def __aenter__(self):
        self.task = asyncio.create_task(self.source.run(Clock(), self.events.append))
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def until(self, pred, timeout=10.0, what="condition"):
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if pred():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}; state {self.source.state!r}; events {self.events}")

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


async def test_messages_paid_messages_members_and_moderation_are_mapped(fake):
    fake.text("said before we came")
    fake.backlog = 1
    async with Running(fake) as r:
        await r.until(lambda: r.source.state == "live", what="live")
        mid = fake.text("hi Miko!", "Amy", isChatModerator=True, isVerified=True)
        fake.add("superChatEvent", "Rich", "UCrich", {"isChatSponsor": True},
                 superChatDetails={"amountMicros": "5000000", "currency": "USD", "amountDisplayString": "$5.00", "userComment": "love the stream", "tier": 2})
        fake.add("superStickerEvent", "Stix", "UCstix", None,
                 superStickerDetails={"superStickerMetadata": {"stickerId": "s", "altText": "cat", "language": "en"}, "amountMicros": "2000000", "currency": "EUR", "amountDisplayString": "€2.00", "tier": 1})
        fake.add("newSponsorEvent", "Neo", "UCneo", None, newSponsorDetails={"memberLevelName": "Fan", "isUpgrade": False})
        fake.add("memberMilestoneChatEvent", "Mo", "UCmo", None, memberMilestoneChatDetails={"memberLevelName": "Fan", "memberMonth": 6, "userComment": "six months!"})
        fake.add("messageDeletedEvent", "Mod", "UCmod", None, messageDeletedDetails={"deletedMessageId": mid})
        fake.add("userBannedEvent", "Mod", "UCmod", None, userBannedDetails={"bannedUserDetails": {"channelId": "UCtroll", "displayName": "Troll"}, "banType": "permanent"})
        await r.until(lambda: len(r.of(Moderation)) == 2, what="everything")
        msgs = [(m.user, m.text, m.badges, m.amount, m.currency, m.source) for m in r.of(ChatMessage)]
        assert msgs == [
            ("Amy", "hi Miko!", ("moderator", "verified"), 0.0, "", "youtube"),
            ("Rich", "love the stream", ("member",), 5.0, "USD", "youtube"),
            ("Mo", "six months!", (), 0.0, "", "youtube"),
        ]
        assert r.of(ChatMessage)[0].id == mid and r.of(ChatMessage)[0].user_id == "UCamy"
        evs = [(e.kind, e.user, e.amount) for e in r.of(StreamEvent)]
        assert evs == [("superchat", "Rich", 5), ("supersticker", "Stix", 2), ("member", "Neo", 0), ("milestone", "Mo", 6)]
        delete, ban = r.of(Moderation)
        assert delete.action == "delete" and delete.message_id == mid and delete.matches(r.of(ChatMessage)[0])
        assert ban.action == "ban" and ban.user_id == "UCtroll"
        assert "said before we came" not in [m.text for m in r.of(ChatMessage)]  # the backlog is not answered
        # quota: 1 (videos) + 5 a poll, counted
        assert r.source.quota_used == 1 + 5 * fake.calls.count("list")


async def test_a_handle_finds_the_live_stream(fake):
    async with Running(fake, target="@miko") as r:
        await r.until(lambda: r.source.state == "live")
        assert fake.calls[:3] == ["channels", "search", "videos"]
        assert r.source.live_chat_id == "chat1"
        assert r.source.quota_used >= 1 + 100 + 1


async def test_errors_back_off_say_so_once_and_recover(fake, caplog):
    caplog.set_level(logging.WARNING, "vtuber.youtube")
    async with Running(fake) as r:
        await r.until(lambda: r.source.state == "live")
        fake.failures = [(503, "backendError"), (500, "internalError"), (403, "quotaExceeded")]
        fake.hang_s = 2.0  # and one call that times out
        states = set()

        async def watch():
            while True:
                states.add(r.source.state.split(" ")[0])
                await asyncio.sleep(0.005)

        w = asyncio.create_task(watch())
        await r.until(lambda: not fake.failures, timeout=15, what="the failures to be served")
        fake.text("back again")
        await r.until(lambda: r.of(ChatMessage), timeout=30, what="recovery")
        w.cancel()
        assert r.source.state == "live"
        assert {"reconnecting", "quota"} <= states, states
        lines = [rec.message for rec in caplog.records]
        assert sum("retrying with backoff" in m for m in lines) == 2  # network (timeout) once, 5xx once
        assert sum("quota is used up" in m for m in lines) == 1


async def test_not_live_waits_and_picks_up_when_the_stream_starts(fake):
    fake.videos["vid1"] = ""
    async with Running(fake) as r:
        await r.until(lambda: r.source.state.startswith("waiting"), what="waiting")
        assert "no live chat" in r.source.state
        fake.videos["vid1"] = "chat1"
        await r.until(lambda: r.source.state == "live", what="live")
        fake.text("we're on")
        await r.until(lambda: r.of(ChatMessage))


async def test_chat_ended_and_missing_video_and_bad_key_end_with_one_line(fake):
    async with Running(fake) as r:
        await r.until(lambda: r.source.state == "live")
        fake.ended = True
        await asyncio.wait_for(r.task, 5)
        assert r.source.state == "ended: the live chat is over"
    async with Running(fake, target="nosuchvideo") as r:
        await asyncio.wait_for(r.task, 5)
        assert r.source.state == "error: no YouTube video nosuchvideo"
    async with Running(fake, key="wrong") as r:
        await asyncio.wait_for(r.task, 5)
        assert r.source.state.startswith("needs auth") and "vtuber auth youtube" in r.source.state
    async with Running(fake, key="") as r:
        await asyncio.wait_for(r.task, 5)
        assert r.source.state.startswith("needs auth: no YouTube API key")


async def test_polling_slows_down_to_last_the_daily_quota(fake, caplog):
    caplog.set_level(logging.WARNING, "vtuber.youtube")
    # 1000 units over 1 h: one 5-unit poll every ~18 s at most, though the API says 50 ms
    async with Running(fake, daily_quota=1000, stream_hours=1.0) as r:
        await r.until(lambda: r.source.poll_s > 0)
        assert r.source.poll_s == pytest.approx(3600 / ((1000 - 6) / 5), rel=0.05)
        assert "slowed" in r.source.state
        assert sum("so 1000 quota units last" in rec.message for rec in caplog.records) == 1


async def test_a_reply_is_inserted_with_the_authors_name(fake):
    async with Running(fake) as r:
        await r.until(lambda: r.source.state == "live")
        mid = fake.text("hello?", "Amy")
        await r.until(lambda: r.of(ChatMessage))
        assert await r.source.send_reply("Hi Amy!", mid) == ""
        (body,) = fake.inserted
        assert body["snippet"] == {"liveChatId": "chat1", "type": "textMessageEvent", "textMessageDetails": {"messageText": "@Amy Hi Amy!"}}
        assert r.source.counters["replies sent"] == 1


async def test_youtube_chat_through_a_session_reply_posted_deleted_message_never_answered(fake):
    """A real Session: a YouTube message answered (spoken, then inserted as "@name ..."),
    one deleted while it waits never answered, a Super Chat's amount on the message."""
    from scripted_llm import ScriptedLLM
    from test_twitch_session import make_session
    from vtuber.outputs.chat_reply import ChatReplyOutput

    store_src = Running(fake)
    source = store_src.source
    llm = ScriptedLLM(["Hello there, thanks for asking!", "Second reply."], hold_at=1, hold_calls={0})
    replies = ChatReplyOutput({"youtube": source})
    session = make_session(llm, [replies], plugins=())
    seen = []
    session.observers.append(seen.append)
    task = asyncio.create_task(session.run([source]))
    try:
        await store_src.until(lambda: source.state == "live")
        fake.text("how are you?", "Amy")
        await store_src.until(lambda: llm.holding.is_set(), what="the first reply")
        gone = fake.text("answer me later", "Bo", "UCbo")
        fake.add("superChatEvent", "Rich", "UCrich", None,
                 superChatDetails={"amountMicros": "10000000", "currency": "USD", "amountDisplayString": "$10.00", "userComment": "big fan", "tier": 3})
        await store_src.until(lambda: len(session.director) == 2, what="two queued")
        fake.add("messageDeletedEvent", "Mod", "UCmod", None, messageDeletedDetails={"deletedMessageId": gone})
        await store_src.until(lambda: any(isinstance(e, Moderation) for e in seen), what="the delete")
        llm.cancel.set()
        llm.cancel.clear()
        await store_src.until(lambda: len(fake.inserted) == 2, what="two replies inserted")
    finally:
        session.stop("test over")
        await asyncio.wait_for(task, 20)
    answered = [r.input_text for r in session.recorder.finished() if not r.cut_short]
    assert answered == ["how are you?", "big fan"]
    paid = [e for e in seen if isinstance(e, ChatMessage) and e.user == "Rich"]
    assert paid[0].amount == 10.0 and paid[0].currency == "USD"
    texts = [b["snippet"]["textMessageDetails"]["messageText"] for b in fake.inserted]
    assert texts == ["@Amy Hello there, thanks for asking!", "@Rich Second reply."]
    assert session.director.counters["dropped_moderated: delete"] == 1


async def test_live_chat_not_found_looks_for_the_chat_again(fake, caplog):
    caplog.set_level(logging.WARNING, "vtuber.youtube")
    async with Running(fake) as r:
        await r.until(lambda: r.source.state == "live")
        fake.videos["vid1"] = "chat2"  # the stream restarted: a new chat, the old one is gone
        await r.until(lambda: r.source.live_chat_id == "chat2", what="the new chat")
        await r.until(lambda: r.source.state == "live")
        fake.text("on the new chat")
        await r.until(lambda: r.of(ChatMessage))
        assert sum("has no live chat" in rec.message for rec in caplog.records) == 1
