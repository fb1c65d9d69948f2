"""Unit tests for the director: what gets answered, in which order, and what is dropped (and said so)."""

from __future__ import annotations

import asyncio

import pytest

from vtuber.clock import Clock, FastClock
from vtuber.config import DirectorConfig
from vtuber.director import Director
from vtuber.events import ChatMessage, Turn, TurnDropped, Utterance


class ManualClock(Clock):
    """A clock the test moves by hand (the director only reads now() and the work counter)."""

    def __init__(self, t: float = 100.0):
        super().__init__()
        self.t = t

    def now(self) -> float:
        return self.t


def chat(text: str, t: float, user: str = "") -> ChatMessage:
    return ChatMessage(user=user or f"viewer-{text}", text=text, t=t, id=text)


def speech(text: str, t_end: float) -> Utterance:
    return Utterance(text=text, t_start=t_end - 1.0, t_end=t_end, t_endpoint=t_end + 0.3, t_asr_done=t_end + 0.5, t=t_end + 0.5)


def make(queue_size: int = 16, max_age_s: float = 30.0, clock: Clock | None = None):
    clock = clock or ManualClock()
    emitted: list[object] = []
    return Director(DirectorConfig(queue_size=queue_size, max_age_s=max_age_s), clock, emitted.append), clock, emitted


async def drain(d: Director) -> list[Turn]:
    turns = []
    d.close()
    while (turn := await d.next_turn()) is not None:
        turns.append(turn)
        d.done()
    return turns


async def test_speech_is_picked_before_earlier_chat():
    d, clock, _ = make()
    d.submit(chat("first chat", 99.0))
    d.submit(chat("second chat", 99.5))
    d.submit(speech("hey Miko, what do you think?", 99.8))
    turn = await d.next_turn()
    assert (turn.kind, turn.user, turn.text) == ("speech", "streamer", "hey Miko, what do you think?")
    assert turn.t_input == 99.8  # end of the streamer's speech
    assert isinstance(turn.source, Utterance)
    d.done()
    assert [t.text for t in await drain(d)] == ["second chat", "first chat"]  # the newest first among equals


async def test_chat_newest_first_with_turn_fields():
    d, clock, _ = make()
    for i in range(5):
        clock.t = 100.0 + i
        d.submit(chat(f"msg {i}", 100.0 + i, user=f"u{i}"))
    clock.t = 110.0
    turns = await drain(d)
    assert [t.text for t in turns] == [f"msg {i}" for i in reversed(range(5))]
    assert [t.user for t in turns] == [f"u{i}" for i in reversed(range(5))]
    assert [t.id for t in turns] == [1, 2, 3, 4, 5]  # turn ids count up
    assert all(t.kind == "chat" for t in turns)
    assert [t.t_queued for t in turns] == [104.0, 103.0, 102.0, 101.0, 100.0]
    assert all(t.t_picked == 110.0 for t in turns)
    assert turns[2].source == chat("msg 2", 102.0, user="u2")


async def test_several_speech_turns_keep_their_order():
    d, _, _ = make()
    d.submit(speech("one", 99.0))
    d.submit(chat("c", 99.0))
    d.submit(speech("two", 99.5))
    assert [t.text for t in await drain(d)] == ["one", "two", "c"]


async def test_queue_full_evicts_oldest_chat_and_says_so():
    d, clock, emitted = make(queue_size=3)
    for i in range(3):
        d.submit(chat(f"msg {i}", 100.0, user=f"u{i}"))
    assert emitted == []
    d.submit(chat("msg 3", 100.0, user="u3"))
    assert emitted == [TurnDropped(kind="chat", user="u0", text="msg 0", reason="queue_full", t=100.0)]
    assert len(d) == 3
    d.submit(speech("hold on", 100.0))  # speech also evicts the oldest chat
    assert emitted[-1] == TurnDropped(kind="chat", user="u1", text="msg 1", reason="queue_full", t=100.0)
    assert d.counters["dropped_queue_full"] == 2
    assert [t.text for t in await drain(d)] == ["hold on", "msg 2", "msg 3"]


async def test_queue_full_of_speech_drops_the_new_input():
    d, _, emitted = make(queue_size=2)
    d.submit(speech("one", 99.0))
    d.submit(speech("two", 99.0))
    d.submit(chat("late chat", 100.0, user="zed"))
    d.submit(speech("three", 100.0))
    assert [(e.kind, e.user, e.text, e.reason) for e in emitted] == [
        ("chat", "zed", "late chat", "queue_full"),
        ("speech", "streamer", "three", "queue_full"),
    ]
    assert [t.text for t in await drain(d)] == ["one", "two"]


