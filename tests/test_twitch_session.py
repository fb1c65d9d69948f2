"""Twitch chat through a real Session (scripted LLM and voice, so each case happens every
time), with chat replies posted back to the fake Twitch; and the reply limiter on a test
clock. The real-model case is in test_twitch_models.py."""

from __future__ import annotations

import asyncio
import time

import pytest

import fake_twitch as ft
from scripted_llm import ScriptedLLM
from test_cancel import FakeTTS, NoVAD
from test_twitch import Running, settings
from vtuber.clock import Clock
from vtuber.config import load_config
from vtuber.events import ChatMessage, Moderation, PlaybackFinished, ReplyStarted, TurnCancelled
from vtuber.mind.persona import load_persona
from vtuber.outputs.chat_reply import ChatReplyOutput, SlidingWindow, clip
from vtuber.pipeline import Engine, Session
from vtuber.sources.twitch import TOKEN_NAME, TwitchSource
from vtuber.tokens import TokenStore


@pytest.fixture
async def fake():
    f = await ft.FakeTwitch(keepalive_s=2.0).start()
    yield f
    await f.stop()


def make_session(llm, outputs, plugins=("thanks",), openers=False):
    cfg = load_config(
        overrides={"director": {"max_age_s": 600.0, "busy_max_age_s": 0.0}, "plugins": {"enabled": list(plugins)}, "voice": {"openers": openers}}
    )
    engine = Engine(cfg, load_persona("miko"), None, llm, None, FakeTTS(), NoVAD(), "CANARY-0000000000")
    return Session(engine, Clock(), outputs, plugins=None)


class Live:
    """A Session over a TwitchSource on the fake, with --reply-in-chat, running in the background."""

    def __init__(self, fake, llm, plugins=("thanks",), openers=False):
        self.fake = fake
        store = TokenStore()
        access, refresh = fake.issue_token()
        store.set(TOKEN_NAME, {"access_token": access, "refresh_token": refresh})
        self.source = TwitchSource("streamer", settings(fake), store)
        self.replies = ChatReplyOutput({"twitch": self.source})
        self.session = make_session(llm, [self.replies], plugins, openers)
        self.seen: list[tuple[float, object]] = []
        self.session.observers.append(lambda ev: self.seen.append((time.monotonic(), ev)))

    async def __aenter__(self):
        self.task = asyncio.create_task(self.session.run([self.source]))
        await asyncio.wait_for(self.source.ready.wait(), 10)
        await self.fake.wait_subscribed()
        return self

    async def __aexit__(self, *exc):
        self.session.stop("test over")
        await asyncio.wait_for(self.task, 20)

    async def until(self, pred, timeout=15.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}: {[e for _, e in self.seen][-8:]}")

    def events(self, kind):
        return [e for _, e in self.seen if isinstance(e, kind)]

    def finished(self):
        return [r for r in self.session.recorder.finished() if not r.cut_short]


async def test_a_chat_message_in_gives_a_spoken_reply_and_a_chat_reply_out(fake):
    llm = ScriptedLLM(["Hello Alice, welcome to the stream!"])
    async with Live(fake, llm, openers=True) as live:
        await fake.notify("channel.chat.message", ft.chat_message("hi Miko!", user="Alice", message_id="m-1"))
        await live.until(lambda: fake.sent, what="a chat reply")
        (rec,) = live.finished()
        # Heard: her opener ("Oh,", made ahead), then the answer; posted in chat: the answer alone.
        assert rec.input_text == "hi Miko!" and rec.opener == "Oh," and rec.heard_text.startswith("Oh, hello Alice")
        (posted,) = fake.sent
        assert posted["reply_parent_message_id"] == "m-1"
        assert posted["message"] == "Hello Alice, welcome to the stream!"
        assert posted["sender_id"] == ft.BOT["id"] and posted["broadcaster_id"] == ft.BROADCASTER["id"]
        # posted only after it was heard to the end
        finished_at = next(t for t, e in live.seen if isinstance(e, PlaybackFinished))
        assert finished_at <= fake.sent[0]["t"]  # the fake stamps a post with time.monotonic too
    assert live.replies.counters["posted"] == 1


