"""What the commands share: the console, the common model options, loading the engine, the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

console = Console(highlight=False)


def command_parser(sub, name: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of command `name` under `vtuber`, its words taken from the command module's docstring
    `doc`: the first paragraph is the one-line help in `vtuber --help`, the rest the description in
    `vtuber NAME --help` (none if there is no rest). Keeps each command's words in one place, read by
    both the user and the code's reader."""
    help_text, _, description = (doc or "").strip().partition("\n\n")
    return sub.add_parser(name, help=" ".join(help_text.split()), description=" ".join(description.split()) or None)


def add_common(p: argparse.ArgumentParser) -> None:
    """--config, --persona and the model paths, for every command that loads models."""
    p.add_argument("--config", metavar="FILE", help="settings TOML file (see docs/config.md)")
    p.add_argument("--persona", metavar="NAME|FILE", help="persona name (see `vtuber persona list`) or a YAML file (default: miko)")
    p.add_argument("--llm", metavar="GGUF", help="LLM model file, a pulled model by name (`vtuber models pull`) or a server URL (default: bundled SmolLM2-135M-Instruct Q4_1)")
    p.add_argument("--asr", metavar="DIR", help="faster-whisper model folder or a pulled one by name (default: bundled Whisper tiny.en)")
    p.add_argument("--voice", metavar="ONNX", help="Piper voice .onnx or a pulled one by name (default: bundled en_US-joe-medium)")


def config_from(args: argparse.Namespace):
    """The config file with the command line's persona and model paths on top."""
    from vtuber.config import load_config

    overrides: dict = {"models": {}}
    if getattr(args, "persona", None):
        overrides["persona"] = args.persona
    for key in ("llm", "asr", "voice"):
        if getattr(args, key, None):
            overrides["models"][key] = getattr(args, key)
    return load_config(getattr(args, "config", None), overrides)


def check_session_settings(cfg) -> None:
    """Unknown plugin names and an unreadable banned-words file fail before any model loads."""
    from vtuber.plugins import load_plugins
    from vtuber.safety.banned import default_banned_words

    folder = Path(cfg.plugins.folder) if cfg.plugins.folder else None
    load_plugins(cfg.plugins.enabled, folder)
    default_banned_words(cfg.safety.banned_words_file or None)


def load_engine(cfg, persona, quiet: bool):
    """Load and warm the models, showing each step (a spinner; lines too unless quiet)."""
    from vtuber.pipeline import Engine

    with console.status("loading models", spinner="dots") as status:
        def step(msg: str) -> None:
            status.update(msg)
            if not quiet:
                console.print(f"[dim]{msg}[/]")

        engine = Engine.load(cfg, persona, step)
        engine.warm(step)
    return engine


def print_summary(session, written) -> None:
    """The end-of-run latency table, counters, reply quality and the files written."""
    from rich.table import Table

    from vtuber.rehearsal import summary

    records = session.recorder.finished()
    table = Table(title="latency (ms)", show_edge=False)
    table.add_column("turns")
    table.add_column("stage")
    for c in ("n", "p50", "p95", "max"):
        table.add_column(c, justify="right")
    for kind, stages in summary(records).items():
        for stage, s in stages.items():
            if stage == "tokens_per_s":
                table.add_row(kind, "tokens/s", str(s["n"]), f"{s['p50']:.0f}", f"{s['p95']:.0f}", f"{s['max']:.0f}")
            else:
                table.add_row(kind, stage, str(s["n"]), *(f"{s[k] * 1000:.0f}" for k in ("p50", "p95", "max")))
    console.print(table)
    from vtuber.mind.quality import quality_counts

    b = session.balance()
    q = quality_counts(records)
    console.print(
        f"received {b['received']} | answered {b['answered']} | cut short {b['cut_short']} | merged {b['merged']} | "
        f"not answered {sum(b['dropped'].values()) + b['skipped']} | gaps {sum(r.gaps for r in records)} | "
        f"blocked before speech {len(session.all_blocked())}"
    )
    if q["replies"]:
        console.print(
            f"replies: echo {q['echo']}, parrot {q['parrot']}, role play {q['roleplay']}, cut {q['cut']}; "
            f"first clauses not spoken {q['suppressed_first_clauses']}; {q['words_mean']} words on average"
        )
    for name, path in sorted(written.items()):
        console.print(f"wrote {path}")