async def test_stale_chat_dropped_when_picked():
    d, clock, emitted = make(max_age_s=30.0)
    d.submit(chat("ancient", 100.0 - 45.0, user="old"))  # arrived 45 s ago
    d.submit(chat("just in time", 100.0 - 29.0))
    d.submit(chat("fresh", 100.0))
    turns = await drain(d)
    assert [t.text for t in turns] == ["fresh", "just in time"]
    assert emitted == [TurnDropped(kind="chat", user="old", text="ancient", reason="stale", t=100.0)]
    assert d.counters["dropped_stale"] == 1


async def test_chat_goes_stale_while_waiting_in_the_queue():
    d, clock, emitted = make(max_age_s=10.0)
    d.submit(chat("a", 100.0))
    d.submit(chat("b", 100.0))
    first = await d.next_turn()
    assert first.text == "a"
    clock.t = 115.0  # answering "a" took 15 s: "b" is too old now
    d.done()
    assert await drain(d) == []
    assert [(e.text, e.reason) for e in emitted] == [("b", "stale")]


async def test_speech_is_never_stale():
    d, clock, emitted = make(max_age_s=1.0)
    d.submit(speech("old speech", 50.0))
    turns = await drain(d)
    assert [t.text for t in turns] == ["old speech"]
    assert emitted == []


async def test_counters():
    d, clock, _ = make(queue_size=2, max_age_s=10.0)
    d.submit(chat("stale", 80.0))
    d.submit(speech("s", 100.0))
    d.submit(chat("evicts stale", 100.0))
    d.submit(chat("c2", 100.0))
    turns = await drain(d)
    assert [t.text for t in turns] == ["s", "c2"]
    assert dict(d.counters) == {
        "received_chat": 3,
        "received_speech": 1,
        "dropped_queue_full": 2,  # "stale" then "evicts stale" were evicted
        "picked": 2,
        "answered": 2,
    }


async def test_next_turn_waits_for_input():
    d, _, _ = make()
    waiter = asyncio.create_task(d.next_turn())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    d.submit(chat("hello", 100.0))
    turn = await asyncio.wait_for(waiter, 30.0)
    assert turn.text == "hello"


async def test_next_turn_returns_none_after_close_when_empty():
    d, _, _ = make()
    waiter = asyncio.create_task(d.next_turn())
    await asyncio.sleep(0.01)
    d.close()
    assert await asyncio.wait_for(waiter, 30.0) is None
    assert await d.next_turn() is None  # and keeps returning None


async def test_close_still_hands_out_queued_turns():
    d, _, _ = make()
    d.submit(chat("queued", 100.0))
    d.close()
    assert (await d.next_turn()).text == "queued"
    assert await d.next_turn() is None


async def test_busy_accounting_returns_to_idle():
    clock = ManualClock()
    d, _, _ = make(queue_size=2, max_age_s=10.0, clock=clock)
    assert not clock.busy
    d.submit(chat("a", 100.0))
    assert clock.busy  # queued work holds the clock
    d.submit(chat("b", 100.0))
    d.submit(chat("c evicts a", 100.0))
    d.submit(speech("s evicts b", 100.0))
    assert clock._busy == 1  # one for the whole queue while it can be worked on
    turn = await d.next_turn()
    assert clock.busy  # picked but not answered yet
    d.done()
    clock.t = 200.0  # "c evicts a" goes stale
    assert await drain(d) == []
    assert not clock.busy
    assert clock._busy == 0


async def test_fast_clock_idle_after_all_turns_answered():
    clock = FastClock()
    d, _, _ = make(clock=clock)
    d.submit(chat("hi", clock.now()))
    d.submit(speech("yo", clock.now()))
    assert clock.busy
    assert len(await drain(d)) == 2
    assert not clock.busy


@pytest.mark.parametrize("queue_size", [1, 4])
async def test_queue_never_exceeds_its_size(queue_size):
    d, _, emitted = make(queue_size=queue_size)
    for i in range(20):
        d.submit(chat(f"m{i}", 100.0))
        assert len(d) <= queue_size
    assert len(emitted) == 20 - queue_size
    assert [t.text for t in await drain(d)] == [f"m{i}" for i in range(20 - queue_size, 20)]


async def test_stale_with_the_real_clock():
    clock = Clock()
    clock.start()
    # max_age far above any scheduling delay: only the message from long ago can be stale.
    d, _, emitted = make(max_age_s=60.0, clock=clock)
    d.submit(chat("from long ago", clock.now() - 100.0, user="old"))
    d.submit(chat("now", clock.now()))
    turns = await drain(d)
    assert [t.text for t in turns] == ["now"]
    assert [(e.user, e.reason) for e in emitted] == [("old", "stale")]
    assert emitted[0].t >= 0.0
    assert not clock.busy


