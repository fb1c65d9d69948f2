"""models in use, the catalogue and servers found here; `check` runs each once; `pull NAME` downloads one; `recommend` says which size fits

List the LLM, ASR and TTS the config uses (a file, a bundled model or a server), their local fallbacks and the
bundled models, with sizes. `vtuber models check` loads or connects to each and runs one short generation,
transcription and synthesis, timing the first token or audio (exit 1 if any fails). `vtuber models pull NAME`
downloads a catalogue model (checked) into your data folder; `--llm NAME` then uses it. `vtuber models recommend`
measures this machine and says which size keeps chat -> first audio under a second.
"""

from __future__ import annotations

import argparse
import os

from rich.markup import escape
from rich.table import Table

from vtuber.models.catalogue import TIERS, load_catalogue, pulled
from vtuber.models.pull import human_bytes

from vtuber.commands import common


def cmd_models(args: argparse.Namespace) -> int:
    """`vtuber models [check]`: what the config uses and what is available; `check` runs each once."""
    from rich.table import Table

    from vtuber import model_check
    from vtuber.mind.persona import load_persona

    if args.action == "pull":
        return cmd_pull(args)
    cfg = common.config_from(args)
    if args.action == "recommend":
        return cmd_recommend(args, cfg)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    if args.action == "list":
        table = Table(title=f"models for {escape(persona.name)}")
        for col in ("part", "use", "model or server", "from", "size"):
            table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
        for r in model_check.inventory(cfg, persona):
            table.add_row(r.part, r.use, escape(r.what), r.source, model_check.human(r.size))
        common.console.print(table)
        print_available(args.catalogue)
        return 0
    with common.console.status("checking models", spinner="dots") as status:
        results = model_check.check(cfg, persona, step=lambda m: (status.update(m), common.console.print(f"[dim]{escape(m)}[/]")))
    table = Table(title="models check")
    for col in ("part", "model or server", "ok", "first token / audio", "output"):
        table.add_column(col, justify="right" if col.startswith("first") else "left", overflow="fold")
    for c in results:
        first = "-" if c.first_s is None else f"{c.first_s * 1000:.0f} ms"
        table.add_row(c.part, escape(c.what), "[green]yes[/]" if c.ok else "[red]no[/]", first, escape(c.sample))
    common.console.print(table)
    return 0 if all(c.ok for c in results) else 1


def cmd_pull(args: argparse.Namespace) -> int:
    from vtuber.errors import UserError
    from vtuber.models.pull import pull

    if not args.name:
        raise UserError("vtuber models pull NAME: name a model (`vtuber models` lists the catalogue)")
    path = pull(args.name, args.catalogue, say=lambda m: common.console.print(escape(m)))
    from vtuber.models.catalogue import models_dir

    kind = "asr" if path.is_dir() else ("voice" if path.suffix == ".onnx" else "llm")
    name = path.relative_to(models_dir()).parts[0]
    common.console.print(f"use it: --{kind} {escape(name)}  (or models.{kind} = \"{escape(name)}\" in the config)")
    return 0


def cmd_recommend(args: argparse.Namespace, cfg) -> int:
    from vtuber.models import bundled_llm
    from vtuber.models.recommend import BUDGET_S, measure, recommend

    with common.console.status("measuring this machine", spinner="dots") as status:
        machine = measure(bundled_llm(), cfg.threads.llm, cfg.threads.llm_batch, step=status.update)
    common.console.print(
        f"this machine: {machine.cores} cores, {machine.free_ram_mb} MB free; the bundled model decodes "
        f"{machine.decode_tps:.0f} tokens/s and reads prompts at {machine.prefill_tps:.0f} tokens/s "
        f"({cfg.threads.llm} threads)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > machine.cores:  # other programs had the CPU: the numbers are this busy moment's
        common.console.print(f"[yellow]the machine is busy (load {load:.1f} on {machine.cores} cores): "
                      "measure again when it is idle for a fair answer[/]")
    rows, best = recommend(machine, load_catalogue(args.catalogue))
    table = Table(title=f"which model keeps chat -> first audio under {BUDGET_S:.0f} s here (estimates)")
    for col in ("model", "tier", "size", "tokens/s", "first audio", "RAM", "fits"):
        table.add_column(col, justify="right" if col in ("size", "tokens/s", "first audio") else "left")
    for r in rows:
        table.add_row(
            r.entry.name, r.entry.tier, human_bytes(r.entry.size), f"{r.decode_tps:.0f}", f"{r.first_audio_s * 1000:.0f} ms",
            "ok" if r.fits_ram else f"[red]needs {r.entry.ram_mb} MB[/]", "[green]yes[/]" if r.fits else "[red]no[/]",
        )
    common.console.print(table)
    if best is None:
        common.console.print("recommended: stay on the bundled model (none of the catalogue keeps the budget here)")
    else:
        common.console.print(f"recommended: {best.entry.name} ({best.entry.tier}: {TIERS[best.entry.tier]}); "
                      f"`vtuber models pull {best.entry.name}`, then `--llm {best.entry.name}`")
    return 0


def print_available(catalogue_file: str | None = None) -> None:
    """The catalogue with what is pulled, and the servers found on this machine's usual ports."""
    from vtuber.models.discover import discover

    table = Table(title="catalogue (`vtuber models pull NAME`)")
    for col in ("name", "kind", "size", "tier", "languages", "licence", "pulled"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for e in load_catalogue(catalogue_file):
        langs = ", ".join(e.languages[:6]) + ("..." if len(e.languages) > 6 else "")
        table.add_row(e.name, e.kind, human_bytes(e.size), e.tier or "-", langs, escape(e.licence),
                      "[green]yes[/]" if pulled(e) else "-")
    common.console.print(table)
    found = discover()
    if not found:
        common.console.print("[dim]no LLM server found on this machine's usual ports (Ollama, llama.cpp server, LM Studio, ...)[/]")
        return
    st = Table(title="LLM servers running on this machine (`--llm URL`)")
    for col in ("server", "url", "models"):
        st.add_column(col, overflow="fold")
    for s in found:
        st.add_row(escape(s.kind), escape(s.url), escape(", ".join(s.models) or "-"))
    common.console.print(st)


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    mdl = common.command_parser(sub, "models", __doc__)
    mdl.add_argument("action", nargs="?", choices=("list", "check", "pull", "recommend"), default="list")
    mdl.add_argument("name", nargs="?", metavar="NAME", help="pull: a catalogue name (see the list) or owner/repo/file.gguf")
    mdl.add_argument("--catalogue", metavar="JSON", help="a catalogue file of your own (entries added to the bundled ones)")
    common.add_common(mdl)
    mdl.set_defaults(func=cmd_models)
