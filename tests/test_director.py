"""Unit tests for the director: what gets answered, in which order, and what is dropped (and said so)."""

from __future__ import annotations

import asyncio

import pytest

from vtuber.clock import Clock, FastClock
from vtuber.config import DirectorConfig
from vtuber.director import Director
from collections import Counter

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


def make(queue_size: int = 16, max_age_s: float = 30.0, clock: Clock | None = None, busy_max_age_s: float = 0.0):
    """A director; by default without the busy-chat age limit (its own tests turn it on)."""
    clock = clock or ManualClock()
    emitted: list[object] = []
    cfg = DirectorConfig(queue_size=queue_size, max_age_s=max_age_s, busy_max_age_s=busy_max_age_s)
    return Director(cfg, clock, emitted.append), clock, emitted


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
    submitted = clock.now()
    d.submit(chat("now", clock.now()))
    turns = await drain(d)
    assert [t.text for t in turns] == ["now"]
    assert [(e.user, e.reason) for e in emitted] == [("old", "stale")]
    # Dropped when a turn was picked, on the session clock: not when it was sent 100 s ago.
    assert submitted <= emitted[0].t <= clock.now()
    assert not clock.busy


# --------------------------------------------------------------------------- triage


def rich_chat(text, t, user="viewer", bits=0, badges=()):
    return ChatMessage(user=user, text=text, t=t, bits=bits, badges=tuple(badges))


async def test_paid_and_mentioned_chat_first_then_the_newest():
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(busy_max_age_s=0.0), clock, [].append, persona_name="Miko")  # the order alone
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


# --------------------------------------------------------------------------- busy chat (issue: triage and pacing)


def paid(text, t, user, bits=0, amount=0.0, currency=""):
    return ChatMessage(user=user, text=text, t=t, bits=bits, amount=amount, currency=currency, id=f"{user}-{t}")


async def test_paid_messages_go_by_amount_on_one_scale_and_outlive_the_stale_limit():
    clock = ManualClock(100.0)
    emitted = []
    d = Director(DirectorConfig(max_age_s=30.0, paid_max_age_s=300.0), clock, emitted.append, persona_name="Miko")
    d.submit(paid("cheer100 hi", 10.0, "bits100", bits=100))  # $1, 90 s old
    d.submit(paid("superchat", 20.0, "eur5", amount=5.0, currency="EUR"))  # about $5.40
    d.submit(paid("superchat", 30.0, "jpy500", amount=500.0, currency="JPY"))  # about $3.35
    d.submit(paid("old", -250.0, "ancient", bits=1000))  # 350 s old: past even the paid limit
    d.submit(rich_chat("Miko, a question?", 99.0, "fan"))  # mention + question, but free
    assert [t.user for t in await drain(d)] == ["eur5", "jpy500", "bits100", "fan"]
    assert [(e.user, e.reason) for e in emitted if isinstance(e, TurnDropped)] == [("ancient", "stale")]


async def test_a_full_queue_never_drops_a_paid_message_for_free_chat():
    clock = ManualClock(10.0)
    emitted = []
    d = Director(DirectorConfig(queue_size=2), clock, emitted.append, persona_name="Miko")
    d.submit(paid("cheer1", 1.0, "small", bits=1))
    d.submit(paid("cheer2", 2.0, "small2", bits=2))
    d.submit(rich_chat("Miko, hello?", 3.0, "fan", badges=["subscriber/9", "vip"]))
    assert [(e.user, e.reason) for e in emitted] == [("fan", "queue_full")]


async def test_a_copy_paste_burst_is_answered_once_and_names_the_askers():
    clock = ManualClock(10.0)
    emitted = []
    d = Director(DirectorConfig(), clock, emitted.append, persona_name="Miko")
    d.submit(rich_chat("Miko what game is this?", 9.0, "ann"))
    for i, text in enumerate(["miko what game is this", "Miko what game is this??", "Miko, what game is this?"]):
        d.submit(rich_chat(text, 9.1 + i / 10, f"copy{i}"))
    d.submit(rich_chat("what is your favourite tea?", 9.5, "bo"))
    turn = await d.next_turn()
    d.done()
    assert turn.user == "ann" and turn.askers == ("copy0", "copy1", "copy2")
    # The same text again right after the answer is merged too (the burst keeps coming).
    clock.t = 20.0
    d.submit(rich_chat("MIKO WHAT GAME IS THIS", 19.0, "late"))
    assert [t.user for t in await drain(d)] == ["bo"]
    assert d.counters["merged"] == 4
    assert [e.reason for e in emitted if isinstance(e, TurnDropped)][-1] == "merged: ann's was just answered"
    assert d.balance()["adds_up"]


