"""The mind stage alone, with a scripted LLM (unit: the real model is in test_models / test_rehearsal)."""

from __future__ import annotations

import dataclasses

from vtuber.clock import Clock
from vtuber.config import VoiceConfig
from vtuber.events import FirstToken, ReplyClause, ReplyFinished, ReplyStarted, Turn
from vtuber.mind import Mind
from vtuber.mind.persona import load_persona
from vtuber.safety import SAFE_LINE, OutputGate

from scripted_llm import ScriptedLLM


async def answer(pieces, persona=None, banned=(), delay=0.0, hold_after=None, said="hello", mind=None):
    persona = persona or load_persona("miko")
    events, sent = [], []

    async def send(ev):
        sent.append(ev)

    llm = ScriptedLLM(pieces if callable(pieces) else [pieces], delay=delay, hold_at=hold_after)
    mind = Mind(llm, persona, 0, VoiceConfig(), OutputGate(banned), Clock(), events.append, send)
    await mind.answer(Turn(1, "chat", "alice", said, 0.0, 0.0, 0.0))
    mind.close()
    return events, sent, llm


def tokens(text):
    out, word = [], ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    return out + ([word] if word else [])


async def test_clauses_stream_in_order_then_finished():
    persona = dataclasses.replace(load_persona("miko"), sentences=3)  # more than one breath
    events, sent, llm = await answer(tokens("Oh hi there, friend of mine! Tea is ready. Want some?"), persona=persona)
    assert isinstance(events[0], ReplyStarted) and isinstance(events[1], FirstToken)
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    # The first clause is cut early (at the comma) so speech starts sooner.
    assert clauses == ["Oh hi there,", "friend of mine!", "Tea is ready.", "Want some?"]
    assert [e.index for e in sent if isinstance(e, ReplyClause)] == [0, 1, 2, 3]
    assert isinstance(sent[-1], ReplyFinished) and sent[-1].text == " ".join(clauses)
    # The chat message is user content, never part of the system prompt.
    msgs = llm.seen[0]
    assert "hello" not in msgs[0]["content"] and msgs[-1] == {"role": "user", "content": "alice: hello"}


async def test_speaker_tag_and_self_address_are_not_spoken():
    _, sent, _ = await answer(tokens("Miko: Miko, so nice to see you here today."))
    assert sent[0].text == "so nice to see you here today."


async def test_reply_is_one_paragraph():
    _, sent, _ = await answer(["Sure thing, I love that game so much.", "\n", "alice: and", " then"])
    assert sent[-1].text == "Sure thing, I love that game so much."


async def test_max_chars_caps_the_reply_and_stops_the_llm():
    persona = dataclasses.replace(load_persona("miko"), max_tokens=512, reply_seconds=60.0, sentences=10)
    long = tokens("This is a sentence that goes on. " * 40)
    # After 100 tokens (far past max_chars) the scripted model waits for the cancel.
    _, sent, llm = await answer(long, persona=persona, hold_after=100)
    fin = sent[-1]
    assert len(fin.text) <= persona.max_chars
    assert fin.truncated
    assert llm.stopped == [True]  # generation was cancelled, not run to the end
    assert llm.produced <= 100 < len(long)


async def test_banned_word_clause_is_replaced_before_it_is_sent():
    _, sent, _ = await answer(tokens("What the heck was that thing? Nice jump though."), banned=("heck",))
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    # Nothing was said yet: the safe line is the whole reply, said once, nothing after it.
    assert clauses == [SAFE_LINE] and sent[-1].text == SAFE_LINE


async def test_empty_generation_falls_back_to_the_greeting():
    persona = load_persona("miko")
    _, sent, _ = await answer([], persona=persona)
    assert sent[0].text == persona.greeting


async def test_the_gate_checks_what_will_be_spoken_not_the_raw_clause():
    # "da(laughs)mn" would be spoken as "da mn": the gate must see that form.
    _, sent, _ = await answer(tokens("Well da(laughs)mn that was close, wow."), banned=("damn",))
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert SAFE_LINE in clauses
    assert not any("da" in c and "mn" in c for c in clauses)


async def test_a_failing_tts_clause_becomes_captions_and_the_reply_still_finishes():
    import asyncio

    from vtuber.events import AudioChunk
    from vtuber.voice import VoiceStage

    class FlakyTTS:
        sample_rate = 22050

        def synthesize(self, text):
            if "bad" in text:
                raise ValueError("embedded null character")
            import numpy as np

            return np.ones(100, dtype=np.int16)

    out, errors = [], []
    stage = VoiceStage(FlakyTTS(), Clock(), out.append, errors=errors)
    task = asyncio.create_task(stage.run())
    await stage.put(ReplyClause(1, 0, "good one", 0.0))
    await stage.put(ReplyClause(1, 1, "bad one", 0.0))
    await stage.put(ReplyFinished(1, "good one bad one", 0.0))
    await stage.stop()
    await task
    stage.close()
    from vtuber.events import ServiceState

    # The failed clause is silence as long as reading it takes: playback shows it as captions.
    assert [type(e) for e in out] == [AudioChunk, ServiceState, AudioChunk, ReplyFinished]
    assert out[2].clause_index == 1 and not out[2].samples.any() and out[2].duration >= 0.6
    assert len(errors) == 1 and "TTS failed" in errors[0]


