"""The three real bundled models, each doing its job (integration)."""

from __future__ import annotations

import numpy as np

from conftest import words
from vtuber.events import Turn
from vtuber.mind.prompt import PromptBuilder


def test_piper_speaks_and_whisper_hears_it_back(engine, speak16k):
    sentence = "Welcome back to the stream, everyone. Today we play a cozy farming game."
    audio = speak16k(sentence)
    assert 2.0 < len(audio) / 16000 < 10.0
    assert np.abs(audio).max() > 0.1  # real speech, not silence
    heard = engine.asr.transcribe(audio)
    assert words(heard) == words(sentence), heard


def test_whisper_hears_the_persona_name(engine, speak16k):
    heard = engine.asr.transcribe(speak16k("Miko, what do you think about this boss?"))
    assert "Miko" in heard, heard
    assert {"think", "boss"} <= set(words(heard))


def test_whisper_on_silence_and_empty_input(engine):
    assert engine.asr.transcribe(np.zeros(0, dtype=np.float32)) == ""
    assert engine.asr.transcribe(np.zeros(800, dtype=np.float32)) == ""


def test_llm_streams_an_in_persona_reply_and_max_tokens_caps_it(engine):
    # What the model says is its own business; how much of it comes out is ours.
    builder = PromptBuilder(engine.persona, history_turns=0)
    turn = Turn(1, "chat", "alice", "hi Miko! tell me a long story about foxes", 0.0, 0.0, 0.0)
    messages = builder.messages(turn)
    assert messages[0]["role"] == "system" and "Miko" in messages[0]["content"]
    for max_tokens in (48, 4):
        pieces = list(engine.llm.stream(messages, max_tokens=max_tokens))
        assert pieces and all(isinstance(p, str) and p for p in pieces), pieces
        assert len(pieces) <= max_tokens  # a piece is at least one token


def test_llm_cancel_stops_the_stream(engine):
    builder = PromptBuilder(engine.persona, history_turns=0)
    messages = builder.messages(Turn(1, "chat", "bob", "tell me a long story about foxes", 0.0, 0.0, 0.0))
    got = []
    try:
        for piece in engine.llm.stream(messages, max_tokens=200):
            got.append(piece)
            engine.llm.cancel.set()  # after the first piece: nothing more may come
    finally:
        engine.llm.cancel.clear()  # as the mind does when a turn starts (the engine is shared)
    assert len(got) == 1
    # The next turn streams normally after a cancel.
    assert len(list(engine.llm.stream(messages, max_tokens=6))) >= 1


def test_tts_of_unspeakable_text_is_empty(engine):
    assert len(engine.tts.synthesize("*** ")) == 0
    assert len(engine.tts.synthesize("*waves* hello 😀 there")) > 0
