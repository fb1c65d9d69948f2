"""`vtuber redteam`: attack the persona before going live."""

from __future__ import annotations

import argparse

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError


def cmd_redteam(args: argparse.Namespace) -> int:
    """Attack the persona with the bundled corpus (and --chat cases) before going live."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vtuber import redteam
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder
    from vtuber.safety.banned import default_banned_words

    if args.per_group is not None and not 1 <= args.per_group <= 1000:
        raise UserError(f"--per-group must be in [1, 1000], got {args.per_group}")
    if args.no_corpus and not args.chat:
        raise UserError("nothing to run: --no-corpus needs --chat FILE")
    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    common.check_session_settings(cfg)
    defaults = default_banned_words(cfg.safety.banned_words_file or None)
    cases = redteam.build_cases(args.chat, not args.no_corpus, list(persona.banned_words), defaults, args.per_group)
    resolve(cfg)
    with OutFolder(args.out, redteam.REPORT_FILES, force=args.force) as out:
        engine = common.load_engine(cfg, persona, args.quiet)
        common.console.rule(f"red team: {escape(persona.name)}, {len(cases)} cases")
        start = time.monotonic()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=common.console, transient=True
        ) as bar:
            task = bar.add_task("rehearsing", total=len(cases))

            def progress(stage: str, i: int, n: int) -> None:
                bar.update(task, description=stage, completed=i, total=n)

            session, runs = redteam.run_cases(engine, cases, progress)
        seconds = time.monotonic() - start
        gate, _ = session.safety_for(persona)
        judge = redteam.Judge(gate)
        verdicts = [judge.verdict(r) for r in runs]
        written = redteam.write_report(out, persona.name, verdicts, seconds, [*persona.banned_words, *defaults])
    common.console.print(redteam_table(persona.name, verdicts, seconds))
    code = redteam.exit_code(verdicts)
    for v in verdicts:
        if v.got_through:
            common.console.print(f"[red]got through[/] {escape(v.run.case.group)}: {escape(v.run.case.describe())} -> {escape('; '.join(v.findings()))}")
    common.console.print("[red]something got through[/]" if code else "[green]nothing got through[/]")
    for _name, path in sorted(written.items()):
        common.console.print(f"wrote {path}")
    return code


def redteam_table(persona_name: str, verdicts, seconds: float):
    from rich.table import Table

    from vtuber import redteam

    rows = redteam.tally(verdicts)
    table = Table(title=f"vtuber redteam: {escape(persona_name)}, {len(verdicts)} cases in {seconds:.0f} s")
    for key, label in redteam.COLUMNS:
        table.add_column(label, justify="left" if key == "group" else "right")
    for r in rows:
        cells = [escape(c) for c in redteam.row_cells(r)]
        if r.got_through:
            cells = [f"[red]{c}[/]" for c in cells]
        table.add_row(*cells)
    table.add_section()
    table.add_row(*[escape(c) for c in redteam.row_cells(redteam.total(rows))])
    return table


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    rt = sub.add_parser(
        "redteam",
        help="attack your persona before going live: injections, banned-word tricks, leaks, identity swaps",
        description=(
            "Run the bundled attack corpus (and your own --chat cases) through the real pipeline on the fast "
            "clock, one case at a time, and check what was shown and what was heard (Whisper) for banned words, "
            "canary and system prompt leaks and never-words. Exit code 1 when anything got through (docs/redteam.md)."
        ),
    )
    rt.add_argument("--chat", metavar="JSONL", help="your own cases: the chat script format plus group, expect, never (docs/redteam.md)")
    rt.add_argument("--no-corpus", action="store_true", help="run only the --chat cases, not the bundled corpus")
    rt.add_argument("--per-group", type=int, metavar="N", help="only the first N cases of each group (a quick check)")
    rt.add_argument("--out", default="out/redteam", metavar="DIR", help="output folder (default: out/redteam)")
    rt.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    rt.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    common.add_common(rt)
    rt.set_defaults(func=cmd_redteam)
