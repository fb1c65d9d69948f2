"""`vtuber models pull NAME`, `vtuber models recommend`, and what `vtuber models` adds to its
list: the catalogue (pulled or not) and the LLM servers found running on this machine."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vtuber.models.catalogue import TIERS, load_catalogue, pulled
from vtuber.models.pull import human_bytes


def cmd_pull(args: argparse.Namespace, console: Console) -> int:
    from vtuber.errors import UserError
    from vtuber.models.pull import pull

    if not args.name:
        raise UserError("vtuber models pull NAME: name a model (`vtuber models` lists the catalogue)")
    path = pull(args.name, args.catalogue, say=lambda m: console.print(escape(m)))
    from vtuber.models.catalogue import models_dir

    kind = "asr" if path.is_dir() else ("voice" if path.suffix == ".onnx" else "llm")
    name = path.relative_to(models_dir()).parts[0]
    console.print(f"use it: --{kind} {escape(name)}  (or models.{kind} = \"{escape(name)}\" in the config)")
    return 0


def cmd_recommend(args: argparse.Namespace, console: Console, cfg) -> int:
    from vtuber.models import bundled_llm
    from vtuber.models.recommend import BUDGET_S, measure, recommend

    with console.status("measuring this machine", spinner="dots") as status:
        machine = measure(bundled_llm(), cfg.threads.llm, cfg.threads.llm_batch, step=status.update)
    console.print(
        f"this machine: {machine.cores} cores, {machine.free_ram_mb} MB free; the bundled model decodes "
        f"{machine.decode_tps:.0f} tokens/s and reads prompts at {machine.prefill_tps:.0f} tokens/s "
        f"({cfg.threads.llm} threads)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > machine.cores:  # other programs had the CPU: the numbers are this busy moment's
        console.print(f"[yellow]the machine is busy (load {load:.1f} on {machine.cores} cores): "
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
    console.print(table)
    if best is None:
        console.print("recommended: stay on the bundled model (none of the catalogue keeps the budget here)")
    else:
        console.print(f"recommended: {best.entry.name} ({best.entry.tier}: {TIERS[best.entry.tier]}); "
                      f"`vtuber models pull {best.entry.name}`, then `--llm {best.entry.name}`")
    return 0


def print_available(console: Console, catalogue_file: str | None = None) -> None:
    """The catalogue with what is pulled, and the servers found on this machine's usual ports."""
    from vtuber.models.discover import discover

    table = Table(title="catalogue (`vtuber models pull NAME`)")
    for col in ("name", "kind", "size", "tier", "languages", "licence", "pulled"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for e in load_catalogue(catalogue_file):
        langs = ", ".join(e.languages[:6]) + ("..." if len(e.languages) > 6 else "")
        table.add_row(e.name, e.kind, human_bytes(e.size), e.tier or "-", langs, escape(e.licence),
                      "[green]yes[/]" if pulled(e) else "-")
    console.print(table)
    found = discover()
    if not found:
        console.print("[dim]no LLM server found on this machine's usual ports (Ollama, llama.cpp server, LM Studio, ...)[/]")
        return
    st = Table(title="LLM servers running on this machine (`--llm URL`)")
    for col in ("server", "url", "models"):
        st.add_column(col, overflow="fold")
    for s in found:
        st.add_row(escape(s.kind), escape(s.url), escape(", ".join(s.models) or "-"))
    console.print(st)
