"""The hearing stage on real speech: Silero VAD, endpointing, speculative and held transcripts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conftest import words
from vtuber.clock import FastClock
from vtuber.events import SpeechStarted, Utterance
from vtuber.hearing import Endpointer, Hearing
from vtuber.sources import WavReplaySource

RATE = 16000


class CountingASR:
    """The real Whisper model, counting its calls (to see speculation at work)."""

    def __init__(self, asr):
        self.asr = asr
        self.calls: list[float] = []

    def transcribe(self, audio):
        self.calls.append(len(audio) / RATE)
        return self.asr.transcribe(audio)


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
    return [e for e in events if isinstance(e, Utterance)], events, asr


def test_one_sentence_is_one_utterance_from_the_speculative_transcript(engine, speak16k):
    speech = speak16k("That jump was really close, what should I do now?")
    utts, events, asr = hear(engine, track(speech))
    assert len(utts) == 1, [u.text for u in utts]
    u = utts[0]
    assert {"jump", "close", "should"} <= set(words(u.text))
    assert any(isinstance(e, SpeechStarted) for e in events)
    # Onset and end within a few frames of where the speech really is.
    voiced = np.flatnonzero(np.abs(track(speech)) > 0.02)
    assert abs(u.t_start - voiced[0] / RATE) < 0.3
    assert abs(u.t_end - voiced[-1] / RATE) < 0.3
    # Decided at the hangover, transcript already there: the speculative ASR was used.
    assert u.endpoint_s == pytest.approx(0.448, abs=0.05)
    assert u.asr_s < 0.25
    # The transcript used covers the whole utterance (speculations at earlier pauses were dropped).
    assert asr.calls[-1] == pytest.approx(u.t_end - u.t_start + 0.2, abs=0.4)


def test_without_speculation_asr_starts_at_the_endpoint(engine, speak16k):
    speech = speak16k("That jump was really close, what should I do now?")
    utts, _, asr = hear(engine, track(speech), speculative_ms=0)
    assert len(utts) == 1 and len(asr.calls) == 1
    assert utts[0].asr_s > 0.05  # ASR time is no longer hidden in the hangover


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
