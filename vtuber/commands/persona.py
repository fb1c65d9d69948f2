"""`vtuber persona list|show|check|import`: the streamer's personas."""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError


def cmd_persona(args: argparse.Namespace) -> int:
    import yaml

    from vtuber.mind import persona as personas

    folders = common.config_from(args).persona_folders if getattr(args, "config", None) else []
    if args.action == "list":
        for name, (path, origin) in sorted(personas.find_personas(folders).items()):
            try:
                p = personas.load_persona(str(path))
                about = f"{escape(p.name)}: {escape(p.description[:70])}"
            except UserError as e:
                about = f"[red]broken[/]: {escape(str(e))}"
            common.console.print(f"[bold]{escape(name)}[/]  {about}  [dim]({origin}: {escape(str(path))})[/]")
        return 0
    if args.action == "show":
        p = personas.load_persona(args.target, folders)
        common.console.print(f"# {p.path}", markup=False)
        common.console.print(yaml.safe_dump(personas.persona_to_dict(p), sort_keys=False, allow_unicode=True), markup=False)
        return 0
    if args.action == "check":
        path, problems = personas.check_persona(args.target, folders)
        if not problems:
            problems = _context_problems(args, str(path))
        if problems:
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stderr)
            return 2
        common.console.print(f"{path}: ok", markup=False)
        return 0
    from vtuber.mind.cards import import_card

    persona, out = import_card(args.target, args.out, args.streamer, args.force)
    print(f"wrote {out} (persona {persona.name}; use it with --persona {out})")
    return 0


def _context_problems(args, path: str) -> list[str]:
    """Does the persona's largest prompt fit the model's context? Measured in the model's
    own tokens (its vocabulary only is read: no weights load)."""
    from vtuber.mind.llm import token_counter
    from vtuber.mind.persona import load_persona
    from vtuber.mind.prompt import context_problem
    from vtuber.models import resolve

    cfg = common.config_from(args)
    count = token_counter(resolve(cfg).llm, cfg)
    if count is None:
        return []
    problem = context_problem(load_persona(path), count, cfg.llm.context, cfg.llm.history_turns)
    return [problem] if problem else []


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    pp = sub.add_parser("persona", help="list, show, check or import personas", description="Personas the streamer owns (docs/personas.md).")
    psub = pp.add_subparsers(dest="action", required=True)
    ls = psub.add_parser("list", help="every persona by name, and where it comes from (your folder, the config's, bundled)")
    ls.add_argument("--config", metavar="FILE", help="settings TOML file (its persona_folders are listed too)")
    s = psub.add_parser("show", help="a persona as the program reads it")
    s.add_argument("target", metavar="NAME|FILE")
    s.add_argument("--config", metavar="FILE", help="settings TOML file")
    c = psub.add_parser("check", help="every problem in a persona file at once, and whether its prompt fits the model (exit 2 if any)")
    c.add_argument("target", metavar="NAME|FILE")
    c.add_argument("--config", metavar="FILE", help="settings TOML file (model, llm.context)")
    i = psub.add_parser("import", help="import a SillyTavern character card (V1/V2/V3, JSON or PNG) as a YAML persona")
    i.add_argument("target", metavar="CARD")
    i.add_argument("--out", metavar="FILE", help="where to write (default: NAME.yaml in your persona folder, see `persona list`)")
    i.add_argument("--streamer", default="the streamer", metavar="NAME", help="what {{user}} becomes (default: the streamer)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    pp.set_defaults(func=cmd_persona)
