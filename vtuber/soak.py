"""`vtuber soak`: a long rehearsal under load with faults injected, to prove she lasts a stream.

The real models answer a chat of `rate` messages a second (a pool of viewers, some
asking the same thing) and the streamer speaking every `speech_every_s` seconds (Piper
lines, heard by Whisper), on the real clock, with simulated playback. Every 20-40 s one
fault is injected at random into the model services, through the same calls the
session makes (`FaultyLLM`, `FaultyTTS`, `FaultyASR`):

- the LLM hangs mid-reply, crashes mid-reply, or streams one token a second;
- TTS raises, returns silence, or hangs;
- ASR hangs or crashes on one utterance.

Every 10 s it samples resident memory, threads, asyncio tasks and open file descriptors.
At the end it says whether memory stayed within `max_drift` (10%) of its level after
warm-up (the first fifth of the run, at least a minute when the run is long enough),
whether threads, tasks and file descriptors came back to where they were, and whether
every fault was recovered from (the same service worked normally afterwards); writes
`soak.json` and `soak.png` (the samples over time, the faults marked) and exits 1 if a
check failed. Not part of `make test` (it runs for minutes); `tests/test_soak.py` runs a
short one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vtuber.audio import HEARING_RATE, resample
from vtuber.clock import Clock
from vtuber.events import AudioChunk, AudioFrame, ChatMessage, ReplyFinished, Utterance

LLM_FAULTS = ("hang", "crash", "slow")
TTS_FAULTS = ("raise", "silence", "hang")
ASR_FAULTS = ("hang", "crash")
HANG_S = 20.0  # an injected hang lasts this long unless the caller gives up first (cancel)
FILES = ("soak.json", "soak.png")

TOPICS = (
    "cats", "the game", "pizza", "the weather", "music", "your day", "chess", "space", "tea", "books",
    "the boss fight", "snacks", "trains", "the new update", "drawing", "karaoke", "dogs", "ramen",
)
TEMPLATES = (
    "hi Miko! what do you think about {}?", "do you like {}?", "tell me something about {}",
    "Miko, {} or nothing?", "lol {} again", "what is your favourite thing about {}?",
)
STREAMER_LINES = (
    "Okay chat, let us try this level one more time.",
    "Miko, what snack should I get after this round?",
    "That boss was way harder than I expected.",
    "Thanks for hanging out with us tonight, everyone.",
)


class _Injected(RuntimeError):
    """A fault put there by the soak run (never raised otherwise)."""


class _Armed:
    """One fault waiting for the next call, then spent; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: str | None = None
        self.spent: list[tuple[float, str]] = []  # (monotonic time, fault) as they hit

    def arm(self, fault: str) -> None:
        with self._lock:
            self._next = fault

    def take(self) -> str | None:
        with self._lock:
            fault, self._next = self._next, None
        if fault is not None:
            self.spent.append((time.monotonic(), fault))
        return fault


class FaultyLLM:
    """A language model backend with faults on demand (see the module docstring)."""

    def __init__(self, inner, hang_s: float = HANG_S):
        self.inner = inner
        self.hang_s = hang_s
        self.faults = _Armed()

    def __getattr__(self, name):  # everything else is the real backend's (cancel, executor, ...)
        return getattr(self.inner, name)

    def stream(self, messages: list[dict], max_tokens: int):
        fault = self.faults.take()
        n = 0
        for piece in self.inner.stream(messages, max_tokens):
            if fault == "slow":
                if self.inner.cancel.wait(1.0):  # one token a second, until someone gives up
                    return
            yield piece
            n += 1
            if n == 2 and fault == "hang":
                self.inner.cancel.wait(self.hang_s)  # stuck mid-reply until cancelled
                return
            if n == 2 and fault == "crash":
                raise _Injected("the language model crashed (injected)")


class FaultyTTS:
    """A TTS with faults on demand: raises, returns silence, or hangs for a while."""

    def __init__(self, inner, hang_s: float = HANG_S):
        self.inner = inner
        self.hang_s = hang_s
        self.faults = _Armed()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def synthesize(self, text: str):
        fault = self.faults.take()
        if fault == "raise":
            raise _Injected("TTS failed (injected)")
        if fault == "silence":
            return np.zeros(len(self.inner.synthesize(text)), dtype=np.int16)
        if fault == "hang":
            time.sleep(self.hang_s)
        return self.inner.synthesize(text)


