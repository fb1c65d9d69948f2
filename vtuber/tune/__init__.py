"""`vtuber tune PERSONA`: make the bundled model hers, on the streamer's CPU.

A LoRA fine-tune of the bundled SmolLM2-135M-Instruct on training data made from the persona
(`vtuber.tune.data`), trained with transformers + peft (`vtuber.tune.train`, the optional
`tune` extra: nothing here is imported by the live co-host), written as a GGUF LoRA adapter
llama.cpp loads (`vtuber.tune.export`), and judged before/after on held-out wordings
(`vtuber.tune.judge`). The persona then names it: `model: {adapter: FILE}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from vtuber.errors import UserError


def adapters_dir() -> Path:
    """Where adapters go by default: the user's data folder (never the installed package)."""
    return platformdirs.user_data_path("vtuber", appauthor=False) / "adapters"


def default_out(persona_name: str) -> Path:
    slug = re.sub(r"[^a-z0-9_-]+", "-", persona_name.lower()).strip("-") or "persona"
    return adapters_dir() / f"{slug}.gguf"


@dataclass
class TuneResult:
    adapter: Path
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    examples: int
    held_out: int
    refused: int
    before: object = None  # judge.Verdict
    after: object = None
    model: object = None  # the trained model in torch (peft), for a caller that compares


def tune(persona, base: Path, out: Path, settings, kept: list[tuple[str, str]] = (), judge_it: bool = True,
         progress=None, say=print) -> TuneResult:
    """Train, export and check the adapter for `persona` on `base` (see the module's note)."""
    import shutil
    import time

    from vtuber.mind.adapter import check_adapter
    from vtuber.mind.prompt import system_prompt
    from vtuber.tune.data import build
    from vtuber.tune.export import write_adapter
    from vtuber.tune.train import Trainer, check_base, import_stack

    check_base(base)  # the user's mistakes first, each one line, before the heavy imports
    split = build(persona, list(kept))
    import_stack()
    system = system_prompt(persona)  # the live prompt: what she is judged with
    # Trained with the live prompt's first line only ("You are Miko. <description>"): with the
    # whole system prompt an example is about 300 tokens instead of about 90, and a step's work
    # grows with it (on a busy 2-core machine 10 steps did not finish in 15 minutes). The
    # adapter still has to answer under the whole prompt: the before/after check uses it.
    train_system = system.splitlines()[0] if not persona.system_prompt else f"You are {persona.name}. {persona.description}"
    say(f"{len(split.train)} examples to learn, {len(split.held_out)} wordings held out for judging"
        + (f", {split.refused} lines refused (the quality bench's probe set)" if split.refused else ""))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out.parent}: cannot create the adapter's folder ({e.strerror or e})") from None
    work = out.with_name(out.name + ".work")
    t0 = time.perf_counter()
    trainer = Trainer(base, train_system, split.train, work, settings, progress=progress, say=say)
    state = trainer.run()
    about = {"name": f"{persona.name} (vtuber tune)", "persona": persona.name, "steps": trainer.total_steps,
             "examples": len(split.train), "rank": settings.rank, "targets": ",".join(settings.targets)}
    write_adapter(out, state, settings.alpha, base, trainer.info, about)
    seconds = time.perf_counter() - t0
    check_adapter(out, base)
    shutil.rmtree(work, ignore_errors=True)
    losses = trainer.losses or [float("nan")]
    result = TuneResult(out, trainer.total_steps, losses[0], losses[-1], seconds, len(split.train),
                        len(split.held_out), split.refused, model=trainer.model)
    if judge_it:
        from vtuber.tune.judge import judge

        say("judging on the held-out wordings, before and after")
        result.before = judge(base, None, system, split.held_out, settings.threads)
        result.after = judge(base, out, system, split.held_out, settings.threads)
    return result
