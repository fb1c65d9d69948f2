"""The feature end to end on the real models: a Twitch chat message in (the real twitchio
against the fake Twitch) -> the bundled LLM's reply spoken by Piper -> the same gated text
posted to Twitch chat as a reply to that message."""

from __future__ import annotations

import asyncio
import time

import pytest

import fake_twitch as ft
from test_twitch import settings
from vtuber.clock import Clock
from vtuber.events import ReplyClause
from vtuber.outputs.chat_reply import ChatReplyOutput
from vtuber.pipeline import Session
from vtuber.sources.twitch import TOKEN_NAME, TwitchSource
from vtuber.tokens import TokenStore

pytestmark = pytest.mark.models


async def test_twitch_chat_in_spoken_reply_and_chat_reply_out_on_the_real_models(engine):
    fake = await ft.FakeTwitch(keepalive_s=2.0).start()
    try:
        store = TokenStore()
        access, refresh = fake.issue_token()
        store.set(TOKEN_NAME, {"access_token": access, "refresh_token": refresh})
        source = TwitchSource("streamer", settings(fake), store)
        replies = ChatReplyOutput({"twitch": source})
        session = Session(engine, Clock(), [replies])
        clauses: list[str] = []
        # Chat gets her answer: the clauses after her opener (a sound, not words to post).
        session.observers.append(lambda ev: clauses.append(ev.text) if isinstance(ev, ReplyClause) and not ev.opener else None)
        task = asyncio.create_task(session.run([source]))
        await asyncio.wait_for(source.ready.wait(), 10)
        await fake.wait_subscribed()
        await fake.notify("channel.chat.message", ft.chat_message("hi Miko! what game should I play tonight?", user="Alice", message_id="real-1"))
        deadline = time.monotonic() + 60
        while not fake.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        session.stop("test over")
        await asyncio.wait_for(task, 30)
        (rec,) = [r for r in session.recorder.finished() if r.kind == "chat"]
        assert rec.input_text.startswith("hi Miko") and not rec.cut_short
        assert rec.t_first_audio is not None and rec.reply_text.strip()  # spoken
        (posted,) = fake.sent
        assert posted["reply_parent_message_id"] == "real-1"
        answer = " ".join(" ".join(clauses).split())
        assert posted["message"] == (answer[:1].upper() + answer[1:])[:500]  # what passed the gate, as spoken
        print(f"chat -> first audio {rec.stages()['input_to_first_audio'] * 1000:.0f} ms; posted {posted['message']!r}")
    finally:
        await fake.stop()
