"""The Twitch source with the real twitchio 3 against a local fake Twitch (tests/fake_twitch.py):
chat, events and moderation in; reconnects, session_reconnect, auth failures."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fake_twitch as ft
from vtuber.clock import Clock
from vtuber.events import ChatMessage, Moderation, StreamEvent
from vtuber.sources.twitch import TOKEN_NAME, TwitchSettings, TwitchSource
from vtuber.tokens import TokenStore


@pytest.fixture
async def fake():
    f = await ft.FakeTwitch(keepalive_s=2.0).start()
    yield f
    await f.stop()


def settings(fake) -> TwitchSettings:
    return TwitchSettings(
        client_id=ft.CLIENT_ID,
        api_base=fake.api_base,
        id_base=fake.id_base,
        eventsub_url=fake.eventsub_url,
        reconnect_initial_s=0.2,
        reconnect_max_s=1.0,
    )


class Running:
    """A TwitchSource running in the background, collecting what it emits."""

    def __init__(self, fake, token=None, channel="streamer"):
        self.fake = fake
        self.store = TokenStore()
        if token is None:
            access, refresh = fake.issue_token()
            token = {"access_token": access, "refresh_token": refresh}
        if token:
            self.store.set(TOKEN_NAME, token)
        self.source = TwitchSource(channel, settings(fake), self.store)
        self.events: list[object] = []
        self.clock = Clock()
        self.task: asyncio.Task | None = None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.source.run(self.clock, self.events.append))
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def live(self, timeout=10.0):
        ready = asyncio.ensure_future(self.source.ready.wait())
        await asyncio.wait([ready, self.task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        assert self.source.ready.is_set(), self.source.state
        await self.fake.wait_subscribed()

    async def until(self, pred, timeout=10.0, what="condition"):
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if pred():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; state {self.source.state!r}, events {self.events}")

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


async def test_chat_message_with_badges_bits_and_first_time_flag(fake):
    async with Running(fake) as r:
        await r.live()
        assert r.source.state == "live"
        assert {t for t, _ in fake.sub_history} >= {
            "channel.chat.message",
            "channel.chat.message_delete",
            "channel.chat.clear_user_messages",
            "channel.chat.clear",
            "channel.chat.notification",
            "channel.ban",
            "channel.follow",
        }
        await fake.notify(
            "channel.chat.message",
            ft.chat_message(
                "hi Miko! Kappa",
                user="Alice",
                message_id="m1",
                badges=[("subscriber", "12", "12"), ("moderator", "1", ""), ("vip", "1", "")],
                bits=100,
                message_type="user_intro",
            ),
        )
        await r.until(lambda: r.of(ChatMessage) and r.of(StreamEvent), what="message")
        (m,) = r.of(ChatMessage)
        assert (m.user, m.text, m.id, m.user_id, m.source, m.bits) == ("Alice", "hi Miko! Kappa", "m1", "3003", "twitch", 100)
        assert m.badges == ("subscriber/12", "moderator", "vip", "first-msg")
        (bits,) = r.of(StreamEvent)
        assert (bits.kind, bits.user, bits.amount) == ("bits", "Alice", 100)
        # The bot's own message (a chat reply coming back) is not chat for the co-host.
        await fake.notify("channel.chat.message", ft.chat_message("my own reply", user="MikoBot", user_id=ft.BOT["id"]))
        await fake.notify("channel.chat.message", ft.chat_message("next", message_id="m2"))
        await r.until(lambda: len(r.of(ChatMessage)) == 2)
        assert [m.text for m in r.of(ChatMessage)] == ["hi Miko! Kappa", "next"]
        assert r.source.counters["messages"] == 2


async def test_subs_gifts_raids_follows_and_other_notices_become_stream_events(fake):
    async with Running(fake) as r:
        await r.live()
        await fake.notify("channel.chat.notification", ft.sub("Bob"))
        await fake.notify("channel.chat.notification", ft.resub("Dee", months=14))
        await fake.notify("channel.chat.notification", ft.community_gift("Carol", total=5))
        # the five recipients' own notices belong to the community gift: not thanked again
        gift_one = ft.notification("sub_gift", "Carol", sub_tier="1000", duration_months=1, cumulative_total=None,
                                   community_gift_id="cg-1", recipient_user_id="9", recipient_user_name="X", recipient_user_login="x")
        await fake.notify("channel.chat.notification", gift_one)
        await fake.notify("channel.chat.notification", ft.raid("BigStreamer", viewers=40))
        await fake.notify("channel.follow", ft.follow("NewFan"))
        await fake.notify("channel.chat.notification", ft.notification("announcement", "Streamer", color="PRIMARY"))
        await fake.notify("channel.channel_points_custom_reward_redemption.add", ft.redemption("Dana", title="Hydrate!", cost=500, text="ignore this"))
        await r.until(lambda: len(r.of(StreamEvent)) >= 7, what="events")
        got = [(e.kind, e.user, e.amount) for e in r.of(StreamEvent)]
        assert got == [
            ("sub", "Bob", 1),
            ("resub", "Dee", 14),
            ("gift", "Carol", 5),
            ("raid", "BigStreamer", 40),
            ("follow", "NewFan", 0),
            ("announcement", "Streamer", 0),
            ("redeem", "Dana", 500),
        ]
        assert r.of(StreamEvent)[-1].text == "Hydrate!"  # the reward's title, not what the viewer typed


async def test_a_new_category_becomes_a_category_event(fake):
    async with Running(fake) as r:
        await r.live()
        assert "channel.update" in {t for t, _ in fake.sub_history}
        await fake.notify("channel.update", ft.channel_update("Celeste"))
        await r.until(lambda: r.of(StreamEvent), what="category")
        (ev,) = r.of(StreamEvent)
        assert (ev.kind, ev.text, ev.source) == ("category", "Celeste", "twitch")


async def test_moderation_events_become_moderation(fake):
    async with Running(fake) as r:
        await r.live()
        await fake.notify("channel.chat.message_delete", ft.message_delete("m9", "Alice", "3003"))
        await fake.notify("channel.chat.clear_user_messages", ft.clear_user("Troll", "6666"))
        await fake.notify("channel.chat.clear", ft.chat_clear())
        await fake.notify("channel.ban", ft.ban("Troll", "6666", reason="spam"))
        await r.until(lambda: len(r.of(Moderation)) == 4, what="moderation")
        got = [(m.action, m.message_id, m.user_id, m.source) for m in r.of(Moderation)]
        assert got == [("delete", "m9", "3003", "twitch"), ("clear_user", "", "6666", "twitch"), ("clear", "", "", "twitch"), ("ban", "", "6666", "twitch")]
        assert r.of(Moderation)[0].matches(ChatMessage("Alice", "x", 0.0, source="twitch", id="m9"))
        assert r.of(Moderation)[3].reason == "spam"


async def test_a_dropped_socket_reconnects_with_backoff_restores_subscriptions_and_never_repeats_a_message(fake, caplog):
    caplog.set_level(logging.WARNING, "vtuber.twitch")
    async with Running(fake) as r:
        await r.live()
        first_session = (await fake.wait_subscribed())["transport"]["session_id"]
        await fake.notify("channel.chat.message", ft.chat_message("before", message_id="same-id"))
        await r.until(lambda: len(r.of(ChatMessage)) == 1)
        fake.refuse_ws = 2  # the network is down for the first two tries
        states = []
        watcher = asyncio.create_task(_record_states(r.source, states))
        await fake.drop()
        sub = await fake.wait_subscribed(timeout=20)
        watcher.cancel()
        assert sub["transport"]["session_id"] != first_session  # resubscribed on the new session
        assert fake.ws_connects == 2 and fake.refuse_ws == 0
        assert any(s.startswith("reconnecting in") for s in states), states
        await r.until(lambda: r.source.state == "live")
        # Twitch redelivers the same message after the reconnect: answered once, not twice.
        await fake.notify("channel.chat.message", ft.chat_message("before", message_id="same-id"))
        await fake.notify("channel.chat.message", ft.chat_message("after", message_id="new-id"))
        await r.until(lambda: len(r.of(ChatMessage)) == 2)
        await asyncio.sleep(0.2)
        assert [m.id for m in r.of(ChatMessage)] == ["same-id", "new-id"]
        assert r.source.counters["duplicates"] == 1
        said = [rec.message for rec in caplog.records if "reconnecting with backoff" in rec.message]
        assert len(said) == 1, said  # said once, not once a try
        assert r.source.counters["reconnects"] == 2  # the two refused tries


async def _record_states(source, states):
    while True:
        if not states or states[-1] != source.state:
            states.append(source.state)
        await asyncio.sleep(0.01)


async def test_session_reconnect_is_honoured(fake):
    async with Running(fake) as r:
        await r.live()
        old = await fake.session_reconnect()
        await r.until(lambda: any(s.id != old for s in fake.live_sessions()) and not fake.sessions[old].open or len(fake.live_sessions()) == 1 and fake.live_sessions()[0].id != old, what="move to the new session")
        sub = await fake.wait_subscribed()
        new = sub["transport"]["session_id"]
        assert new != old
        # Twitch moved the subscriptions; the client made none again.
        assert [sid for t, sid in fake.sub_history if t == "channel.chat.message"] == [old]
        await fake.notify("channel.chat.message", ft.chat_message("on the new edge", message_id="e1"))
        await r.until(lambda: r.of(ChatMessage))
        assert r.of(ChatMessage)[0].text == "on the new edge"


async def test_an_expired_token_is_refreshed_and_saved(fake):
    access, refresh = fake.issue_token()
    del fake.tokens[access]  # expired: validate says 401
    async with Running(fake, {"access_token": access, "refresh_token": refresh}) as r:
        await r.live()
        saved = r.store.get(TOKEN_NAME)
        assert saved["access_token"] != access and saved["access_token"] in fake.tokens
        assert r.source.counters["token refreshes"] == 1


async def test_a_revoked_token_means_needs_auth_once_and_no_retry_loop(fake, caplog):
    caplog.set_level(logging.ERROR, "vtuber.twitch")
    access, refresh = fake.issue_token()
    fake.revoke_tokens()
    async with Running(fake, {"access_token": access, "refresh_token": refresh}) as r:
        await asyncio.wait_for(r.task, 10)  # it ends by itself: the other sources go on
        assert r.source.state.startswith("needs auth") and "vtuber auth twitch" in r.source.state
        assert fake.ws_connects == 0
        assert fake.requests.count("token:refresh_token") == 1  # tried once, not in a loop
        assert len([rec for rec in caplog.records if "auth" in rec.message]) == 1


async def test_no_token_at_all_means_needs_auth(fake):
    async with Running(fake, token={}) as r:
        await asyncio.wait_for(r.task, 5)
        assert r.source.state.startswith("needs auth: no Twitch token")


async def test_close_4003_means_needs_auth_and_no_blind_retry(fake):
    async with Running(fake) as r:
        await r.live()
        await fake.close_4003()
        await asyncio.wait_for(r.task, 10)
        assert r.source.state.startswith("needs auth")
        await asyncio.sleep(0.5)
        assert fake.ws_connects == 1  # no reconnect loop against a connection Twitch ended on purpose


async def test_a_missing_scope_skips_that_event_and_chat_still_works(fake, caplog):
    caplog.set_level(logging.WARNING, "vtuber.twitch")
    fake.forbidden_types = {"channel.follow", "channel.ban"}
    async with Running(fake) as r:
        await r.live()
        assert r.source.state == "live"
        assert any("channel.follow" in rec.message for rec in caplog.records)
        await fake.notify("channel.chat.message", ft.chat_message("still here"))
        await r.until(lambda: r.of(ChatMessage))


async def test_a_channel_that_does_not_exist_is_one_clear_line(fake):
    async with Running(fake, channel="nosuchchannel") as r:
        await asyncio.wait_for(r.task, 10)
        assert r.source.state == "error: no Twitch channel called 'nosuchchannel'"


async def test_chat_reply_goes_to_helix_as_a_reply_and_drop_reason_is_reported(fake, caplog):
    async with Running(fake) as r:
        await r.live()
        assert await r.source.send_reply("Hello Alice!", "m1") == ""
        body = fake.sent[-1]
        assert body["broadcaster_id"] == ft.BROADCASTER["id"] and body["sender_id"] == ft.BOT["id"]
        assert body["message"] == "Hello Alice!" and body["reply_parent_message_id"] == "m1"
        fake.drop_reason = {"code": "msg_duplicate", "message": "Your message was not sent because it is identical to the previous one."}
        caplog.set_level(logging.WARNING, "vtuber.twitch")
        assert await r.source.send_reply("Hello Alice!", "m1") == "dropped by Twitch: msg_duplicate"
        assert any("identical" in rec.message for rec in caplog.records)
        assert r.source.counters["replies sent"] == 1 and r.source.counters["replies dropped by Twitch"] == 1


async def test_a_token_that_expires_mid_stream_is_refreshed_on_the_next_call_and_saved(fake):
    async with Running(fake) as r:
        await r.live()
        old = r.store.get(TOKEN_NAME)["access_token"]
        del fake.tokens[old]  # it expired while the stream went on
        assert await r.source.send_reply("still here", "m1") == ""  # twitchio refreshed and retried
        assert fake.requests.count("token:refresh_token") == 1
        await r.until(lambda: r.store.get(TOKEN_NAME)["access_token"] != old, what="the new token saved")
        assert r.store.get(TOKEN_NAME)["access_token"] in fake.tokens
        assert fake.sent[-1]["message"] == "still here"


async def test_twitch_unreachable_at_start_backs_off_says_so_once_and_connects_when_it_is_back(caplog):
    import socket

    caplog.set_level(logging.WARNING, "vtuber.twitch")
    with socket.socket() as s:  # a free port, nothing listening on it yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = ft.FakeTwitch(keepalive_s=2.0, port=port)  # not started: the network is down
    access, refresh = fake.issue_token()
    async with Running(fake, {"access_token": access, "refresh_token": refresh}) as r:
        await r.until(lambda: r.source.state.startswith("reconnecting in"), what="backing off")
        await asyncio.sleep(1.0)
        await fake.start()
        try:
            await r.live(timeout=15)
            assert r.source.state == "live"
            said = [rec.message for rec in caplog.records if "cannot reach Twitch" in rec.message]
            assert len(said) == 1, said
        finally:
            await fake.stop()