async def test_a_newer_message_replaces_the_same_viewers_waiting_one():
    d, clock, emitted = make()
    d.submit(chat("first try", 99.0, user="amy"))
    d.submit(chat("other viewer", 99.1, user="bo"))
    d.submit(chat("second try, typo fixed", 99.2, user="amy"))
    assert [t.text for t in await drain(d)] == ["second try, typo fixed", "other viewer"]
    assert [(e.text, e.reason) for e in emitted] == [("first try", "replaced")]


async def test_one_viewer_gets_at_most_the_cap_of_answers():
    clock = ManualClock(0.0)
    emitted = []
    d = Director(DirectorConfig(per_user_answers=3, per_user_window_s=300.0), clock, emitted.append, persona_name="Miko")
    answered = Counter()
    spam = ["look at me", "hey hey", "notice me pls", "hello???", "answer me", "i am here", "lol", "pog"]
    for i in range(30):  # a spammer every 5 s, and now and then another viewer
        clock.t = i * 5.0
        d.submit(ChatMessage("spammer", f"{spam[i % len(spam)]} {i}", clock.t, id=f"s{i}"))
        if i % 3 == 0:
            d.submit(ChatMessage(f"viewer{i}", f"hello from viewer {i}", clock.t, id=f"v{i}"))
        try:  # a turn if anything may be answered now (a capped message is dropped on pick)
            turn = await asyncio.wait_for(d.next_turn(), 0.05)
        except asyncio.TimeoutError:
            continue
        answered[turn.user] += 1
        d.done()
    assert answered["spammer"] == 3  # 150 s: one window
    assert d.counters["dropped_user_cap"] >= 20
    d.submit(ChatMessage("spammer", "Miko, please notice me", 150.0, id="mention"))  # mentions are not capped
    clock.t = 150.0
    assert (await d.next_turn()).text == "Miko, please notice me"


async def test_pacing_keeps_a_gap_and_a_rate_limit():
    clock = FastClock()
    d = Director(DirectorConfig(min_gap_s=2.0, max_replies_per_min=3, pick_ahead_s=0.5, max_age_s=120.0), clock, [].append)
    d.speaker_busy_until = lambda: 0.0
    picked = []

    async def run():
        while (turn := await d.next_turn()) is not None:
            picked.append(round(clock.now(), 1))
            d.done()

    clock.start()
    runner = asyncio.create_task(run())
    for i, text in enumerate(["hi there", "what game is it?", "lol", "love the music", "gg"]):
        d.submit(ChatMessage(f"u{i}", text, 0.0, id=str(i)))
    await asyncio.sleep(0.05)
    d.close()
    await asyncio.wait_for(runner, 5)
    # the speaker was free at 0, so chat waits 2.0 - 0.5 s; then 3 a minute at most
    assert picked[:3] == [1.5, 1.5, 1.5] and picked[3] >= 61.5 and len(picked) == 5, picked


async def test_thank_yous_waiting_together_become_one_line():
    from vtuber.events import Announcement, StreamEvent

    d, clock, _ = make()
    d.merge_lines = lambda lines: Announcement(
        "thanks " + ", ".join(a.user for a in lines) + " for the subs!", clock.t, "many", lines[0].origin
    )
    for user in ("ann", "bo", "cy"):
        d.submit(Announcement(f"thanks {user}!", 99.0, user, "thanks", event=StreamEvent("sub", user, 99.0)))
    d.submit(Announcement("welcome raiders!", 99.0, "big", "thanks", event=StreamEvent("raid", "big", 99.0, amount=9)))
    assert [t.text for t in await drain(d)] == ["thanks ann, bo, cy for the subs!", "welcome raiders!"]
    assert d.counters["batched"] == 2 and d.balance()["adds_up"]


async def test_a_10000_message_burst_keeps_the_queue_bounded_and_the_counters_add_up():
    import tracemalloc

    d = Director(DirectorConfig(queue_size=16), ManualClock(), lambda ev: None)
    tracemalloc.start()
    for i in range(10_000):
        d.submit(ChatMessage(f"user{i % 997}", f"message {i} " + "x" * (i % 40), 99.0 + i / 10_000, id=str(i)))
        if i == 1000:
            base = tracemalloc.get_traced_memory()[0]
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(d) <= 16
    assert grown < 2_000_000, grown  # flat: what is dropped is not kept
    turns = await drain(d)
    b = d.balance()
    assert b["adds_up"] and b["received"] == 10_000 and b["answered"] == len(turns) <= 16


