"""`vtuber models [list|check]`: the models and servers in use and available."""

from __future__ import annotations

import argparse

from rich.markup import escape

from vtuber.commands import common


def cmd_models(args: argparse.Namespace) -> int:
    """`vtuber models [check]`: what the config uses and what is available; `check` runs each once."""
    from rich.table import Table

    from vtuber import model_check
    from vtuber.mind.persona import load_persona

    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    if args.action == "list":
        table = Table(title=f"models for {escape(persona.name)}")
        for col in ("part", "use", "model or server", "from", "size"):
            table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
        for r in model_check.inventory(cfg, persona):
            table.add_row(r.part, r.use, escape(r.what), r.source, model_check.human(r.size))
        common.console.print(table)
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


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    mdl = sub.add_parser(
        "models",
        help="list the models and servers in use and available (sizes); `check` runs each once",
        description=(
            "List the LLM, ASR and TTS the config uses (a file, a bundled model or a server), their local "
            "fallbacks and the bundled models, with sizes. `vtuber models check` loads or connects to each and runs "
            "one short generation, transcription and synthesis, timing the first token or audio (exit 1 if any fails)."
        ),
    )
    mdl.add_argument("action", nargs="?", choices=("list", "check"), default="list")
    common.add_common(mdl)
    mdl.set_defaults(func=cmd_models)
