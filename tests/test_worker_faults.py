"""Model services that fail mid-stream (L1-L3): the LLM hangs, crashes or crawls; TTS raises,
returns silence or hangs; ASR hangs or crashes on one utterance. Each fault is scripted (the
soak's fault injectors around a scripted LLM and a tone voice), so it happens every time;
one test per service does it again on the real models."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from stream_helpers import chat, scripted_session
from vtuber.events import AudioChunk, ClausePlaying, ReplyFinished, ServiceState, TurnDropped, Utterance
from vtuber.soak import FaultyASR, FaultyLLM, FaultyTTS
from vtuber.sources import ChatScriptSource, WavReplaySource

REPLY = "Good evening chat, welcome back. It is nice to see you all here tonight."


def with_faulty_llm(replies, **cfg):
    session = scripted_session(replies, per_word=0.05)
    llm = FaultyLLM(session.engine.llm, hang_s=30.0)
    session.mind.backend = llm
    session.engine.llm = llm
    for k, v in cfg.items():
        setattr(session.mind, k, v)
    return session, llm


def record(session, *kinds):
    seen = []
    session.observers.append(lambda ev: isinstance(ev, kinds) and seen.append((time.monotonic(), ev)))
    return seen


# --- L1: the language model --------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["hang", "crash", "slow"])
async def test_a_failing_llm_ends_the_turn_in_time_and_the_next_message_is_answered(fault):
    session, llm = with_faulty_llm([REPLY], stall_s=1.0, turn_deadline_s=2.0, first_token_s=2.0)
    llm.faults.arm(fault)
    seen = record(session, ReplyFinished, ServiceState)
    t0 = time.monotonic()
    await asyncio.wait_for(session.run([ChatScriptSource([chat(0.1, "hello there!", user="ann"), chat(0.2, "how is the game going?", user="bo")])]), 40)
    finished = [ev for _, ev in seen if isinstance(ev, ReplyFinished)]
    assert len(finished) == 2, finished
    first, second = finished
    assert "model_failed" in first.flags and first.text  # what was said, or a short line
    assert seen[0][0] - t0 < 6.0  # the turn ended near its deadline, not at the end of a 30 s hang
    assert "model_failed" not in second.flags and second.text.startswith("Good evening")  # the next one is normal
    assert len(session.errors) == 1 and "turn 1" in session.errors[0]
    assert not [ev for _, ev in seen if isinstance(ev, ServiceState)]  # one failure is no fallback


@pytest.mark.timeout(90)
async def test_three_failures_in_a_row_fall_back_with_a_warning_and_the_model_is_tried_again():
    session, llm = with_faulty_llm([REPLY], stall_s=0.5, turn_deadline_s=2.0, first_token_s=1.0, retry_after_s=2.0)
    crashes = iter(range(3))
    real_stream = llm.stream

    def stream(messages, max_tokens):  # the first three replies crash, then it works again
        if next(crashes, None) is not None:
            llm.faults.arm("crash")
        return real_stream(messages, max_tokens)

    llm.stream = stream
    seen = record(session, ReplyFinished, ServiceState)
    asks = ("do you like cats?", "what game is this?", "how old is the stream?", "any plans for the weekend?", "favourite snack?")
    msgs = [chat(0.1 + 0.3 * i, text, user=f"v{i}") for i, text in enumerate(asks)]
    msgs.append(chat(6.0, "and the last question?", user="zed"))
    await asyncio.wait_for(session.run([ChatScriptSource(msgs)]), 60)
    states = [ev for _, ev in seen if isinstance(ev, ServiceState)]
    assert [s.state for s in states] == ["failing", "back"], states
    assert "3 replies in a row failed" in states[0].detail
    finished = [ev for _, ev in seen if isinstance(ev, ReplyFinished)]
    assert all("model_failed" in f.flags for f in finished[:3])
    assert "model_failed" not in finished[-1].flags  # the model was asked again and answered
    assert session.warnings == {}  # the warning went away when it came back
    assert any("llm failing" in e for e in session.errors)


# --- L2: TTS -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["raise", "silence", "hang"])
async def test_a_failing_tts_still_shows_the_text_and_speech_resumes(fault):
    session = scripted_session(["First reply, here it is.", "Second reply, all good."], per_word=0.1)
    tts = FaultyTTS(session.engine.tts, hang_s=1.0)
    session.voice.tts = tts
    session.voice.deadline_s = 0.3
    tts.faults.arm(fault)
    seen = record(session, AudioChunk, ClausePlaying, ReplyFinished)
    from vtuber.events import ReplyClause

    clauses = record(session, ReplyClause)
    # The second message comes once a hung TTS has returned (1 s): its reply is spoken again.
    await asyncio.wait_for(session.run([ChatScriptSource([chat(0.1, "hi!", user="ann"), chat(4.0, "and you?", user="bo")])]), 40)
    shown = [(t, ev) for t, ev in seen if isinstance(ev, ClausePlaying)]
    said = [(ev.turn_id, ev.index, ev.text) for _, ev in clauses]
    # Every clause the mind said was shown once, in order: nothing lost, nothing twice.
    assert [(ev.turn_id, ev.clause_index, ev.text) for _, ev in shown] == said
    chunks = {(ev.turn_id, ev.clause_index): ev for _, ev in seen if isinstance(ev, AudioChunk)}
    assert len(chunks) == len(said)
    first = chunks[(said[0][0], said[0][1])]
    assert not first.samples.any()  # the failed clause: silence as long as reading it, shown as captions
    ready = {(ev.turn_id, ev.index): t for t, ev in clauses}
    t_shown = next(t for t, ev in shown if (ev.turn_id, ev.clause_index) == (said[0][0], said[0][1]))
    assert t_shown - ready[(said[0][0], said[0][1])] < (0.5 if fault != "hang" else 0.3 + 0.5)
    assert chunks[(said[-1][0], said[-1][1])].samples.any()  # speech is back for the next reply
    assert any("TTS failed" in e for e in session.errors)


# --- L3: ASR -------------------------------------------------------------------------------


class ToneASR:
    """Hears a burst of tone as words (enough for the hearing stage's checks)."""

    def transcribe(self, audio):
        return "Miko, what do you think about that?"


class LoudVAD:
    """Speech wherever the signal is loud."""

    def reset(self):
        pass

    def __call__(self, frame):
        return 0.95 if np.sqrt(np.mean(np.square(frame))) > 0.05 else 0.02


def speech_timeline(bursts: list[float], seconds: float) -> np.ndarray:
    rate = 16000
    x = np.zeros(int(seconds * rate), np.float32)
    for start in bursts:
        t = np.arange(int(1.5 * rate)) / rate
        i = int(start * rate)
        x[i : i + len(t)] = 0.3 * np.sin(2 * np.pi * 220 * t)
    return x


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["hang", "crash"])
async def test_a_failing_asr_drops_that_utterance_with_a_reason_and_keeps_hearing(fault):
    session = scripted_session(["Sure thing, happy to help."], per_word=0.05)
    asr = FaultyASR(ToneASR(), hang_s=20.0)
    session.hearing.asr = asr
    session.hearing.vad = LoudVAD()
    session.hearing.asr_deadline_s = 1.0
    session.hearing.early_answer = False
    asr.faults.arm(fault)
    seen = record(session, Utterance, TurnDropped, ReplyFinished)
    audio = speech_timeline([0.5, 4.5], 8.0)
    t0 = time.monotonic()
    await asyncio.wait_for(session.run([WavReplaySource(audio), ChatScriptSource([chat(2.0, "hi Miko!", user="ann")])]), 40)
    dropped = [ev for _, ev in seen if isinstance(ev, TurnDropped) and ev.kind == "speech"]
    assert len(dropped) == 1 and dropped[0].reason.startswith("not heard: speech recognition"), dropped
    heard = [(t, ev) for t, ev in seen if isinstance(ev, Utterance)]
    assert len(heard) == 1 and heard[0][1].t_start > 4.0  # the next utterance was heard
    answered = [ev for _, ev in seen if isinstance(ev, ReplyFinished)]
    assert len(answered) == 2  # the chat message and the second utterance: the stuck ASR held neither
    assert session.hearing.counters["asr_failed"] == 1
    assert time.monotonic() - t0 < 20.0  # never waited out the 20 s hang