async def test_a_message_deleted_while_answered_is_cut_within_200_ms_and_nothing_is_posted(fake):
    llm = ScriptedLLM(["Well that is a long story and I will tell it all now", "Sure."], hold_at=3, hold_calls={0})
    async with Live(fake, llm) as live:
        await fake.notify("channel.chat.message", ft.chat_message("say something rude", user="Troll", user_id="6666", message_id="bad-1"))
        await live.until(lambda: llm.holding.is_set(), what="the reply to start")
        await fake.notify("channel.chat.message_delete", ft.message_delete("bad-1", "Troll", "6666"))
        await live.until(lambda: live.events(TurnCancelled), what="the cut")
        t_mod = next(t for t, e in live.seen if isinstance(e, Moderation))
        t_cut = next(t for t, e in live.seen if isinstance(e, TurnCancelled))
        assert t_cut - t_mod <= 0.2
        assert live.events(TurnCancelled)[0].reason == "moderated: delete"
        # the next message is answered and posted; the deleted one never is
        await fake.notify("channel.chat.message", ft.chat_message("ok?", message_id="m-2"))
        await live.until(lambda: fake.sent, what="the next reply")
        await asyncio.sleep(0.3)
        assert [s["reply_parent_message_id"] for s in fake.sent] == ["m-2"]
    assert live.replies.counters["not posted: cut short"] == 1


async def test_a_message_deleted_while_queued_is_never_answered_and_a_ban_drops_the_users_queue(fake):
    llm = ScriptedLLM(["First answer here.", "Second answer.", "Third answer."], hold_at=1, hold_calls={0})
    live = Live(fake, llm)
    live.session.director.cfg.per_user_queued = 3  # the troll's three messages all wait (a ban takes them all)
    async with live:
        await fake.notify("channel.chat.message", ft.chat_message("first", user="Amy", user_id="1", message_id="a1"))
        await live.until(lambda: llm.holding.is_set(), what="the first reply")
        await fake.notify("channel.chat.message", ft.chat_message("delete me", user="Bo", user_id="2", message_id="b1"))
        for i in range(3):
            await fake.notify("channel.chat.message", ft.chat_message(f"spam {i}", user="Troll", user_id="6666", message_id=f"t{i}"))
        await fake.notify("channel.chat.message", ft.chat_message("keep me", user="Cy", user_id="3", message_id="c1"))
        await live.until(lambda: len(live.session.director) == 5, what="five queued")
        await fake.notify("channel.chat.message_delete", ft.message_delete("b1", "Bo", "2"))
        await fake.notify("channel.ban", ft.ban("Troll", "6666"))
        await live.until(lambda: len(live.events(Moderation)) == 2, what="moderation")
        llm.cancel.set()  # let the first reply go on
        llm.cancel.clear()
        await live.until(lambda: len(live.finished()) >= 2 and len(fake.sent) >= 1, what="the rest answered")
        await asyncio.sleep(0.3)
        answered = [r.input_text for r in live.session.recorder.finished()]
        assert "delete me" not in answered and not any(a.startswith("spam") for a in answered)
        assert "keep me" in answered
        c = live.session.director.counters
        assert c["dropped_moderated: delete"] == 1 and c["dropped_moderated: ban"] == 3
        assert all(s["reply_parent_message_id"] in ("a1", "c1") for s in fake.sent)


async def test_a_sub_and_a_raid_get_a_thank_you(fake):
    llm = ScriptedLLM(["unused"])
    async with Live(fake, llm) as live:
        await fake.notify("channel.chat.notification", ft.sub("Bob"))
        await fake.notify("channel.chat.notification", ft.raid("BigStreamer", viewers=40))
        await live.until(lambda: len(live.finished()) == 2, what="two thank-yous")
        said = [r.reply_text for r in live.finished()]
        assert said == ["Thank you for subscribing, Bob!", "Welcome, raiders! Thank you for the raid, BigStreamer!"]
        assert llm.calls == 0  # fixed lines, no LLM
        await asyncio.sleep(0.2)
        assert fake.sent == []  # a thank-you answers no chat message: nothing to reply to


class FakeClock:
    """A fake clock for the limiter: sleeping advances it, at once."""

    def __init__(self):
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, d: float) -> None:
        self.t += d
        await asyncio.sleep(0)