# --------------------------------------------------------------------------- triage


def rich_chat(text, t, user="viewer", bits=0, badges=()):
    return ChatMessage(user=user, text=text, t=t, bits=bits, badges=tuple(badges))


async def test_paid_and_mentioned_chat_first_then_the_newest():
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(), clock, [].append, persona_name="Miko")
    d.submit(rich_chat("nice run", 1.0, "a"))
    d.submit(rich_chat("Miko, hi", 2.0, "b"))
    d.submit(rich_chat("cheer100 gg", 3.0, "c", bits=100))
    d.submit(rich_chat("lol", 4.0, "d", badges=["subscriber/3"]))
    d.submit(rich_chat("another one", 5.0, "e"))
    d.close()
    order = [t.user for t in await drain(d)]
    assert order == ["c", "b", "d", "e", "a"]


async def test_persona_triage_weights_change_the_order():
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(), clock, [].append, persona_name="Miko", weights={"paid": 0.0, "question": 5.0})
    d.submit(rich_chat("cheer100", 1.0, "payer", bits=100))
    d.submit(rich_chat("how are you?", 2.0, "asker"))
    d.close()
    assert [t.user for t in await drain(d)] == ["asker", "payer"]


async def test_a_full_queue_evicts_the_lowest_scored_chat():
    clock = ManualClock(10.0)
    emitted = []
    d = Director(DirectorConfig(queue_size=2), clock, emitted.append, persona_name="Miko")
    d.submit(rich_chat("cheer", 1.0, "payer", bits=50))
    d.submit(rich_chat("meh", 2.0, "plain"))
    d.submit(rich_chat("Miko hello", 3.0, "fan"))
    assert [(e.user, e.reason) for e in emitted if isinstance(e, TurnDropped)] == [("plain", "queue_full")]
    d.close()
    assert [t.user for t in await drain(d)] == ["payer", "fan"]


async def test_a_full_queue_refuses_a_chat_that_matters_less_than_all_waiting():
    clock = ManualClock(10.0)
    emitted = []
    d = Director(DirectorConfig(queue_size=2), clock, emitted.append, persona_name="Miko")
    d.submit(rich_chat("cheer", 1.0, "payer1", bits=500))
    d.submit(rich_chat("cheer", 2.0, "payer2", bits=500))
    d.submit(rich_chat("lol", 3.0, "spam"))
    assert [(e.user, e.reason) for e in emitted if isinstance(e, TurnDropped)] == [("spam", "queue_full")]
    d.close()
    assert [t.user for t in await drain(d)] == ["payer1", "payer2"]


async def test_moderation_takes_back_queued_messages():
    from vtuber.events import Moderation

    d = Director(DirectorConfig(per_user_queued=3), ManualClock(), (emitted := []).append)
    d.submit(ChatMessage("troll", "buy followers", 99.0, id="m1", user_id="u1", source="twitch"))
    d.submit(ChatMessage("troll", "again", 99.1, id="m2", user_id="u1", source="twitch"))
    d.submit(ChatMessage("ann", "hi Miko", 99.2, id="m3", user_id="u2", source="twitch"))
    d.submit(ChatMessage("bo", "hello", 99.3, id="m4", user_id="u3", source="twitch"))
    assert d.moderate(Moderation("delete", 99.5, message_id="m4", source="twitch")) == 1
    assert d.moderate(Moderation("delete", 99.5, message_id="m4", source="twitch")) == 0  # already gone
    assert d.moderate(Moderation("ban", 99.6, user="TROLL-renamed", user_id="u1", source="twitch")) == 2
    assert d.moderate(Moderation("clear", 99.7, source="youtube")) == 0  # another platform's chat
    assert [t.text for t in await drain(d)] == ["hi Miko"]
    reasons = [e.reason for e in emitted if isinstance(e, TurnDropped)]
    assert reasons == ["moderated: delete", "moderated: ban", "moderated: ban"]


async def test_promoted_message_is_answered_next_and_listed_first():
    d, clock, _ = make()
    d.submit(chat("plain", 99.0))
    d.submit(chat("a question?", 99.1))
    d.submit(chat("also plain", 99.2))
    assert [r["id"] for r in d.queued()] == ["a question?", "also plain", "plain"]
    assert d.promote("also plain") and not d.promote("nope")
    assert d.queued()[0]["id"] == "also plain"
    assert [t.text for t in await drain(d)] == ["also plain", "a question?", "plain"]