async def test_the_llm_pauses_while_the_first_clause_is_synthesized():
    import asyncio

    import numpy as np

    from vtuber.voice import VoiceStage

    seen = {}

    class WatchingTTS:
        sample_rate = 22050

        def synthesize(self, text):
            seen[text] = stage.first_audio_priority.is_set()
            return np.ones(10, dtype=np.int16)

    stage = VoiceStage(WatchingTTS(), Clock(), [].append)
    task = asyncio.create_task(stage.run())
    await stage.put(ReplyClause(1, 0, "first", 0.0))
    await stage.put(ReplyClause(1, 1, "second", 0.0))
    await stage.stop()
    await task
    stage.close()
    assert seen == {"first": False, "second": True}  # LLM held only for the first clause
    assert stage.first_audio_priority.is_set()


# --------------------------------------------------------------------------- reply quality


async def test_a_reply_ends_at_the_sentence_past_its_seconds_of_speech():
    persona = dataclasses.replace(load_persona("miko"), reply_seconds=3.0, sentences=10)  # about 9 words
    long = tokens("Oh, tea is lovely. I drink it every single morning with honey. Also I like cake. And pie.")
    _, sent, llm = await answer(long, persona=persona, hold_after=13)  # then it waits for the cancel
    fin = sent[-1]
    assert fin.text == "Oh, tea is lovely. I drink it every single morning with honey."
    assert not fin.truncated and "cut" not in fin.flags
    assert llm.stopped == [True]  # the model was stopped, not left to run


async def test_an_echoing_first_clause_is_skipped_and_the_reply_goes_on():
    said = "Miko do you like tea?"
    _, sent, llm = await answer(tokens("Miko do you like tea? Oh, I love tea with honey!"), said=said)
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert " ".join(clauses) == "Oh, I love tea with honey!"  # no second generation needed
    assert len(llm.seen) == 1 and sent[-1].suppressed == "echo" and "echo" not in sent[-1].flags
    assert sent[-1].attempts == 1


async def test_a_reply_that_is_only_an_echo_is_made_again_with_a_nudge():
    said = "Miko do you like tea?"
    replies = iter([tokens("Miko do you like tea?"), tokens("Oh, I love tea with honey!")])
    _, sent, llm = await answer(lambda messages: next(replies), said=said)
    assert " ".join(e.text for e in sent if isinstance(e, ReplyClause)) == "Oh, I love tea with honey!"
    assert sent[-1].suppressed == "echo" and sent[-1].attempts == 2
    nudge = llm.seen[1][-2]
    assert nudge["role"] == "system" and "Do not repeat it" in nudge["content"]
    assert llm.seen[1][-1] == llm.seen[0][-1]  # the same message, answered again


async def test_a_second_echo_falls_back_to_a_short_in_persona_line():
    persona = dataclasses.replace(load_persona("miko"), fallback_lines=("Ha, good question!",))
    said = "can you say hi to my friend Pat?"
    _, sent, llm = await answer(tokens("Can you say hi to my friend Pat?"), persona=persona, said=said)
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    assert clauses == ["Ha, good question!"]
    assert len(llm.seen) == 2 and sent[-1].suppressed == "echo"


async def test_a_paid_message_whose_reply_cannot_be_said_gets_thanks_by_name():
    from vtuber.events import ChatMessage

    said = "cheer100 go Sam go, you can beat this boss!"
    sent = []

    async def send(ev):
        sent.append(ev)

    llm = ScriptedLLM([tokens("Cheer100 go Sam go, you can beat this boss!")])  # an echo, twice
    mind = Mind(llm, load_persona("miko"), 0, VoiceConfig(), OutputGate(()), Clock(), lambda e: None, send)
    msg = ChatMessage(user="carol", text=said, t=0.0, bits=100)
    await mind.answer(Turn(1, "chat", "carol", said, 0.0, 0.0, 0.0, msg))
    mind.close()
    assert [e.text for e in sent if isinstance(e, ReplyClause)] == ["Thank you so much for the bits, carol!"]
    assert len(llm.seen) == 2


async def test_a_first_clause_speaking_as_someone_else_is_not_spoken():
    replies = iter([tokens("alice: and me too, I love it."), tokens("Hey alice, welcome in!")])
    _, sent, llm = await answer(lambda messages: next(replies))
    assert [e.text for e in sent if isinstance(e, ReplyClause)] == ["Hey alice,", "welcome in!"]
    assert sent[-1].suppressed == "roleplay"
    assert "Speak only as Miko" in llm.seen[1][-2]["content"]


async def test_a_parroted_opening_is_caught_against_earlier_replies():
    persona = load_persona("miko")
    events, sent = [], []

    async def send(ev):
        sent.append(ev)

    replies = iter(
        [
            tokens("I'm so glad you're enjoying the game with us!"),
            tokens("I'm so glad you're enjoying the game with us! Yay."),
            tokens("Oh, the second level has a secret door."),
        ]
    )
    llm = ScriptedLLM(lambda messages: next(replies))
    mind = Mind(llm, persona, 0, VoiceConfig(), OutputGate(()), Clock(), events.append, send)
    await mind.answer(Turn(1, "chat", "alice", "this game is fun", 0.0, 0.0, 0.0))
    await mind.answer(Turn(2, "chat", "bo", "how do I beat the second level?", 0.0, 0.0, 0.0))
    mind.close()
    finished = [e for e in sent if isinstance(e, ReplyFinished)]
    assert finished[1].text == "Oh, the second level has a secret door."
    assert finished[1].suppressed == "parrot"


async def test_the_message_read_back_mid_reply_is_not_said():
    said = "what do you think about this boss?"
    _, sent, _ = await answer(tokens("Hey Sam. What do you think about this boss? It looks tough to me."), said=said)
    assert [e.text for e in sent if isinstance(e, ReplyClause)] == ["Hey Sam.", "It looks tough to me."]
