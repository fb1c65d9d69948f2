"""The hearing stage on real speech: Silero VAD, endpointing, speculative and held transcripts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conftest import words
from vtuber.clock import FastClock
from vtuber.events import SpeechStarted, Utterance, UtteranceRetracted
from vtuber.hearing import Endpointer, Hearing
from vtuber.sources import WavReplaySource

RATE = 16000


FRAME_S = 512 / RATE
HANGOVER_S = Endpointer().hangover * FRAME_S  # silence that ends an utterance (448 ms)


class CountingASR:
    """The real Whisper model, recording each call's audio length and transcript (to see speculation at work)."""

    def __init__(self, asr):
        self.asr = asr
        self.calls: list[float] = []
        self.results: list[str] = []

    def transcribe(self, audio):
        self.calls.append(len(audio) / RATE)
        text = self.asr.transcribe(audio)
        self.results.append(text)
        return text


def trailing_silence(call_s: float, u: Utterance) -> float:
    """How much audio a call had past the utterance's last voiced frame (pre-roll included)."""
    return call_s - (u.t_end - u.t_start)


def track(*parts):
    """parts: arrays of speech or floats (seconds of silence)."""
    out = [np.zeros(int(0.5 * RATE), np.float32)]
    for p in parts:
        out.append(np.zeros(int(p * RATE), np.float32) if isinstance(p, float) else p)
    out.append(np.zeros(int(0.3 * RATE), np.float32))
    return np.concatenate(out)


def hear(engine, audio, **kw):
    events = []
    asr = CountingASR(engine.asr)

    async def run():
        clock = FastClock()
        engine.vad.reset()
        hearing = Hearing(engine.vad, Endpointer(), asr, clock, events.append, **kw)
        clock.start()
        await WavReplaySource(audio).run(clock, lambda ev: hearing.feed(ev))
        await hearing.drain()
        hearing.close()

    asyncio.run(run())
    # An utterance sent early and taken back (the streamer went on) is not one they said.
    taken_back = {id(e.utterance) for e in events if isinstance(e, UtteranceRetracted)}
    return [e for e in events if isinstance(e, Utterance) and id(e) not in taken_back], events, asr


def test_one_sentence_is_one_utterance_from_the_speculative_transcript(engine, speak16k):
    speech = speak16k("That jump was really close, what should I do now?")
    # Early answers off: the speculative transcript waits for the endpoint (with them on,
    # a whole sentence goes out at the short pause: tests/test_early_answer.py).
    utts, events, asr = hear(engine, track(speech), early_answer=False)
    assert len(utts) == 1, [u.text for u in utts]
    u = utts[0]
    assert {"jump", "close", "should"} <= set(words(u.text))
    assert any(isinstance(e, SpeechStarted) for e in events)
    # Onset and end within a few frames of where the speech really is.
    voiced = np.flatnonzero(np.abs(track(speech)) > 0.02)
    assert abs(u.t_start - voiced[0] / RATE) < 0.3
    assert abs(u.t_end - voiced[-1] / RATE) < 0.3
    # Decided at the hangover (audio time: 14 frames of silence).
    assert u.endpoint_s == pytest.approx(HANGOVER_S, abs=FRAME_S)
    # The transcript used is the speculative one, taken at a short pause: Whisper never ran
    # on the endpointed audio (every call stopped well short of the hangover's silence),
    # and the last call, over the whole utterance, is the text that went out.
    assert all(trailing_silence(c, u) < HANGOVER_S for c in asr.calls), (asr.calls, u)
    assert u.text == asr.results[-1]
    assert trailing_silence(asr.calls[-1], u) > 0  # it covers the whole utterance


def test_without_speculation_asr_starts_at_the_endpoint(engine, speak16k):
    speech = speak16k("That jump was really close, what should I do now?")
    utts, _, asr = hear(engine, track(speech), speculative_ms=0)
    assert len(utts) == 1 and len(asr.calls) == 1
    # One call, on the endpointed audio (the whole hangover's silence in it) ...
    assert trailing_silence(asr.calls[0], utts[0]) >= HANGOVER_S
    assert utts[0].text == asr.results[0]
    # ... so its time is no longer hidden in the hangover: the transcript came after the endpoint.
    assert utts[0].t_asr_done > utts[0].t_endpoint


def test_a_pause_mid_sentence_is_heard_as_one_utterance(engine, speak16k):
    a = speak16k("Okay chat, so the plan is")
    b = speak16k("we go left and find the key.")
    utts, _, asr = hear(engine, track(a, 0.45, b))
    assert len(utts) == 1, [u.text for u in utts]
    got = set(words(utts[0].text))
    assert {"plan", "left", "key"} <= got
    assert len(asr.calls) >= 2  # the first part was transcribed, then heard again joined


def test_calling_the_name_alone_waits_for_the_rest(engine, speak16k):
    name = speak16k("Miko.")
    utts, _, _ = hear(engine, track(name, 2.0))
    # Held for continuation_ms, then sent as it is.
    assert [u.text.strip(" .!?") for u in utts] == ["Miko"]
    assert utts[0].t_endpoint - utts[0].t_end == pytest.approx(0.7, abs=0.05)


def test_silence_and_noise_give_no_utterance(engine):
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(3 * RATE) * 0.003).astype(np.float32)
    utts, events, asr = hear(engine, track(noise))
    assert utts == [] and asr.calls == []
