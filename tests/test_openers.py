"""Openers: a reaction said the moment a reply starts, its audio made ahead (scripted LLM and
TTS here: the mechanism; `vtuber bench` measures what it wins, `vtuber quality` what it costs)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import numpy as np
import pytest

from vtuber.clock import Clock
from vtuber.config import VoiceConfig
from vtuber.errors import UserError
from vtuber.events import AudioChunk, FirstToken, ReplyClause, ReplyFinished, ReplyStarted, Turn
from vtuber.mind import Mind
from vtuber.mind.openers import Openers, after_opener, mood, strip_reaction
from vtuber.mind.persona import load_persona, persona_from_dict, persona_to_dict
from vtuber.safety import SAFE_LINE, OutputGate
from vtuber.voice import VoiceStage

from scripted_llm import ScriptedLLM


@pytest.mark.parametrize(
    "text, want",
    [
        ("Miko do you like tea?", "question"),
        ("what game is this", "question"),
        ("hi! first time here", "greeting"),
        ("안녕하세요 하나!", "greeting"),
        ("I had a rough day at work", "sad"),
        ("lol that was close", "other"),
        ("you're the best co-host", "other"),
    ],
)
def test_the_mood_of_a_message(text, want):
    assert mood(text) == want


def test_a_reaction_at_the_start_is_taken_off_after_an_opener():
    assert strip_reaction("Oh, I love tea!") == "I love tea!"
    assert strip_reaction("Oh!") == ""
    assert strip_reaction("Ohio is lovely") == "Ohio is lovely"
    assert after_opener("Hmm, let me think about that one.") == "let me think about that one."
    assert after_opener("The merch link is mikotea.shop.") == "the merch link is mikotea.shop."
    assert after_opener("Dana streams on Monday.") == "Dana streams on Monday."  # a name stays
    assert after_opener("I love tea.") == "I love tea."
    assert after_opener("Ooh!") == "Ooh!"  # nothing else to say: the line as it is


def test_openers_take_turns_within_a_mood_and_a_mood_without_any_gets_none():
    openers = Openers({"question": ("Hmm,", "Ooh,"), "other": ()})
    assert {openers.pick("why?"), openers.pick("how?")} == {"Hmm,", "Ooh,"}
    assert openers.pick("lol") == ""
    assert Openers.for_persona(None, "en").all() and Openers.for_persona(None, "ko").all()
    assert Openers.for_persona(None, "de").all() == []  # no built-in ones: none
    assert Openers.for_persona({}, "en").all() == []


def test_a_persona_names_her_own_openers_or_none():
    data = persona_to_dict(load_persona("miko"))
    mine = persona_from_dict({**data, "openers": {"question": ["Mm,"], "sad": ["Oh no,"]}}, "mine.yaml")
    assert mine.openers == {"question": ("Mm,",), "sad": ("Oh no,",)}
    assert persona_to_dict(mine)["openers"] == {"question": ["Mm,"], "sad": ["Oh no,"]}
    assert persona_from_dict({**data, "openers": {}}, "mine.yaml").openers == {}
    with pytest.raises(UserError, match="openers"):
        persona_from_dict({**data, "openers": {"angry": ["Grr,"]}}, "mine.yaml")
    with pytest.raises(UserError, match="openers.question"):
        persona_from_dict({**data, "openers": {"question": ["this line is far too long to be one"]}}, "mine.yaml")


async def _answer(reply, said="Miko do you like tea?", openers=True, persona=None, kind="chat", banned=()):
    persona = persona or load_persona("miko")
    events, sent = [], []
    llm = ScriptedLLM(reply if callable(reply) else [reply])
    gate = OutputGate(banned, persona_name=persona.name)

    async def send(ev):
        if isinstance(ev, ReplyClause) and not sent:
            # The opener goes out before the model has written anything.
            ev_first.append((ev.opener, llm.produced))
        sent.append(ev)

    ev_first: list = []
    mind = Mind(llm, persona, 4, VoiceConfig(), gate, Clock(), events.append, send, openers=openers)
    await mind.answer(Turn(1, kind, "alice", said, 0.0, 0.0, 0.0))
    mind.close()
    return mind, events, sent, llm, ev_first


async def test_the_opener_is_said_before_the_model_writes_and_the_model_is_not_told():
    mind, events, sent, llm, first = await _answer("Oh, I love tea, jasmine most of all!")
    clauses = [e for e in sent if isinstance(e, ReplyClause)]
    assert first == [(True, 0)]  # the opener, sent with no token written yet
    assert clauses[0].opener and clauses[0].index == 0 and clauses[0].text in ("Hmm,", "Ooh,")
    assert not any(c.opener for c in clauses[1:]) and [c.index for c in clauses] == list(range(len(clauses)))
    # Her own "Oh," after the opener is taken off: one reaction, not two.
    assert " ".join(c.text for c in clauses[1:]) == "I love tea, jasmine most of all!"
    assert all(m["role"] != "assistant" or "Hmm," not in m["content"] for m in llm.seen[0])
    fin = sent[-1]
    assert isinstance(fin, ReplyFinished) and fin.text == f"{clauses[0].text} I love tea, jasmine most of all!"
    # The history keeps her answer, not the opener.
    assert mind.prompts.history[-1].assistant == "I love tea, jasmine most of all!"
    assert isinstance(events[0], ReplyStarted) and any(isinstance(e, FirstToken) for e in events)


async def test_a_reply_that_is_only_a_reaction_after_the_opener_says_the_rest():
    _, _, sent, _, _ = await _answer(["Oh! ", "I ", "love ", "tea."])
    texts = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert texts[1:] == ["I love tea."]


async def test_after_an_opener_a_stock_line_and_the_safe_line_start_without_a_reaction_of_their_own():
    # The model only reads the message back, twice: a stock line, without its own "Hmm,".
    _, _, sent, _, _ = await _answer("Miko do you like tea?", said="Miko do you like tea?")
    texts = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert texts[0] in ("Hmm,", "Ooh,") and len(texts) == 2
    assert strip_reaction(texts[1]) == texts[1]  # no second reaction
    # A first clause the gate blocks: the safe line, after the opener, not spliced.
    _, _, sent, _, _ = await _answer("I think heck is fine.", said="what do you think?", banned=("heck",))
    texts = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert texts[1:] == [after_opener(SAFE_LINE)] and texts[1].casefold() == SAFE_LINE.casefold()


async def test_no_opener_for_a_fixed_line_or_when_turned_off():
    _, _, sent, _, _ = await _answer("I love tea.", openers=False)
    assert not any(e.opener for e in sent if isinstance(e, ReplyClause))
    _, _, sent, _, _ = await _answer("unused", said="Thanks for the raid!", kind="line")
    assert not any(e.opener for e in sent if isinstance(e, ReplyClause))
    persona = dataclasses.replace(load_persona("miko"), openers={})
    _, _, sent, _, _ = await _answer("I love tea.", persona=persona)
    assert not any(e.opener for e in sent if isinstance(e, ReplyClause))


class CountingTTS:
    sample_rate = 16000

    def __init__(self):
        self.said: list[str] = []
        self.threads: set[str] = set()

    def synthesize(self, text):
        self.said.append(text)
        return np.full(1600, 100, dtype=np.int16)


async def test_lines_rendered_ahead_play_without_synthesis_and_the_first_made_clause_has_priority():
    tts = CountingTTS()
    out = []
    stage = VoiceStage(tts, Clock(), out.append)
    stage.render_ahead(["Hmm,", "Aww,"])
    for fut in list(stage.ready.values()):
        await asyncio.wrap_future(fut)
    assert sorted(tts.said) == ["Aww,", "Hmm,"]
    paused = []
    real_speak = stage._speak

    async def speak(event):
        paused.append((event.text, not stage.first_audio_priority.is_set()))
        return await real_speak(event)

    stage._speak = speak
    task = asyncio.create_task(stage.run())
    await stage.put(ReplyClause(1, 0, "Hmm,", 0.0, opener=True))
    await stage.put(ReplyClause(1, 1, "I love tea,", 0.0))
    await stage.put(ReplyClause(1, 2, "jasmine most of all.", 0.0))
    await stage.put(ReplyFinished(1, "Hmm, I love tea, jasmine most of all.", 0.0))
    await stage.stop()
    await task
    chunks = [e for e in out if isinstance(e, AudioChunk)]
    assert [c.clause_index for c in chunks] == [0, 1, 2] and all(c.samples.any() for c in chunks)
    assert tts.said.count("Hmm,") == 1  # made once, ahead; played from there
    # The LLM pauses for the first clause that must be synthesized (the opener needs no synthesis).
    assert paused == [("I love tea,", True), ("jasmine most of all.", False)]
    # A persona switch forgets the lines no longer asked for.
    stage.render_ahead(["Oh,"])
    assert set(stage.ready) == {"Oh,"}
    stage.close()


async def test_the_opener_goes_out_before_the_facts_are_chosen_and_a_fixed_answer_follows_it():
    from vtuber.mind.facts import FactBook, StreamFacts

    sent: list = []

    class SlowEmbedder:
        """Sees how much was sent when the message is encoded (off the event loop)."""

        def __init__(self):
            self.sent_then: list[int] = []

        def encode(self, texts):
            self.sent_then.append(len(sent))
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))

    async def send(ev):
        sent.append(ev)

    emb = SlowEmbedder()
    book = FactBook([], embedder=emb)
    stream = StreamFacts("Sam", links={"merch": "mikotea.shop"})
    persona = dataclasses.replace(load_persona("miko"), facts=())  # the stream's one fact only
    gate = OutputGate((), persona_name=persona.name)
    mind = Mind(ScriptedLLM(["unused"]), persona, 0, VoiceConfig(), gate, Clock(), lambda e: None, send, facts=book, stream=stream, openers=True)
    emb.sent_then.clear()  # (the facts themselves were encoded when the book was made)
    await mind.answer(Turn(1, "chat", "alice", "where can I buy merch?", 0.0, 0.0, 0.0))
    mind.close()
    clauses = [e for e in sent if isinstance(e, ReplyClause)]
    assert emb.sent_then == [1] and clauses[0].opener  # the opener was out before the message was encoded
    assert [c.text for c in clauses[1:]] == ["the merch link is mikotea.shop."]  # said as written, after it
