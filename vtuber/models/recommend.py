"""`vtuber models recommend`: which size of model this machine can afford.

It measures what decides chat -> first audio here (the bundled model's prompt and decode
speed on this CPU with the configured threads, the free memory, the cores) and estimates
every catalogue LLM from it: on a CPU both prefill and decoding are bound by reading the
weights, so a model's speed falls about in proportion to its file size. A turn's first
audio needs the new part of the prompt evaluated (the persona prefix stays cached), the
first clause decoded, and Piper's first chunk; the biggest model whose estimate stays
under the budget (one second) and that fits in free memory is the recommendation.
These are estimates: `vtuber bench --llm NAME` measures the real thing once pulled.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from vtuber.models.catalogue import BUNDLED_LLM_BYTES, CATALOGUE, Entry

BUDGET_S = 1.0
TURN_PROMPT_TOKENS = 60  # the new tokens of a chat turn (message, facts) after the cached prefix
FIRST_CLAUSE_TOKENS = 10  # a short first clause ("Oh! That jump was so close,")
TTS_FIRST_CHUNK_S = 0.06  # Piper's first chunk on 2 cores (measured by `vtuber bench`)
OVERHEAD_S = 0.05  # director, queues, the event loop
PIPELINE_RAM_MB = 700  # Whisper, Piper, the program itself next to the LLM


@dataclass(frozen=True)
class Machine:
    """What was measured here."""

    decode_tps: float  # bundled model, tokens/s while decoding
    prefill_tps: float  # bundled model, prompt tokens/s
    free_ram_mb: int
    cores: int
    bundled_bytes: int = BUNDLED_LLM_BYTES


@dataclass(frozen=True)
class Estimate:
    entry: Entry
    decode_tps: float
    first_audio_s: float
    fits_ram: bool

    @property
    def fits(self) -> bool:
        return self.fits_ram and self.first_audio_s < BUDGET_S


def free_ram_mb() -> int:
    """Memory available to a new program (Linux: MemAvailable), in MB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1000
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1_000_000
    except (ValueError, OSError, AttributeError):
        return 0


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def measure(gguf: Path, threads: int, threads_batch: int, step=lambda msg: None) -> Machine:
    """Time the bundled model here: one ~200-token prompt, then 48 tokens decoded."""
    from llama_cpp import Llama

    step("loading the bundled model")
    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=threads, n_threads_batch=threads_batch, seed=1, verbose=False)
    try:
        prompt = llm.tokenize(("The stream tonight is cozy and the chat is friendly. " * 20).encode(), add_bos=True)[:200]
        llm.eval(prompt[:8])  # first touch of the weights is not what a warm turn pays
        llm.reset()
        step("timing the prompt")
        t0 = time.perf_counter()
        llm.eval(prompt)
        prefill_s = time.perf_counter() - t0
        step("timing decoding")
        n, t0 = 0, time.perf_counter()
        for _ in llm.generate([], temp=0.0, reset=False):
            n += 1
            if n >= 48:
                break
        decode_s = time.perf_counter() - t0
    finally:
        llm.close()
    return Machine(decode_tps=n / decode_s, prefill_tps=len(prompt) / prefill_s, free_ram_mb=free_ram_mb(),
                   cores=cores(), bundled_bytes=gguf.stat().st_size)


def estimate(machine: Machine, entry: Entry) -> Estimate:
    """The entry's speed and chat -> first audio here, scaled from the bundled model by size."""
    scale = max(entry.size, 1) / machine.bundled_bytes
    decode = machine.decode_tps / scale
    prefill = machine.prefill_tps / scale
    first = TURN_PROMPT_TOKENS / prefill + FIRST_CLAUSE_TOKENS / decode + TTS_FIRST_CHUNK_S + OVERHEAD_S
    return Estimate(entry, decode, first, entry.ram_mb + PIPELINE_RAM_MB <= machine.free_ram_mb)


def recommend(machine: Machine, catalogue: tuple[Entry, ...] = CATALOGUE) -> tuple[list[Estimate], Estimate | None]:
    """Every catalogue LLM's estimate (smallest first) and the largest one that fits (None: not
    even the smallest keeps the budget here: stay on the bundled model)."""
    rows = sorted((estimate(machine, e) for e in catalogue if e.kind == "llm"), key=lambda r: r.entry.size)
    fitting = [r for r in rows if r.fits]
    return rows, (fitting[-1] if fitting else None)