class FaultyASR:
    """A speech recognizer with faults on demand: hangs or crashes on one utterance."""

    def __init__(self, inner, hang_s: float = HANG_S):
        self.inner = inner
        self.hang_s = hang_s
        self.faults = _Armed()
        if getattr(inner, "hear", None) is None:
            self.hear = None  # a text-only recognizer stays text-only (the hearing stage asks)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _fault(self) -> None:
        fault = self.faults.take()
        if fault == "crash":
            raise _Injected("speech recognition crashed (injected)")
        if fault == "hang":
            time.sleep(self.hang_s)

    def hear(self, audio):
        self._fault()
        return self.inner.hear(audio)

    def transcribe(self, audio):
        self._fault()
        return self.inner.transcribe(audio)


# --- the load -----------------------------------------------------------------------------


class ChatLoad:
    """`rate` chat messages a second on the session clock, from a pool of viewers, until stopped."""

    def __init__(self, rate: float, seconds: float, rng: random.Random, viewers: int = 200):
        self.rate, self.seconds, self.rng, self.viewers = rate, seconds, rng, viewers
        self.sent = 0

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        clock.add_source()
        try:
            t = 0.5
            while t < self.seconds:
                await clock.sleep_until(t)
                user = f"viewer{self.rng.randrange(self.viewers)}"
                text = self.rng.choice(TEMPLATES).format(self.rng.choice(TOPICS))
                emit(ChatMessage(text=text, user=user, t=clock.now(), id=f"soak-{self.sent}"))
                self.sent += 1
                t += self.rng.expovariate(self.rate)
        finally:
            clock.source_done()


class SpeechLoad:
    """The streamer's voice every `every_s` seconds (Piper lines at 16 kHz), silence between,
    as 32 ms frames on the session clock, like a mic."""

    def __init__(self, lines: list[np.ndarray], every_s: float, seconds: float):
        self.lines, self.every_s, self.seconds = lines, every_s, seconds
        self.said = 0

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        clock.add_source()
        frame = 512
        silence = np.zeros(frame, dtype=np.float32)
        try:
            t = 0.0
            next_line = min(5.0, self.every_s)
            audio: np.ndarray | None = None
            pos = 0
            # Past the end, the line being said is finished and a second of silence follows
            # (an utterance cut off by the end would hold the director forever, as a stuck mic would).
            while t < self.seconds or audio is not None or t < self.seconds + 1.0:
                if audio is None and next_line <= t < self.seconds:
                    audio, pos = self.lines[self.said % len(self.lines)], 0
                    self.said += 1
                    next_line += self.every_s
                if audio is not None:
                    chunk = audio[pos : pos + frame]
                    if len(chunk) < frame:
                        chunk = np.pad(chunk, (0, frame - len(chunk)))
                    pos += frame
                    if pos >= len(audio):
                        audio = None
                else:
                    chunk = silence
                await clock.sleep_until(t + frame / HEARING_RATE)
                emit(AudioFrame(samples=chunk, t=t))
                t += frame / HEARING_RATE
        finally:
            clock.source_done()


# --- measuring ------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Sample:
    t: float
    rss_mb: float
    threads: int
    tasks: int
    fds: int


@dataclass
class Fault:
    t: float  # session time it was armed
    service: str
    kind: str
    hit_t: float | None = None  # when the call it broke began (None: the service was not called before the end)
    recovered_t: float | None = None  # when the same service next worked normally


@dataclass
class SoakResult:
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    received: int = 0
    answered: int = 0
    heard: int = 0
    errors: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    stuck: str = ""  # the session did not end by itself after the load: what it waited for
    latency: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