def max_in_window(times, window=30.0):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("moderator, limit", [(False, 20), (True, 100)])
async def test_200_queued_chat_replies_never_exceed_the_limit_in_any_30_s_window(fake, moderator, limit):
    clock = FakeClock()
    fake.clock = clock.now
    async with Running(fake) as r:
        await r.live()
        r.source.bot_is_moderator = moderator
        out = ChatReplyOutput({"twitch": r.source}, max_wait_s=1e9, now=clock.now, sleep=clock.sleep)
        out.start()
        for i in range(200):
            assert out.queue(ChatMessage("amy", f"q{i}", 0.0, source="twitch", id=f"m{i}"), f"answer {i}")
        await asyncio.wait_for(out.drain(), 60)
        out.close()
        times = [s["t"] for s in fake.sent]
        assert len(times) == 200 and out.counters["posted"] == 200
        assert max_in_window(times) == limit  # never more, and the window is used
        assert [s["message"] for s in fake.sent] == [f"answer {i}" for i in range(200)]


async def test_stale_and_moderated_replies_waiting_for_the_limiter_are_not_posted():
    clock = FakeClock()
    posted = []

    class Platform:
        def reply_limit(self):
            return 2

        async def send_reply(self, text, reply_to):
            posted.append(reply_to)
            return ""

    out = ChatReplyOutput({"twitch": Platform()}, max_wait_s=40.0, now=clock.now, sleep=clock.sleep)
    out.start()
    msgs = [ChatMessage("amy", "q", 0.0, source="twitch", id=f"m{i}", user_id="u1" if i != 3 else "u2") for i in range(8)]
    for m in msgs[:6]:
        out.queue(m, "answer")
    out.handle(Moderation("delete", 0.0, message_id="m2", source="twitch"))
    await asyncio.wait_for(out.drain(), 10)
    # 2 per 30 s: m0 m1 at 0 s, m3 m4 at 30 s; m5's slot comes at 60 s, older than 40 s: stale
    assert posted == ["m0", "m1", "m3", "m4"]
    assert clock.t == pytest.approx(60.0)
    assert out.counters["not posted: moderated"] == 1 and out.counters["not posted: stale"] == 1
    out.close()


def test_sliding_window_and_clip():
    clock = FakeClock()
    w = SlidingWindow(3, 10.0, clock.now, clock.sleep)
    for t in (0.0, 1.0, 2.0):
        clock.t = t
        assert w.wait_s() == 0
        w.sent.append(t)
    clock.t = 5.0
    assert w.wait_s() == pytest.approx(5.0)
    clock.t = 10.0
    assert w.wait_s() == 0
    assert len(clip("word " * 200)) <= 500 and clip("word " * 200).endswith("…")
    assert clip("  a \n b ") == "a b"


async def test_a_cancelled_or_cut_reply_is_never_posted():
    posted = []

    class Platform:
        def reply_limit(self):
            return 20

        async def send_reply(self, text, reply_to):
            posted.append((text, reply_to))
            return ""

    from vtuber.events import ReplyClause, Turn

    out = ChatReplyOutput({"twitch": Platform()})
    out.start()
    msg = ChatMessage("amy", "q", 0.0, source="twitch", id="m1")
    for turn_id, end in ((1, TurnCancelled(1, "skip", 1.0)), (2, PlaybackFinished(2, 1.0, "Hi", cut_short=True)), (3, PlaybackFinished(3, 1.0, "Hi there."))):
        out.handle(ReplyStarted(Turn(turn_id, "chat", "amy", "q", 0, 0, 0, msg), 0.0))
        out.handle(ReplyClause(turn_id, 0, "Hi", 0.1))
        out.handle(ReplyClause(turn_id, 1, "there.", 0.2))
        out.handle(end)
    # a reply to a message from another platform, or to no message, is not this output's
    out.handle(ReplyStarted(Turn(4, "chat", "amy", "q", 0, 0, 0, ChatMessage("amy", "q", 0.0, source="script", id="s1")), 0.0))
    out.handle(PlaybackFinished(4, 1.0, "x"))
    await asyncio.wait_for(out.drain(), 5)
    assert posted == [("Hi there.", "m1")]
    assert out.counters["not posted: cut short"] == 2
    out.close()


