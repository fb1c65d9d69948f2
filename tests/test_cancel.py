"""One cancellation mechanism, end to end through a real Session (unit: a scripted LLM
and a fake voice, so each case happens every time).

Cancel before the first token, mid-clause, while the voice queue is full, while the
speaker is draining: nothing leaks (director free, clock idle, no task left), the
report marks the turn cut short with what was heard, the history keeps the heard
part, and the next input is answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import numpy as np
import pytest

from vtuber.clock import FastClock
from vtuber.config import load_config
from vtuber.events import (
    AudioChunk,
    ChatMessage,
    Interrupt,
    PlaybackFinished,
    PlaybackStarted,
    ReplyClause,
    ReplyStarted,
    TurnCancelled,
)
from vtuber.mind.persona import load_persona
from vtuber.pipeline import Engine, Session
from vtuber.sources import ChatScriptSource

from scripted_llm import ScriptedLLM

RATE = 16000


class FakeTTS:
    """0.05 s of tone per word, after `delay` seconds of "synthesis"."""

    sample_rate = RATE

    def __init__(self, delay=0.0):
        self.delay = delay

    def synthesize(self, text):
        time.sleep(self.delay)
        n = int(0.05 * RATE) * max(len(text.split()), 1)
        return (np.sin(np.arange(n) * 0.1) * 8000).astype(np.int16)

    def warm(self):
        pass


class NoVAD:
    def reset(self):
        pass


def session_with(llm, tts, history_turns=2, long_replies=False):
    cfg = load_config(
        overrides={
            "llm": {"history_turns": history_turns},
            "director": {"max_age_s": 600.0, "busy_max_age_s": 0.0},
            "plugins": {"enabled": []},
            "voice": {"openers": False},  # what was heard is checked word for word
        }
    )
    persona = load_persona("miko")
    if long_replies:
        persona = dataclasses.replace(persona, max_chars=2000, max_tokens=512, reply_seconds=60.0, sentences=100)
    engine = Engine(cfg, persona, None, llm, None, tts, NoVAD(), "CANARY-0000000000")
    return Session(engine, FastClock(), plugins=[])


def chat(t, text, user="amy"):
    return ChatMessage(user=user, text=text, t=t)


async def run_with(session, messages, on_event):
    """Run the session on a chat script; `on_event(ev, session)` sees every event as it happens."""
    session.observers.append(lambda ev: on_event(ev, session))
    before = set(asyncio.all_tasks())
    await asyncio.wait_for(session.run([ChatScriptSource(messages)]), 60)
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    return left


def assert_nothing_leaked(session, left):
    assert left == [], left
    assert not session.clock.busy, session.clock._busy
    assert len(session.director) == 0
    assert session.turns.current is None
    assert session.playback.idle()


def interrupt_soon(session, reason="skip"):
    asyncio.get_running_loop().call_soon(session.emit, Interrupt(session.clock.now(), reason))


LONG = "Well, I think that is a great question, and honestly the answer depends on many things we could talk about all day long"


async def test_cancel_before_the_first_token_stops_the_llm_and_the_next_input_is_answered():
    llm = ScriptedLLM([LONG, "Yes I do."], hold_at=0, hold_calls={0})
    session = session_with(llm, FakeTTS())

    def on(ev, s):
        if isinstance(ev, ReplyStarted) and ev.turn.text == "first?":
            threading.Thread(target=lambda: (llm.holding.wait(5), s.controls.skip())).start()

    s = session
    s.controls.bind(asyncio.get_running_loop())
    left = await run_with(session, [chat(0.1, "first?"), chat(0.2, "second?", "bo")], on)
    assert_nothing_leaked(session, left)
    assert llm.stopped[0] is True  # the generation never produced a token
    recs = {r.input_text: r for r in session.recorder.finished()}
    assert recs["first?"].cut_short and recs["first?"].cancel_reason == "skip"
    assert recs["first?"].t_first_audio is None and recs["first?"].heard_text == ""
    assert recs["second?"].reply_text == "Yes I do." and not recs["second?"].cut_short
    assert session.director.counters["cut_short"] == 1 and session.director.counters["answered"] == 1
    assert session.director.balance()["adds_up"]


async def test_cancel_mid_clause_drops_the_rest_and_history_keeps_what_was_heard():
    llm = ScriptedLLM([LONG, "Sure thing."], hold_at=14, hold_calls={0})
    session = session_with(llm, FakeTTS())
    seen = {"cancelled": False}

    def on(ev, s):
        # Once the first clause is heard, the streamer cuts in.
        if isinstance(ev, PlaybackStarted) and not seen["cancelled"]:
            seen["cancelled"] = True
            interrupt_soon(s, "barge_in")

    left = await run_with(session, [chat(0.1, "tell me everything"), chat(0.2, "ok?", "bo")], on)
    assert_nothing_leaked(session, left)
    r = next(r for r in session.recorder.finished() if r.input_text == "tell me everything")
    assert r.cut_short and r.cancel_reason == "barge_in"
    assert r.heard_text and LONG.startswith(r.heard_text.rstrip(",. ")[:20])
    assert len(r.heard_text) < len(LONG) / 2
    assert llm.stopped[0] is True
    # The history keeps the heard part, marked unfinished, not the whole planned reply.
    history = [ex.assistant for ex in session.mind.prompts.history]
    assert any(h.endswith("…") and r.heard_text in h for h in history), history
    assert all("all day long" not in h for h in history)
    # What the audience heard: no audio after the cut in the reply timeline.
    audio = session.recorder.timeline()
    cut_at = int(r.play_end * session.recorder.sample_rate)
    next_start = min(x.play_start for x in session.recorder.finished() if x.input_text == "ok?")
    gap = audio[cut_at + 10 : int(next_start * session.recorder.sample_rate) - 10]
    assert not np.any(gap), "audio kept playing after the cut"


async def test_cancel_while_the_voice_queue_is_full_flushes_it():
    many = " ".join(f"Clause number {i}." for i in range(60))
    llm = ScriptedLLM([many, "Done."])
    session = session_with(llm, FakeTTS(delay=0.05), long_replies=True)
    state = {"full": False}

    def on(ev, s):
        if isinstance(ev, ReplyClause) and not state["full"] and s.voice.queue.full():
            state["full"] = True
            interrupt_soon(s, "skip")

    left = await run_with(session, [chat(0.1, "count for me"), chat(0.2, "and now?", "bo")], on)
    assert state["full"], "the voice queue never filled: the test did not test the case"
    assert_nothing_leaked(session, left)
    assert session.voice.queue.empty()
    r = next(r for r in session.recorder.finished() if r.input_text == "count for me")
    assert r.cut_short
    made = {c["index"] for c in r.clauses if "t_audio" in c}
    assert len(made) < 60  # the queued clauses were never synthesized
    assert any(x.input_text == "and now?" and not x.cut_short for x in session.recorder.finished())


async def test_cancel_while_the_speaker_drains_cuts_the_audio_already_made():
    llm = ScriptedLLM(["One two three four five six seven eight nine ten eleven twelve.", "Next."])
    session = session_with(llm, FakeTTS())
    state = {"done": False}

    def on(ev, s):
        # The whole reply is made (its compute is over); cut it while it plays.
        if isinstance(ev, PlaybackStarted) and not state["done"]:
            state["done"] = True
            s.clock.call_at(ev.t + 0.2, lambda: s.emit(Interrupt(s.clock.now(), "mute")))

    left = await run_with(session, [chat(0.1, "count"), chat(5.0, "again", "bo")], on)
    assert_nothing_leaked(session, left)
    r = next(r for r in session.recorder.finished() if r.input_text == "count")
    assert r.cut_short and r.cancel_reason == "mute"
    assert r.play_end - r.play_start == pytest.approx(0.2, abs=0.05)
    assert r.t_done is not None and r.reply_text.startswith("One two")  # made in full, heard in part
    finished = [e for e in session.recorder.dropped]
    assert finished == []


async def test_shutdown_stops_mid_reply_and_run_returns():
    llm = ScriptedLLM([LONG], hold_at=14, hold_calls={0})
    session = session_with(llm, FakeTTS())

    def on(ev, s):
        if isinstance(ev, PlaybackStarted):
            asyncio.get_running_loop().call_soon(s.stop, "SIGTERM")

    left = await run_with(session, [chat(0.1, "talk"), chat(0.1, "queued", "bo")], on)
    assert_nothing_leaked(session, left)
    assert session.stopped == "SIGTERM"
    r = session.recorder.finished()[0]
    assert r.cut_short and r.cancel_reason == "SIGTERM"
    assert [(d.text, d.reason) for d in session.recorder.dropped] == [("queued", "SIGTERM")]


async def test_every_cancel_emits_one_turn_cancelled_and_one_cut_playback():
    llm = ScriptedLLM([LONG, "fine"], hold_at=14, hold_calls={0})
    session = session_with(llm, FakeTTS())
    events = []

    def on(ev, s):
        if isinstance(ev, (TurnCancelled, PlaybackFinished, AudioChunk)):
            events.append(ev)
        if isinstance(ev, PlaybackStarted) and ev.turn_id == 1:
            interrupt_soon(s)
            interrupt_soon(s)  # a second cancel of the same turn changes nothing

    await run_with(session, [chat(0.1, "a"), chat(0.2, "b", "bo")], on)
    cancelled = [e for e in events if isinstance(e, TurnCancelled)]
    cut = [e for e in events if isinstance(e, PlaybackFinished) and e.cut_short]
    assert [e.turn_id for e in cancelled] == [1] and [e.turn_id for e in cut] == [1]
    assert not [e for e in events if isinstance(e, AudioChunk) and e.turn_id == 1 and e.t > cancelled[0].t]


async def test_a_moderated_message_is_never_answered_and_its_reply_in_flight_is_cut():
    """Moderation wins: a message deleted while being answered stops its reply at once, a
    banned user's waiting messages are dropped, and a reply still playing for a deleted
    message is silenced; the counters add up."""
    from vtuber.events import Moderation

    llm = ScriptedLLM([LONG, "Hi there, Bo!"], hold_at=3, hold_calls={0})
    session = session_with(llm, FakeTTS())
    msgs = [
        ChatMessage("troll", "say something awful", 0.1, id="m1", user_id="u1", source="twitch"),
        ChatMessage("troll", "and more of it", 0.2, id="m2", user_id="u1", source="twitch"),
        ChatMessage("bo", "hello Miko", 0.3, id="m3", user_id="u2", source="twitch"),
    ]
    session.cfg.director.per_user_queued = 3

    def on(ev, s):
        if isinstance(ev, ReplyStarted) and ev.turn.source.id == "m1":
            def moderate():
                s.emit(Moderation("delete", s.clock.now(), message_id="m1", source="twitch"))
                s.emit(Moderation("ban", s.clock.now(), user="troll", user_id="u1", source="twitch"))

            def when_queued():  # the model is held on m1 until the others wait in the queue
                llm.holding.wait(5)
                deadline = time.monotonic() + 5
                while len(s.director) < 2 and time.monotonic() < deadline:
                    time.sleep(0.005)
                s.controls._soon(moderate)

            threading.Thread(target=when_queued).start()

    session.controls.bind(asyncio.get_running_loop())
    left = await run_with(session, msgs, on)
    assert_nothing_leaked(session, left)
    recs = {r.input_text: r for r in session.recorder.finished()}
    assert recs["say something awful"].cut_short and recs["say something awful"].cancel_reason == "moderated: delete"
    assert "and more of it" not in recs
    assert recs["hello Miko"].reply_text == "Hi there, Bo!"
    dropped = [(d.text, d.reason) for d in session.recorder.dropped]
    assert ("and more of it", "moderated: ban") in dropped
    balance = session.director.balance()
    assert balance["adds_up"] and balance["received"] == 3 and balance["answered"] == 1 and balance["cut_short"] == 1
