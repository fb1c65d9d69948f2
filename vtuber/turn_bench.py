"""End of turn, measured: false cut-ins and how soon a finished turn is taken.

A set of recorded pauses made with the bundled Piper voice: finished sentences followed
by silence, and sentences broken by a mid-sentence pause (0.6-1.0 s, longer than the
endpoint's 448 ms) before the rest. Each clip goes through the real hearing (Silero VAD,
Whisper, and the turn detector where used) on the fast clock, in three ways:

- `silence`: the endpoint alone (hangover_ms of silence ends the turn);
- `punctuation`: today's default without a detector (a whole sentence by its transcript
  is answered at the short pause, an unfinished one waits continuation_ms);
- `smart_turn_alone`: the turn detector judges at the short pause (complete: at once;
  incomplete: wait up to turn_wait_ms);
- `smart_turn`: the same, with the punctuation as a second opinion where the detector
  is unsure (`hearing.turn_unsure`): the default.

A false cut-in is an utterance sent during a mid-sentence pause (the co-host would start
answering half a sentence); `commit` is speech end -> utterance sent, on finished sentences.

The clips run on a virtual clock that waits for each model call before the next frame
(as if ASR and the detector took no time), so the count of cut-ins and the waiting
each rule adds do not depend on how busy the machine is; the models' own time (Whisper
and the detector run side by side, each in its own thread) is measured apart and added
to `commit` as `commit_with_models`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

import time

from vtuber.audio import HEARING_RATE, resample
from vtuber.clock import Clock
from vtuber.events import AudioFrame, Utterance
from vtuber.hearing import Endpointer, Hearing
from vtuber.hearing.vad import FRAME

FINISHED = [
    "What game should we play next?",
    "Okay chat, that was a great run.",
    "Miko, say hello to everyone.",
    "Let's take a short break now.",
    "Miko, what do you think about this boss?",
    "That jump was way too hard.",
    "Thanks for the raid, everyone!",
    "Miko, tell them about the giveaway.",
    "I can't believe we finally won.",
    "Alright, time to check the map.",
]
PAUSED = [
    ("So I was thinking that maybe we", "could try the other path."),
    ("Okay chat, so the next boss is", "the fire dragon."),
    ("Miko, can you tell them about the", "new schedule?"),
    ("I really want to try", "the speedrun route today."),
    ("And then we go to the", "castle on the hill."),
    ("The best part about this game is", "the music."),
    ("If we beat this level we", "get a new sword."),
    ("Miko, what do you", "think of my hat?"),
    ("Let me check the", "map real quick."),
    ("Wait, I need to", "heal first."),
]
PAUSES_S = (0.6, 0.8, 1.0)
LEAD_S = 0.5  # silence before the speech
TAIL_S = 2.5  # silence after it: longer than any wait for more


@dataclass
class PauseClip:
    """One recorded turn: audio at 16 kHz; `resume` is when speech goes on after a
    mid-sentence pause (None for a finished sentence)."""

    text: str
    audio: np.ndarray
    speech_end: float
    resume: float | None = None


def make_pause_set(tts) -> list[PauseClip]:
    """The clips, spoken by `tts` (deterministic: the same audio every run)."""

    def say(text: str) -> np.ndarray:
        pcm = tts.synthesize(text)
        return resample(pcm.astype(np.float32) / 32768, tts.sample_rate, HEARING_RATE) * 0.8

    def quiet(s: float) -> np.ndarray:
        return np.zeros(int(s * HEARING_RATE), np.float32)

    clips = []
    for text in FINISHED:
        speech = say(text)
        clips.append(PauseClip(text, np.concatenate([quiet(LEAD_S), speech, quiet(TAIL_S)]), LEAD_S + len(speech) / HEARING_RATE))
    for i, (a, b) in enumerate(PAUSED):
        # The whole sentence, spoken once and opened at the word boundary: the first part keeps
        # the intonation of a sentence that goes on (said alone, Piper would end it as finished).
        whole, pause = say(f"{a} {b}"), PAUSES_S[i % len(PAUSES_S)]
        cut = word_gap(whole, len(say(a)) * len(whole) / (len(say(a)) + len(say(b))))
        first, rest = whole[:cut], whole[cut:]
        resume = LEAD_S + len(first) / HEARING_RATE + pause
        audio = np.concatenate([quiet(LEAD_S), first, quiet(pause), rest, quiet(TAIL_S)])
        clips.append(PauseClip(f"{a} ... {b}", audio, resume + len(rest) / HEARING_RATE, resume))
    return clips


def word_gap(audio: np.ndarray, near: float, search_s: float = 0.2) -> int:
    """The quietest 10 ms (a gap between words) within `search_s` of sample `near`."""
    win = HEARING_RATE // 100
    lo = max(win, int(near - search_s * HEARING_RATE))
    hi = min(len(audio) - win, int(near + search_s * HEARING_RATE))
    if hi <= lo:
        return int(near)
    energy = np.convolve(audio[lo - win // 2 : hi + win // 2] ** 2, np.ones(win), mode="valid")[: hi - lo]
    return lo + int(np.argmin(energy))


MODES = ("silence", "punctuation", "smart_turn_alone", "smart_turn")


def _hearing_kwargs(engine, mode: str) -> dict:
    h = engine.cfg.hearing
    kw = dict(speculative_ms=h.speculative_ms, onset_ms=h.barge_in_ms)
    if mode == "silence":
        return {**kw, "early_answer": False, "continuation_ms": 0}
    if mode == "punctuation":
        return {**kw, "early_answer": True, "continuation_ms": h.continuation_ms}
    unsure = 0.5 if mode == "smart_turn_alone" else h.turn_unsure
    return {
        **kw,
        "early_answer": True,
        "continuation_ms": h.continuation_ms,
        "turn": engine.turn,
        "turn_wait_ms": h.turn_wait_ms,
        "turn_unsure": unsure,
    }


class _FrameClock(Clock):
    """Session time is the end of the frame being heard (model calls take no time on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0

    def now(self) -> float:
        return self.t


async def _hear(engine, clip: PauseClip, mode: str) -> list[Utterance]:
    h = engine.cfg.hearing
    clock = _FrameClock()
    events: list[object] = []
    engine.vad.reset()
    hearing = Hearing(
        engine.vad,
        Endpointer(h.vad_threshold, h.hangover_ms, h.min_speech_ms, h.max_utterance_s),
        engine.asr,
        clock,
        events.append,
        **_hearing_kwargs(engine, mode),
    )
    try:
        for i in range(0, len(clip.audio) - FRAME + 1, FRAME):
            clock.t = (i + FRAME) / HEARING_RATE
            hearing.feed(AudioFrame(samples=clip.audio[i : i + FRAME], t=i / HEARING_RATE))
            await hearing.settle()  # every model call done before the next frame is heard
        await hearing.drain()
    finally:
        hearing.close()
    return [e for e in events if isinstance(e, Utterance)]


def model_times(engine, clips: list[PauseClip]) -> dict:
    """Seconds Whisper and the turn detector take on each finished sentence (p50/p95)."""
    asr, turn = [], []
    for clip in clips:
        if clip.resume is not None:
            continue
        audio = clip.audio[int(LEAD_S * HEARING_RATE) : int(clip.speech_end * HEARING_RATE)]
        t0 = time.perf_counter()
        engine.asr.transcribe(audio)
        asr.append(time.perf_counter() - t0)
        if engine.turn is not None:
            t0 = time.perf_counter()
            engine.turn.probability(audio)
            turn.append(time.perf_counter() - t0)
    return {"asr": _dist(asr), "turn": _dist(turn)}


def run_turn_bench(engine, clips: list[PauseClip], progress=lambda msg: None) -> dict:
    """False cut-ins (of the paused clips) and speech end -> sent (finished clips), per mode."""
    out: dict = {"clips": {"finished": sum(c.resume is None for c in clips), "paused": sum(c.resume is not None for c in clips)}}
    progress("end of turn: model times on the finished sentences")
    out["model_s"] = times = model_times(engine, clips)
    for mode in MODES:
        if mode.startswith("smart_turn") and engine.turn is None:
            continue
        progress(f"end of turn: {len(clips)} recorded turns, {mode}")
        cut_ins, commit, missed = [], [], 0
        for clip in clips:
            utts = asyncio.run(_hear(engine, clip, mode))
            if clip.resume is not None:
                if any(u.t < clip.resume for u in utts):
                    cut_ins.append(clip.text)
            elif utts:
                commit.append(utts[0].t - utts[0].t_end)
            else:
                missed += 1
        # the models run side by side at the short pause: the slower one is what is waited for
        models = times["asr"].get("p50", 0.0)
        if mode.startswith("smart_turn"):
            models = max(models, times["turn"].get("p50", 0.0))
        out[mode] = {
            "cut_ins": len(cut_ins),
            "cut_in_texts": cut_ins,
            "commit": _dist(commit),
            "commit_with_models_p50": (float(np.percentile(commit, 50)) + models) if commit else None,
            "missed": missed,
        }
    return out


def _dist(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {"n": len(values), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}
