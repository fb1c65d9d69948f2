"""`vtuber memory show|forget`: the viewer notes kept between streams."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError, quote


def cmd_memory(args: argparse.Namespace) -> int:
    """What the co-host remembers about viewers (the persistent file), and forgetting it."""
    from datetime import datetime

    from vtuber.config import load_config
    from vtuber.memory import ViewerMemory, default_path

    cfg = load_config(args.config)
    path = Path(cfg.memory.path) if cfg.memory.path else default_path()
    if not path.exists():
        common.console.print(f"no viewer memory at {escape(str(path))} (it is written only with memory.persist = true)")
        return 0
    memory = ViewerMemory(path)
    try:
        if args.action == "show":
            notes = memory.find(args.user)
            if not notes:
                raise UserError(f"no viewer named {quote(args.user, 40)} in {path}")
            for n in notes:
                day = lambda t: datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")  # noqa: E731
                common.console.print(
                    f"[bold]{escape(n.name)}[/] ({escape(n.source)}): {n.messages} messages, first seen {day(n.first_seen)}, "
                    f"last seen {day(n.last_seen)}; bits {n.bits}, paid {n.paid:g} {escape(n.currency)}, subs {n.subs}, "
                    f"gifts {n.gifts}"
                )
                for label, text in (("last", n.last_text), ("before", n.previous_text)):
                    if text:
                        common.console.print(f"  {label}: {escape(text)}")
        elif args.all:
            common.console.print(f"forgot {memory.forget_all()} viewers ({escape(str(path))})")
        elif args.user:
            n = memory.forget(args.user)
            if not n:
                raise UserError(f"no viewer named {quote(args.user, 40)} in {path}")
            common.console.print(f"forgot {escape(args.user)} ({n} notes)")
        else:
            raise UserError("vtuber memory forget: give a USER or --all")
    finally:
        memory.close()
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    mm = sub.add_parser(
        "memory",
        help="what the co-host remembers about viewers (with memory.persist), and forgetting it",
        description="Viewer notes kept between streams when memory.persist is on (docs/memory.md).",
    )
    msub = mm.add_subparsers(dest="action", required=True)
    ms = msub.add_parser("show", help="a viewer's note: messages, last messages, support")
    ms.add_argument("user", metavar="USER", help="display name or user id")
    ms.add_argument("--config", metavar="FILE", help="settings TOML file (memory.path)")
    mf = msub.add_parser("forget", help="forget a viewer, or everyone with --all")
    mf.add_argument("user", metavar="USER", nargs="?", help="display name or user id")
    mf.add_argument("--all", action="store_true", help="forget every viewer")
    mf.add_argument("--config", metavar="FILE", help="settings TOML file (memory.path)")
    mm.set_defaults(func=cmd_memory)
