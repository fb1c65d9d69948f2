"""`vtuber bench`: latency of the real pipeline against a naive one, on the bundled models.

The streaming run is a real-time session: N chat messages and N spoken turns (Piper
speech replayed in real time through the same VAD, endpointing and ASR as live mode),
spaced so turns do not overlap. The naive baseline answers the same inputs the way
most co-host projects do: wait for a plain VAD timeout, transcribe, generate the whole
reply without a cached prefix, synthesize all of it, then play. The plain baseline is
what a competent first streaming version does: llama-cpp-python streaming on both cores
with its prompt-prefix reuse, the first clause straight to Piper, nothing else. Both
answer the prompt the pipeline built for the turn (her facts, the history so far): the
same work, done three ways.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtuber.audio import HEARING_RATE, resample
from vtuber.clock import FastClock
from vtuber.events import RETRACTED, ChatMessage, Turn
from vtuber.mind.prompt import PromptBuilder
from vtuber.mind.quality import quality_counts
from vtuber.models import parts_report
from vtuber.outputs.recorder import TurnRecord
from vtuber.out_folder import OutFolder
from vtuber.pipeline import Engine, Session
from vtuber.rehearsal import summary
from vtuber.load_bench import load_result, plot_load, run_load
from vtuber.sources import WavReplaySource
from vtuber.turn_bench import make_pause_set, run_turn_bench
from vtuber.text import count_words

CHAT_LINES = [
    ("alice", "hi Miko! how are you today?"),
    ("bob", "what game is Sam playing?"),
    ("carol", "do you like tea or coffee?"),
    ("dave", "Miko what is your favourite snack?"),
    ("erin", "can you sing us a song?"),
    ("frank", "how long is the stream today?"),
    ("grace", "what is the best retro game ever?"),
    ("heidi", "say hi to my cat please"),
    ("ivan", "do foxes really like tea?"),
    ("judy", "any tips for this boss fight?"),
]
SPEECH_LINES = [
    "Miko, what do you think about this boss?",
    "Okay chat, one more try and then a break.",
    "Miko, tell everyone about the giveaway.",
    "That jump was so close, what should I do?",
    "Miko, do you remember the first game we played?",
    "Alright, let's check the map for a second.",
    "Miko, say hello to the new followers.",
    "I think we need a better sword for this.",
    "Miko, what should we name this horse?",
    "Time for a tea break, what are you drinking?",
]

# A plain VAD setup waits this long after speech before it transcribes (common defaults: 0.5 to 1 s).
NAIVE_HANGOVER_S = 0.7
# The plain baseline decodes on both cores of the target machine (the pipeline: one).
PLAIN_THREADS = 2


@dataclass
class BenchPlan:
    chat: list[ChatMessage]
    clips: list[np.ndarray]  # the streamer's lines, 16 kHz, as the pipeline hears them
    speech_texts: list[str]


def make_plan(engine: Engine, turns: int) -> BenchPlan:
    """N chat messages and N spoken lines, taken in turns (chat, speech, chat, ...)."""
    chat, clips = [], []
    for i in range(turns):
        user, text = CHAT_LINES[i % len(CHAT_LINES)]
        chat.append(ChatMessage(user=user, text=text, t=0.0, source="bench", id=f"bench-{i}"))
        pcm = engine.tts.synthesize(SPEECH_LINES[i % len(SPEECH_LINES)])
        clips.append(resample(pcm.astype(np.float32) / 32768, engine.tts.sample_rate, HEARING_RATE) * 0.8)
    return BenchPlan(chat, clips, [SPEECH_LINES[i % len(SPEECH_LINES)] for i in range(turns)])


class TurnTakingSource:
    """Each input comes once the co-host is quiet again (her last reply heard to the end,
    nothing queued or being made), after a short pause: every turn is measured alone,
    as a streamer hears it when nothing is ahead of it. On the fast clock the quiet time
    while a reply plays is skipped, so the bench takes compute time, not audio time."""

    PAUSE_S = 0.5

    def __init__(self, session: Session, plan: BenchPlan):
        self.session = session
        self.plan = plan

    async def run(self, clock, emit) -> None:
        clock.add_source()
        try:
            for msg, clip in zip(self.plan.chat, self.plan.clips):
                await self.session.wait_until_quiet(self.PAUSE_S)
                emit(dataclasses.replace(msg, t=clock.now()))
                await self.session.wait_until_quiet(self.PAUSE_S)
                await WavReplaySource(clip, start=clock.now()).run(clock, emit)
            await self.session.wait_until_quiet(self.PAUSE_S)
        finally:
            clock.source_done()


async def _streaming(engine: Engine, plan: BenchPlan) -> Session:
    session = Session(engine, FastClock())
    await session.run([TurnTakingSource(session, plan)])
    return session


def same_prompts(engine: Engine, session: Session, records: list[TurnRecord]) -> dict[int, list[dict]]:
    """The prompt the pipeline built for each turn (its facts, the history up to it), rebuilt
    in order: the baselines answer with what she knew, so they are compared on the same work."""
    mind = session.mind
    count = getattr(engine.llm, "count_tokens", None)
    builder = PromptBuilder(engine.persona, mind.history_turns, engine.canary, count, mind.context)
    prompts = {}
    for r in records:
        turn = Turn(r.id, r.kind, r.user, r.input_text, 0.0, 0.0, 0.0)
        picked = mind.facts.pick(r.input_text) if mind.facts is not None else []
        prompts[r.id] = builder.messages(turn, facts=[f.text for f, _ in picked])
        builder.remember(turn, r.reply_text)
    return prompts


def naive_turn(engine: Engine, messages: list[dict]) -> dict:
    """Whole reply (no cached prefix), then whole TTS: seconds until the first sample could play."""
    reset = getattr(engine.llm, "reset", None)
    if reset is not None:
        reset()
    t0 = time.perf_counter()
    text = engine.llm.call(lambda: "".join(engine.llm.stream(messages, engine.persona.max_tokens)))
    t1 = time.perf_counter()
    engine.tts.synthesize(text[: engine.persona.max_chars])
    t2 = time.perf_counter()
    return {"llm": t1 - t0, "tts": t2 - t1, "reply": t2 - t0}


def run_naive(engine: Engine, records: list[TurnRecord], plan: BenchPlan, prompts: dict[int, list[dict]]) -> dict[str, list[float]]:
    """The naive pipeline on the same turns (same prompts; for speech, the same recorded audio)."""
    out: dict[str, list[float]] = {"chat": [], "speech": []}
    clips = iter(plan.clips)
    for r in records:
        if r.kind == "chat":
            out["chat"].append(naive_turn(engine, prompts[r.id])["reply"])
        else:
            clip = next(clips, np.zeros(HEARING_RATE, np.float32))
            t0 = time.perf_counter()
            engine.asr.transcribe(clip)
            asr_s = time.perf_counter() - t0
            out["speech"].append(NAIVE_HANGOVER_S + asr_s + naive_turn(engine, prompts[r.id])["reply"])
    return out


def first_clause(text: str) -> str | None:
    """Text up to the first .,!?;: that follows two words (None while there is none yet)."""
    for m in re.finditer(r"[.,!?;:]", text):
        if count_words(text[: m.start()]) >= 2:
            return text[: m.end()]
    return None


def plain_turn(engine: Engine, messages: list[dict]) -> float:
    """Stream the reply, cut the first clause, one Piper call: seconds until its audio is ready."""
    p = engine.cfg.llm
    t0 = time.perf_counter()
    chunks = engine.llm.llm.create_chat_completion(
        messages=messages, stream=True, max_tokens=engine.persona.max_tokens,
        temperature=p.temperature, top_p=p.top_p, repeat_penalty=p.repeat_penalty, seed=p.seed,
    )
    text = ""
    for chunk in chunks:
        text += chunk["choices"][0]["delta"].get("content") or ""
        clause = first_clause(text)
        if clause:
            text = clause
            break
    chunks.close()
    engine.tts.synthesize(text)  # Piper returns the clause's audio whole: first audio is now
    return time.perf_counter() - t0


def run_plain(engine: Engine, records: list[TurnRecord], prompts: dict[int, list[dict]]) -> list[float]:
    """Plain clause streaming on the same chat turns and prompts (no director, gate or plugins),
    the LLM on PLAIN_THREADS threads for this run only. llama_cpp backend only (else no samples)."""
    if engine.llm.name != "llama_cpp":
        return []
    builder = PromptBuilder(engine.persona, 0, engine.canary)
    engine.llm.warm(builder.prefix())  # the persona prefix in the KV cache, as the pipeline has it
    with engine.llm.lock:
        engine.llm.call(engine.llm.set_threads, PLAIN_THREADS)
        try:
            # On the model's own thread, as the pipeline runs it (see vtuber.mind.llm).
            return [engine.llm.call(plain_turn, engine, prompts[r.id]) for r in records if r.kind == "chat"]
        finally:
            engine.llm.call(engine.llm.set_threads, engine.cfg.threads.llm)


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM), after
    handing freed heap back to the system so the window starts from what is really in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident memory since the last reset (or since start, where it cannot be reset)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(engine: Engine, turns: int, progress=lambda msg: None, load_s: float = 60.0, pauses: bool = True) -> dict:
    progress("synthesizing the streamer's lines")
    plan = make_plan(engine, turns)
    progress(f"streaming pipeline: {turns} chat + {turns} spoken turns, one at a time (speech replayed in real time)")
    # The pipeline's own peak with all three models loaded: not the synthesis of the
    # bench's input speech before it, nor the naive run's whole-reply TTS after it.
    reset_peak_rss()
    thought_before = len(getattr(engine.llm, "thinking", []))
    session = asyncio.run(_streaming(engine, plan))
    rss = peak_rss_mib()
    thinking = list(getattr(engine.llm, "thinking", []))[thought_before:]
    # A turn answered early and taken back (the streamer went on) is not an answer.
    records = [r for r in session.recorder.finished() if r.cancel_reason != RETRACTED]
    progress(f"plain clause streaming on the same chat inputs (LLM on {PLAIN_THREADS} threads)")
    prompts = same_prompts(engine, session, records)
    plain = run_plain(engine, records, prompts)
    progress("naive pipeline on the same inputs")
    naive = run_naive(engine, records, plan, prompts)
    load = None
    if load_s > 0:
        progress(f"live load: a chat message a second for {load_s:.0f} s while the streamer talks")
        load = load_result(asyncio.run(run_load(engine, load_s, SPEECH_LINES)), load_s)
    turn_taking = None
    if pauses:  # false cut-ins and speech end -> sent, with and without the turn detector
        turn_taking = run_turn_bench(engine, make_pause_set(engine.tts), progress)
    stats = summary(records)
    result = {
        "machine": machine(),
        "turns": turns,
        "config": {
            "threads": engine.cfg.threads.__dict__,
            "hangover_ms": engine.cfg.hearing.hangover_ms,
            "first_clause_words": engine.cfg.voice.first_clause_words,
            "plain_llm_threads": PLAIN_THREADS,
        },
        "streaming": stats,
        "naive": {k: _dist(v) for k, v in naive.items()},
        "naive_samples": naive,
        "plain": {"chat": _dist(plain)} if plain else {},
        "plain_samples": {"chat": plain},
        "gaps": sum(r.gaps for r in records),
        "gap_s": sum(r.gap_s for r in records),
        "peak_rss_mib": rss,
        "answered": {k: sum(1 for r in records if r.kind == k) for k in ("chat", "speech")},
        "dropped": [d.__dict__ for d in session.recorder.dropped],
        "heard": [u.text for u in session.recorder.heard],
        "records": [r.to_json() for r in records],
        "live_load": load,
        "turn_taking": turn_taking,
        "quality": quality_counts(records),  # echo, parrot, role play, cut...: reply checks over the bench turns
        # each part named (a file or a server, with its fallback counts), and the
        # reasoning models' thinking time apart (in the LLM time above, never spoken)
        "parts": parts_report(engine),
        "thinking": _dist(thinking),
    }
    for kind in ("chat", "speech"):
        s = stats.get(kind, {}).get("input_to_first_audio")
        n = result["naive"].get(kind)
        result[f"{kind}_speedup_p50"] = (n["p50"] / s["p50"]) if s and n and s["p50"] else None
    s, p = stats.get("chat", {}).get("input_to_first_audio"), result["plain"].get("chat")
    result["chat_speedup_vs_plain_p50"] = (p["p50"] / s["p50"]) if s and p and s["p50"] else None
    return result


def _dist(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {"n": len(values), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def machine() -> dict:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.system()}


def plot(result: dict, path: Path) -> None:
    """Distributions per stage (streaming) and the end-to-end latency against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = result["records"]
    stages = ["endpoint", "asr", "queue_wait", "llm_first_token", "first_clause", "tts_first_chunk"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    data, labels = [], []
    for s in stages:
        vals = [r["stages"][s] * 1000 for r in records if r["stages"].get(s) is not None]
        if vals:
            data.append(vals)
            labels.append(s.replace("_", " "))
    ax1.boxplot(data, showfliers=True)
    ax1.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=8)
    ax1.set_ylabel("ms")
    ax1.set_title("stage latencies (streaming pipeline)", fontsize=10)
    e2e, names = [], []
    for kind, label in (("chat", "chat"), ("speech", "speech end")):
        s = [r["stages"]["input_to_first_audio"] * 1000 for r in records if r["kind"] == kind]
        if not s:
            continue
        e2e.append(s)
        names.append(f"{label}\nstreaming")
        for base in ("plain", "naive"):
            if result.get(f"{base}_samples", {}).get(kind):
                e2e.append([v * 1000 for v in result[f"{base}_samples"][kind]])
                names.append(f"{label}\n{base}")
    ax2.boxplot(e2e, showfliers=True)
    ax2.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax2.set_ylabel("ms to first reply audio")
    ax2.set_title("input -> first audio", fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"vtuber bench: {result['machine']['cpu']} ({result['machine']['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FILES = ("bench.json", "bench.png", "bench_load.png")


def write(result: dict, out: OutFolder | Path) -> dict[str, Path]:
    """bench.json and bench.png, published together (see `vtuber.out_folder`)."""
    folder = out if isinstance(out, OutFolder) else OutFolder(out, FILES).claim()

    def files(stage: Path) -> None:
        (stage / "bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        plot(result, stage / "bench.png")
        if result.get("live_load"):
            plot_load(result["live_load"], stage / "bench_load.png")

    try:
        written = folder.publish(files)
    finally:
        if folder is not out:
            folder.release()
    return {"json": written["bench.json"], "plot": written["bench.png"]}


def parts_lines(result: dict) -> list[str]:
    """One line a part for the console: which model or server did the work."""
    lines = []
    for part, info in (result.get("parts") or {}).items():
        if "server" in info:  # a Wyoming server
            what = f"{info['server']} ({info['remote']} by the server, {info['local']} by the local fallback)"
        elif "turns_remote" in info:
            what = f"{info['llm']} ({info['turns_remote']} turns by the server, {info['turns_local']} by the local fallback)"
        else:
            what = next(iter(info.values()), "")
        lines.append(f"{part}: {what}")
    t = result.get("thinking") or {}
    if t:
        lines.append(f"thinking: p50 {t['p50'] * 1000:.0f} ms, max {t['max'] * 1000:.0f} ms over {t['n']} replies (never spoken)")
    return lines