def test_join_names():
    from vtuber.director import join_names

    assert [join_names(n) for n in (["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"])] == [
        "a",
        "a and b",
        "a, b and c",
        "a, b and 3 others",
    ]


# --- a busy chat: fresh answers, and urgent input cuts a long reply short -------------------


async def test_in_a_busy_chat_ordinary_chat_older_than_busy_max_age_is_passed_over():
    clock = ManualClock(20.0)
    emitted: list[object] = []
    d = Director(DirectorConfig(busy_max_age_s=5.0), clock, emitted.append, persona_name="Miko")
    d.submit(rich_chat("what game is this?", 10.0, "old-question"))  # 10 s old: a fresher one waits
    d.submit(rich_chat("Miko are you there", 11.0, "old-mention"))  # a mention: never passed over
    d.submit(rich_chat("hello", 18.0, "fresh"))
    d.submit(rich_chat("gg", 19.0, "freshest"))
    order = [t.user for t in await drain(d)]
    assert order == ["old-mention", "freshest", "fresh"]
    assert [(e.user, e.reason) for e in emitted if isinstance(e, TurnDropped)] == [("old-question", "passed over")]
    assert d.counters["dropped_passed over"] == 1 and d.balance()["adds_up"]


async def test_a_reply_that_starts_while_a_mention_waits_is_wrapped_up_too():
    # The streamer talked over a mention: their utterance is answered first (speech before
    # chat), and that reply, started after the mention came, ends at its clause for it.
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(wrap_up_after_s=2.0, min_gap_s=0.0), clock, [].append, persona_name="Miko")
    asked: list[str] = []
    busy = {"until": 10.0}  # nothing playing when the mention comes: nothing to wrap up then

    def wrap_up(why):
        asked.append(why)
        busy["until"] = clock.t  # the clause being heard was its last
        d.poke()
        return True

    d.wrap_up = wrap_up
    d.speaker_busy_until = lambda: busy["until"]
    d.submit(chat("Miko, are you there?", 10.0, "fan"))
    d.submit(speech("okay chat let me tell you about this boss", 10.0))
    assert asked == []
    first = await d.next_turn()
    assert first.kind == "speech"
    busy["until"] = 17.0  # her answer to the streamer: 7 s of audio queued
    d.done()
    second = await asyncio.wait_for(d.next_turn(), 5)
    assert asked == ["mention"] and second.user == "fan"
    assert d.counters["wrapped_up"] == 1


async def test_without_urgent_chat_a_long_reply_plays_whole():
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(wrap_up_after_s=2.0), clock, [].append, persona_name="Miko")
    asked: list[str] = []
    d.wrap_up = lambda why: asked.append(why) or True
    busy = {"until": 10.0}
    d.speaker_busy_until = lambda: busy["until"]
    d.submit(chat("nice run", 10.0, "plain"))
    d.submit(speech("okay chat let me tell you about this boss", 10.0))
    assert (await d.next_turn()).kind == "speech"
    busy["until"] = 17.0  # her answer to the streamer: 7 s of audio queued
    d.done()
    waiting = asyncio.ensure_future(d.next_turn())
    await asyncio.sleep(0.3)
    assert asked == [] and not waiting.done()  # it waits for the speaker, wrapping nothing up
    waiting.cancel()


async def test_the_last_message_waiting_is_answered_however_old_it_is():
    clock = ManualClock(20.0)
    d = Director(DirectorConfig(busy_max_age_s=5.0), clock, [].append)
    d.submit(rich_chat("anyone?", 10.0, "lonely"))
    assert [t.user for t in await drain(d)] == ["lonely"]  # not busy: nothing fresher to answer


async def test_a_paid_message_or_a_mention_during_a_long_reply_asks_to_wrap_up():
    clock = ManualClock(10.0)
    d = Director(DirectorConfig(wrap_up_after_s=2.0), clock, [].append, persona_name="Miko")
    asked: list[str] = []
    d.wrap_up = lambda why: asked.append(why) or True
    busy = {"until": 16.0}  # 6 s of reply still to play
    d.speaker_busy_until = lambda: busy["until"]
    d.submit(rich_chat("nice", 10.0, "plain"))
    d.submit(rich_chat("cheer100 hi", 10.0, "payer", bits=100))
    d.submit(rich_chat("Miko look!", 10.0, "fan"))
    busy["until"] = 11.5  # under 2 s left: it ends soon enough by itself
    d.submit(rich_chat("Miko again", 10.0, "fan2"))
    assert asked == ["paid", "mention"]
    assert d.counters["wrapped_up"] == 2 and d.balance()["wrapped_up"] == 2