async def test_a_busy_stream_against_the_fake_ends_with_counters_that_add_up(fake):
    """A bounded run of the issue's scenario: chat from many users, events, deletes (queued
    and while answered), a ban, more chat than can be answered (queue_full, stale), and a
    socket drop in the middle. Every chat message received is answered, dropped (by
    reason) or taken back by a moderator; every answered one got its chat reply."""
    import random

    from vtuber.events import TurnDropped

    rng = random.Random(9)
    WORDS = "tea boss jump music cozy level snack cat dog rain snow game win lose art song map key door sword".split()

    class ByPrompt(ScriptedLLM):
        """Short replies; a slow one for the message that is deleted while answered."""

        def stream(self, messages, max_tokens):
            self.delay = 0.05 if "vanish" in str(messages) else 0.01
            yield from super().stream(messages, max_tokens)

    llm = ByPrompt(["Sure thing, thanks!"], delay=0.01)
    live = Live(fake, llm)
    live.session.director.cfg.queue_size = 4
    live.session.director.cfg.max_age_s = 3.0
    cut_live = {"done": False}

    def on(ev):
        if isinstance(ev, ReplyStarted) and ev.turn.text == "answer me then vanish" and not cut_live["done"]:
            cut_live["done"] = True
            asyncio.get_running_loop().create_task(fake.notify("channel.chat.message_delete", ft.message_delete("live-del", "Vic", "77")))

    live.session.observers.append(on)
    async with live:
        sent_ids = []
        taken_back = {"answer me then vanish"}  # texts a moderator took back
        for i in range(60):
            user = f"user{rng.randrange(12)}"
            mid = f"m{i}"
            words = rng.sample(WORDS, 3)  # distinct texts: near-duplicates would be merged
            text = "answer me then vanish" if i == 20 else f"{' '.join(words)} {i}{'?' if i % 3 == 0 else ''}"
            badges = []
            if i == 20:  # a moderator's question: picked next, never crowded out
                user, mid, badges = "Vic", "live-del", [("moderator", "1", ""), ("subscriber", "3", "3")]
                await live.until(lambda: live.session.turns.current is None, what="a free co-host")
            await fake.notify("channel.chat.message", ft.chat_message(text, user=user, user_id=user if user != "Vic" else "77", message_id=mid, badges=badges))
            sent_ids.append(mid)
            if user == "user3" and i <= 30:
                taken_back.add(text)
            if i % 10 == 5:
                taken_back.add(text)
                await fake.notify("channel.chat.message_delete", ft.message_delete(f"m{i}", user, user))
            if i == 30:
                await fake.notify("channel.chat.notification", ft.sub(f"subber{i}"))
                await fake.notify("channel.ban", ft.ban("user3", "user3"))
            if i == 40:
                await fake.drop()  # the socket goes; the source reconnects and resubscribes
                await fake.wait_subscribed(timeout=20)
            await asyncio.sleep(rng.uniform(0.0, 0.08))
        await live.until(lambda: len(live.session.director) == 0 and live.session.turns.current is None and live.session.playback.idle(), timeout=30, what="the queue to drain")
        await asyncio.sleep(0.3)
        await live.replies.drain()
    received = live.source.counters["messages"]
    answered = sum(1 for r in live.session.recorder.finished() if r.kind == "chat" and not r.cut_short)
    dropped = {}
    for d in live.events(TurnDropped):
        if d.kind == "chat":
            dropped[d.reason] = dropped.get(d.reason, 0) + 1
    cut = sum(1 for r in live.session.recorder.finished() if r.kind == "chat" and r.cut_short)
    deleted = sum(n for reason, n in dropped.items() if reason.startswith("moderated")) + cut
    by_reason = {k: v for k, v in dropped.items() if not k.startswith("moderated")}
    print(f"received {received} = answered {answered} + dropped {by_reason} + deleted {deleted}")
    assert received == len(sent_ids) == 60  # each arrived once: nothing lost across the drop, nothing twice
    assert received == answered + sum(by_reason.values()) + deleted
    assert answered >= 5 and deleted >= 3 and by_reason, (answered, deleted, by_reason)
    cut_texts = {r.input_text for r in live.session.recorder.finished() if r.kind == "chat" and r.cut_short}
    assert "answer me then vanish" in cut_texts and cut_texts <= taken_back, (cut_texts, taken_back)  # only those were cut
    posted = [s["reply_parent_message_id"] for s in fake.sent]
    assert len(posted) == answered == live.replies.counters["posted"]
    assert "live-del" not in posted and not any(p in posted for p in ("m5", "m15", "m25", "m35", "m45", "m55"))
    assert len(set(posted)) == len(posted)  # never two replies to one message
