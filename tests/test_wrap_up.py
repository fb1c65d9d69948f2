"""A paid message or a mention arriving during a long reply: the reply ends after the
clause being heard and the urgent one is heard within seconds (scripted model and a
voice that speaks slowly, the fast clock)."""

from __future__ import annotations

import asyncio

import numpy as np
from scripted_llm import ScriptedLLM
from test_cancel import NoVAD

from vtuber.clock import FastClock
from vtuber.config import load_config
from vtuber.events import ChatMessage
from vtuber.mind.persona import load_persona
from vtuber.pipeline import Engine, Session
from vtuber.sources import ChatScriptSource

RATE = 16000
LONG = "Well, that is a lovely thing to say, and I could talk about tea and games, and cozy nights, and foxes for a long while."
SHORT = "Thank you so much, you are the best!"


class SlowTTS:
    """0.4 s of tone per word: a long reply plays for several seconds."""

    sample_rate = RATE

    def synthesize(self, text):
        n = int(0.4 * RATE) * max(len(text.split()), 1)
        return (np.sin(np.arange(n) * 0.1) * 8000).astype(np.int16)

    def warm(self):
        pass


def session(overrides=None):
    cfg = load_config(overrides={"plugins": {"enabled": []}, "llm": {"history_turns": 4}, "voice": {"openers": False}, **(overrides or {})})
    engine = Engine(cfg, load_persona("miko"), None, ScriptedLLM([LONG, SHORT]), None, SlowTTS(), NoVAD(), "CANARY-0000000000")
    return Session(engine, FastClock())


def run(s, script):
    asyncio.run(asyncio.wait_for(s.run([ChatScriptSource(script)]), 120))
    return s.recorder.finished()


SCRIPT = [ChatMessage("amy", "tell me about tea?", 0.5, id="q"), ChatMessage("rich", "cheer500 hi!", 3.0, bits=500, id="p")]


def test_a_paid_message_ends_the_long_reply_at_its_clause_and_is_heard_soon():
    s = session()
    first, paid = run(s, SCRIPT)
    assert paid.user == "rich"
    # The long reply (9+ s of speech) was heard only up to the end of a clause ...
    assert first.heard_text and LONG.startswith(first.heard_text.rstrip(" …")) and len(first.heard_text) < len(LONG)
    clauses = [c["text"] for c in sorted(first.clauses, key=lambda c: c["index"])]
    assert any(first.heard_text == " ".join(clauses[:k]) for k in range(1, len(clauses)))  # whole clauses
    assert not first.cut_short  # ended at a clause, not cut mid-word
    # ... so the payment is heard within seconds, not after the whole reply.
    full_end = first.play_start + len(LONG.split()) * 0.4
    assert paid.t_first_heard < full_end - 2.0
    assert s.director.counters["wrapped_up"] == 1 and s.director.balance()["adds_up"]
    # The history keeps what was heard of the long reply, not what was never said.
    history = s.mind.prompts.history
    assert history[0].assistant.endswith("…") and "foxes" not in history[0].assistant


def test_with_wrap_up_off_the_whole_reply_is_heard_first():
    s = session({"director": {"wrap_up_after_s": 0.0}})
    first, paid = run(s, SCRIPT)
    assert first.heard_text == LONG
    assert paid.t_first_heard >= first.play_end
    assert s.director.counters["wrapped_up"] == 0


def test_a_paid_messages_own_answer_is_never_wrapped_up():
    s = session()
    script = [ChatMessage("rich", "cheer500 tell me about tea?", 0.5, bits=500, id="p"), ChatMessage("fan", "Miko hi!", 3.0, id="m")]
    paid, mention = run(s, script)
    assert paid.heard_text == LONG and mention.user == "fan"
    assert s.director.counters["wrapped_up"] == 0


def test_her_answer_to_the_streamer_who_talked_over_a_mention_is_wrapped_up_for_it():
    # The streamer's line and a mention at once: the streamer is answered first (speech
    # before chat), so nothing plays when the mention comes and there is nothing to wrap up
    # on arrival. Once that long answer plays (more than wrap_up_after_s queued) while the
    # mention still waits, it ends at its clause. (Before, the mention waited for all of it:
    # 10 s here, and in the bench's live load 9 s.)
    from vtuber.events import Utterance

    s = session()
    said = Utterance("okay chat, what should we do about this boss?", 0.0, 0.4, 0.45, 0.5, 0.5)
    first, mention = run(s, [said, ChatMessage("fan", "Miko hi!", 0.5, id="m")])
    assert first.kind == "speech" and mention.user == "fan"
    assert first.heard_text and len(first.heard_text) < len(LONG) and not first.cut_short
    assert mention.t_first_heard - mention.t_input < 5.0
    assert s.director.counters["wrapped_up"] == 1 and s.director.balance()["adds_up"]


def test_a_reply_is_never_wrapped_up_to_its_opener_alone():
    # With openers on, her answer to the streamer starts with "Hmm," at once: the wrap-up
    # waits for the first clause of the answer itself, then ends the reply after it.
    from vtuber.events import Utterance

    s = session({"voice": {"openers": True}})
    said = Utterance("okay chat, what should we do about this boss?", 0.0, 0.4, 0.45, 0.5, 0.5)
    first, mention = run(s, [said, ChatMessage("fan", "Miko hi!", 0.5, id="m")])
    clauses = sorted(first.clauses, key=lambda c: c["index"])
    assert clauses[0]["text"] in s.mind.opener_lines()  # it did open with a reaction
    assert len(first.heard_text) > len(clauses[0]["text"]) and "lovely" in first.heard_text
    assert len(first.heard_text) < len(LONG) + len(clauses[0]["text"]) + 1  # still wrapped up
    assert mention.user == "fan" and s.director.counters["wrapped_up"] == 1
