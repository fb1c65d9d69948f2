"""Faster turn-taking: a whole sentence at a short pause is answered at once; if the
streamer goes on, the early utterance is taken back and its turn dropped or cancelled
(unit: an energy VAD and a scripted recogniser, so the timing is the same everywhere)."""

from __future__ import annotations

import asyncio

import numpy as np

from vtuber.clock import FastClock
from vtuber.events import Utterance, UtteranceRetracted
from vtuber.hearing import Endpointer, Hearing
from vtuber.sources import WavReplaySource

RATE = 16000


class EnergyVAD:
    def __call__(self, frame):
        return 1.0 if np.sqrt(np.mean(frame**2)) > 0.01 else 0.0

    def reset(self):
        pass


class SentenceASR:
    """Answers at once: a whole sentence for any audio."""

    def __init__(self, text="Miko, what is the plan for tonight?"):
        self.text = text
        self.calls = 0

    def transcribe(self, audio):
        self.calls += 1
        return self.text


def tone(s):
    return (0.2 * np.sin(np.arange(int(s * RATE)) * 0.2)).astype(np.float32)


def silence(s):
    return np.zeros(int(s * RATE), np.float32)


def hear(audio, **kw):
    events = []

    async def run():
        clock = FastClock()
        hearing = Hearing(EnergyVAD(), Endpointer(), SentenceASR(), clock, events.append, **kw)
        clock.start()
        await WavReplaySource(audio).run(clock, lambda ev: hearing.feed(ev))
        await hearing.drain()
        hearing.close()

    asyncio.run(run())
    return events


def test_a_whole_sentence_is_sent_at_the_short_pause_not_at_the_endpoint():
    events = hear(np.concatenate([silence(0.5), tone(1.5), silence(1.5)]))
    utts = [e for e in events if isinstance(e, Utterance)]
    assert len(utts) == 1 and not [e for e in events if isinstance(e, UtteranceRetracted)]
    u = utts[0]
    # 128 ms of pause (4 frames) plus the frame that shows it, not the 448 ms hangover.
    assert u.t_endpoint - u.t_end < 0.25


def test_off_it_waits_for_the_endpoint():
    events = hear(np.concatenate([silence(0.5), tone(1.5), silence(1.5)]), early_answer=False)
    (u,) = [e for e in events if isinstance(e, Utterance)]
    assert u.t_endpoint - u.t_end >= 0.44


def test_when_the_streamer_goes_on_the_early_utterance_is_taken_back():
    events = hear(np.concatenate([silence(0.5), tone(1.0), silence(0.3), tone(1.0), silence(1.5)]))
    kinds = [type(e).__name__ for e in events if isinstance(e, (Utterance, UtteranceRetracted))]
    assert kinds == ["Utterance", "UtteranceRetracted", "Utterance"], kinds
    first, retracted, final = [e for e in events if isinstance(e, (Utterance, UtteranceRetracted))]
    assert retracted.utterance is first
    assert final.t_start == first.t_start and final.t_end > first.t_end + 1.0  # both parts, as one


async def test_a_retracted_utterance_is_dropped_from_the_queue_or_its_turn_cancelled():
    """Through a Session: the early turn is answered at once, then taken back silently."""

    from scripted_llm import ScriptedLLM
    from test_cancel import FakeTTS, NoVAD
    from vtuber.config import load_config
    from vtuber.mind.persona import load_persona
    from vtuber.pipeline import Engine, Session

    cfg = load_config(overrides={"plugins": {"enabled": []}})
    engine = Engine(cfg, load_persona("miko"), None, ScriptedLLM(["Sure, let us see. " * 5], hold_at=3, hold_calls={0}), None, FakeTTS(), NoVAD(), "CANARY-0")
    session = Session(engine, FastClock(), plugins=[])
    u = Utterance("Miko, what now?", 0.0, 1.0, 1.1, 1.2, 1.2)

    class Script:
        async def run(self, clock, emit):
            clock.add_source()
            try:
                await clock.sleep_until(1.2)
                emit(u)
                await clock.sleep_until(1.3)
                emit(UtteranceRetracted(u, clock.now()))
            finally:
                clock.source_done()

    await asyncio.wait_for(session.run([Script()]), 30)
    recs = session.recorder.finished()
    dropped = [(d.text, d.reason) for d in session.recorder.dropped]
    # Either it was still queued (dropped) or its turn was cancelled: never answered in full.
    assert dropped == [("Miko, what now?", "the streamer went on")] or (
        len(recs) == 1 and recs[0].cut_short and recs[0].cancel_reason == "the streamer went on"
    ), (dropped, [(r.input_text, r.cancel_reason) for r in recs])
    assert session.recorder.heard == []
    assert not session.clock.busy and session.turns.current is None
