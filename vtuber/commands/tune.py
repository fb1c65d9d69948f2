"""fine-tune the bundled model to a persona on this CPU (LoRA; needs the tune extra)

Train a LoRA adapter of the bundled SmolLM2-135M-Instruct on the persona (facts and lore as questions and answers in
several wordings, example exchanges, example lines for style) and optionally on past exchanges you kept, then write it
as a GGUF adapter llama.cpp loads and judge it before/after on wordings it never saw. Ctrl-C stops it safely; running
it again resumes. The persona then names it: model: {adapter: FILE}. Needs the tune extra (README, "Tune her model").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vtuber.commands import common


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    t = common.command_parser(sub, "tune", __doc__)
    t.add_argument("persona", metavar="PERSONA", help="persona name (see `vtuber persona list`) or a YAML file")
    t.add_argument("--kept", metavar="JSONL", help="past exchanges to learn too: one {\"text\": ..., \"reply\": ...} a line")
    t.add_argument("--out", metavar="GGUF", help="where the adapter goes (default: adapters/PERSONA.gguf in your data folder)")
    t.add_argument("--steps", type=int, default=0, metavar="N", help="training steps (default: 4 passes over the examples)")
    t.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (default: the config's threads.llm_batch)")
    t.add_argument("--no-judge", action="store_true", help="skip the before/after check on the held-out wordings")
    t.add_argument("--config", metavar="FILE", help="settings TOML file (persona folders, models.llm)")
    t.add_argument("--llm", metavar="GGUF", help="the base model to tune (default: the bundled SmolLM2-135M-Instruct)")
    t.set_defaults(func=cmd_tune)



def is_bundled(path) -> bool:
    """A file that ships inside the package (replaced on every upgrade)."""
    from vtuber.paths import bundled

    try:
        Path(path).resolve().relative_to(bundled("personas").resolve())
        return True
    except ValueError:
        return False


def cmd_tune(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vtuber.config import load_config
    from vtuber.errors import UserError
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.tune import default_out, tune
    from vtuber.tune.data import load_kept
    from vtuber.tune.train import Settings

    console = Console(highlight=False, stderr=False)
    cfg = load_config(args.config, {"models": {"llm": args.llm} if args.llm else {}})
    if cfg.models.llm.startswith(("http://", "https://")):
        raise UserError(f"models.llm: {cfg.models.llm} is a server; `vtuber tune` trains a local GGUF (the bundled one by default)")
    persona = load_persona(args.persona, cfg.persona_folders)
    base = resolve(cfg).llm
    if args.steps < 0 or args.threads < 0:
        raise UserError("--steps and --threads take a positive number")
    kept = load_kept(Path(args.kept).expanduser()) if args.kept else []
    out = Path(args.out).expanduser() if args.out else default_out(persona.name)
    settings = Settings(steps=args.steps, threads=args.threads or cfg.threads.llm_batch)
    console.print(f"tuning {escape(base.name)} to {escape(persona.name)} on {settings.threads} threads")
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("loading the model", total=None, loss="-")

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, description="training", completed=step, total=total, loss=f"{loss:.2f}")
            if not console.is_terminal and (step % 10 == 0 or step == total):  # a log file gets lines, not a bar
                console.print(f"step {step}/{total}, loss {loss:.2f}")

        result = tune(persona, base, out, settings, kept, judge_it=not args.no_judge, progress=progress,
                      say=lambda m: bar.console.print(escape(m)))
    console.print(
        f"adapter: {escape(str(result.adapter))} ({result.steps} steps on {result.examples} examples in "
        f"{result.seconds / 60:.1f} min; loss {result.first_loss:.2f} -> {result.last_loss:.2f})"
    )
    if result.before is not None:
        console.print(f"held-out wordings, before: {result.before.row()}")
        console.print(f"held-out wordings, after:  {result.after.row()}")
    adapter = escape(str(result.adapter))
    if persona.path and not is_bundled(persona.path):
        console.print(f"use it: add to {escape(persona.path)}:  model: {{adapter: {adapter}}}")
    else:  # a bundled persona: the package's file is not the streamer's to edit
        console.print(f'use it: add to your config (--config FILE):  [models] adapter = "{adapter}"')
    return 0