class _Observer:
    """Watches the session for proof that each service works normally again after a fault."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.ok_at: dict[str, float] = {}

    def __call__(self, ev: object) -> None:
        now = self.clock.now()
        if isinstance(ev, ReplyFinished) and "model_failed" not in ev.flags:
            self.ok_at["llm_reply"] = now
        elif isinstance(ev, AudioChunk) and len(ev.samples) and np.any(ev.samples):
            self.ok_at["tts"] = now
        elif isinstance(ev, Utterance):
            self.ok_at["asr"] = now


def run_soak(
    engine,
    minutes: float,
    *,
    rate: float = 2.0,
    speech_every_s: float = 30.0,
    fault_every_s: tuple[float, float] = (20.0, 40.0),
    sample_every_s: float = 10.0,
    seed: int = 7,
    hang_s: float = HANG_S,
    progress: Callable[[str], None] = lambda line: None,
) -> SoakResult:
    """Run the soak on a loaded `Engine` (its services wrapped for faults while it runs)."""
    from vtuber.pipeline import Engine, Session

    rng = random.Random(seed)
    seconds = minutes * 60.0
    llm, tts, asr = FaultyLLM(engine.llm, hang_s), FaultyTTS(engine.tts, hang_s), FaultyASR(engine.asr, hang_s)
    eng = Engine(engine.cfg, engine.persona, engine.paths, llm, asr, tts, engine.vad, engine.canary)
    lines = [
        resample(engine.tts.synthesize(text).astype(np.float32) / 32768.0, engine.tts.sample_rate, HEARING_RATE)
        for text in STREAMER_LINES
    ]
    result = SoakResult(minutes)

    async def main() -> None:
        clock = Clock()
        session = Session(eng, clock, plugins=[])
        watcher = _Observer(clock)
        session.observers.append(watcher)
        chat, speech = ChatLoad(rate, seconds, rng), SpeechLoad(lines, speech_every_s, seconds)
        runner = asyncio.create_task(session.run([chat, speech]))
        services = {"llm": (llm, LLM_FAULTS), "tts": (tts, TTS_FAULTS), "asr": (asr, ASR_FAULTS)}
        next_fault = rng.uniform(*fault_every_s)
        next_sample = 0.0
        next_progress = 60.0
        pending: list[Fault] = []
        while not runner.done():
            now = clock.now()
            if now >= next_sample:
                result.samples.append(
                    Sample(round(now, 1), round(_rss_mb(), 1), threading.active_count(), len(asyncio.all_tasks()), _fds())
                )
                next_sample += sample_every_s
            if now >= next_fault and now < seconds - 15.0:
                service = rng.choice(list(services))
                wrapper, kinds = services[service]
                fault = Fault(round(now, 1), service, rng.choice(kinds))
                wrapper.faults.arm(fault.kind)
                result.faults.append(fault)
                pending.append(fault)
                next_fault = now + rng.uniform(*fault_every_s)
            for fault in list(pending):
                wrapper = services[fault.service][0]
                if fault.hit_t is None and wrapper.faults.spent and wrapper.faults.spent[-1][1] == fault.kind:
                    fault.hit_t = round(now, 1)
                key = "llm_reply" if fault.service == "llm" else fault.service
                if fault.hit_t is not None and watcher.ok_at.get(key, -1.0) > fault.hit_t:
                    fault.recovered_t = round(watcher.ok_at[key], 1)
                    pending.remove(fault)
            if now >= next_progress:
                b = session.director.balance()
                progress(
                    f"{now / 60:.0f}/{minutes:g} min: received {b['received']}, answered {b['answered']}, "
                    f"faults {len(result.faults)} ({sum(f.recovered_t is not None for f in result.faults)} recovered), "
                    f"RSS {_rss_mb():.0f} MB, threads {threading.active_count()}, fds {_fds()}"
                )
                next_progress += 60.0
            if now > seconds + 60.0 and not session.stopped:
                # The load ended a minute ago and the session still has not: say what it waits
                # for (a failed check below), and stop it.
                result.stuck = (
                    f"still running {now - seconds:.0f} s after the load ended: current turn "
                    f"{session.turns.current.turn.id if session.turns.current else None}, playing {session.playback.playing()}, "
                    f"voice queue {session.voice.queue.qsize()}, hearing tasks {len(session.hearing._tasks)}, "
                    f"waiting {session.director.balance()['waiting']}"
                )
                progress(result.stuck)
                session.stop("soak over")
            await asyncio.sleep(0.25)
        await runner
        result.samples.append(
            Sample(round(clock.now(), 1), round(_rss_mb(), 1), threading.active_count(), len(asyncio.all_tasks()), _fds())
        )
        b = session.director.balance()
        result.received, result.answered = b["received"], b["answered"]
        result.heard = len(session.recorder.heard)
        ready = sorted(v for r in session.recorder.finished() if (v := r.stages()["input_to_first_audio"]) is not None)
        first = sorted(v for r in session.recorder.finished() if (v := r.stages()["llm_first_token"]) is not None)
        result.latency = {
            "chat_to_first_audio_p50_s": round(float(np.percentile(ready, 50)), 3) if ready else None,
            "chat_to_first_audio_p95_s": round(float(np.percentile(ready, 95)), 3) if ready else None,
            "llm_first_token_p50_s": round(float(np.percentile(first, 50)), 3) if first else None,
            "llm_first_token_max_s": round(first[-1], 3) if first else None,
        }
        result.errors = len(session.errors)
        session.recorder.track.close()

    asyncio.run(main())
    _judge(result, seconds)
    return result


def _judge(result: SoakResult, seconds: float, max_drift: float = 0.10) -> None:
    s = result.samples
    warm_until = min(max(60.0, seconds / 5), seconds / 2)
    after = [x for x in s if x.t >= warm_until] or s[-1:]
    base = after[0]
    end = s[-1]
    drift = (end.rss_mb - base.rss_mb) / base.rss_mb if base.rss_mb else 0.0
    result.figures = {
        "rss_after_warmup_mb": base.rss_mb,
        "rss_end_mb": end.rss_mb,
        "rss_max_mb": max(x.rss_mb for x in s),
        "rss_drift": round(drift, 4),
        "threads_start": base.threads,
        "threads_end": end.threads,
        "tasks_start": base.tasks,
        "tasks_end": end.tasks,
        "fds_start": base.fds,
        "fds_end": end.fds,
    }
    hit = [f for f in result.faults if f.hit_t is not None]
    result.checks = {
        f"RSS drift after warm-up < {max_drift:.0%}": drift < max_drift,
        # A hang injected near the end may still hold its thread: allow one per service.
        "threads flat": end.threads <= base.threads + 3,
        "asyncio tasks flat": end.tasks <= base.tasks + 3,
        "file descriptors flat": end.fds <= base.fds + 3,
        "every fault that hit was recovered from": all(f.recovered_t is not None for f in hit),
        "every message accounted for": result.received > 0,
        "the session ended by itself after the load": not result.stuck,
    }


def summary_lines(result: SoakResult) -> list[str]:
    f = result.figures
    hit = [x for x in result.faults if x.hit_t is not None]
    lines = [
        f"soak: {result.minutes:g} min, received {result.received}, answered {result.answered}, "
        f"streamer heard {result.heard} times, {result.errors} errors logged",
        f"memory: {f['rss_after_warmup_mb']:.0f} MB after warm-up -> {f['rss_end_mb']:.0f} MB at the end "
        f"({f['rss_drift']:+.1%}), peak {f['rss_max_mb']:.0f} MB",
        "latency: " + ", ".join(f"{k} {v}" for k, v in result.latency.items()),
        f"threads {f['threads_start']} -> {f['threads_end']}, asyncio tasks {f['tasks_start']} -> {f['tasks_end']}, "
        f"file descriptors {f['fds_start']} -> {f['fds_end']}",
        f"faults: {len(result.faults)} injected, {len(hit)} hit a call, "
        f"{sum(x.recovered_t is not None for x in hit)} recovered"
        + (
            f" (median {np.median([x.recovered_t - x.hit_t for x in hit if x.recovered_t is not None]):.1f} s to the next normal call)"
            if any(x.recovered_t is not None for x in hit)
            else ""
        ),
    ]
    by_kind: dict[str, list[Fault]] = {}
    for x in hit:
        by_kind.setdefault(f"{x.service} {x.kind}", []).append(x)
    if by_kind:
        lines.append("  " + ", ".join(f"{k}: {sum(x.recovered_t is not None for x in v)}/{len(v)}" for k, v in sorted(by_kind.items())))
    lines += [f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in result.checks.items()]
    return lines


def write(result: SoakResult, folder) -> dict[str, Path]:
    """soak.json and soak.png into an `OutFolder` (or a path)."""
    from vtuber.out_folder import OutFolder

    out = folder if isinstance(folder, OutFolder) else OutFolder(folder, FILES).claim()

    def files(stage: Path) -> None:
        data = {
            "minutes": result.minutes,
            "received": result.received,
            "answered": result.answered,
            "heard": result.heard,
            "errors": result.errors,
            "stuck": result.stuck,
            "latency": result.latency,
            "figures": result.figures,
            "checks": result.checks,
            "faults": [f.__dict__ for f in result.faults],
            "samples": [s.__dict__ for s in result.samples],
        }
        (stage / "soak.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        plot(result, stage / "soak.png")

    try:
        return out.publish(files)
    finally:
        if out is not folder:
            out.release()


def plot(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t / 60 for s in result.samples]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    axes[0].plot(t, [s.rss_mb for s in result.samples], color="tab:blue", label="RSS (MB)")
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(t, [s.threads for s in result.samples], label="threads")
    axes[1].plot(t, [s.tasks for s in result.samples], label="asyncio tasks")
    axes[1].plot(t, [s.fds for s in result.samples], label="file descriptors")
    axes[1].set_ylabel("count")
    axes[1].set_xlabel("session time (min)")
    colors = {"llm": "tab:red", "tts": "tab:orange", "asr": "tab:purple"}
    for f in result.faults:
        for ax in axes:
            ax.axvline(f.t / 60, color=colors.get(f.service, "gray"), alpha=0.3, lw=1)
    axes[0].set_title(
        f"vtuber soak, {result.minutes:g} min: faults marked (red LLM, orange TTS, purple ASR)", fontsize=10, loc="left"
    )
    axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
