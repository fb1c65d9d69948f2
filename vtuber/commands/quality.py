"""what she says: facts right, contradictions, role tags, splices, length, on the bundled probe set

Put the bundled probe set (questions her facts, the stream's facts or common sense answer, in several wordings; lines
handing her another name; open lines) to each persona through the real mind, and write every input and reply to
quality.md and the numbers to quality.json.
"""

from __future__ import annotations

import argparse

from vtuber.commands import common


def cmd_quality(args: argparse.Namespace) -> int:
    """`vtuber quality`: the probe set through the real mind, a progress bar, the table."""
    from rich.markdown import Markdown
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vtuber.config import load_config
    from vtuber.errors import UserError
    from vtuber.mind.prompt import FACT_PLACES
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder
    from vtuber.quality import FILES, ONE_THREAD, PROBES, load_probes, read_persona, report_md, retrieval_command, run_quality, write

    console = common.console

    overrides = {**ONE_THREAD, "models": {"llm": args.llm} if args.llm else {}}
    cfg = load_config(args.config, overrides)
    probes = load_probes(args.probes or PROBES)
    personas = args.persona or list(probes["personas"])
    if args.fact_place and args.fact_place not in FACT_PLACES:
        raise UserError(f"--fact-place must be one of {', '.join(FACT_PLACES)}")
    for name in personas:
        read_persona(name, cfg.persona_folders)  # a wrong name fails before any model loads
    resolve(cfg)
    if args.retrieval:
        from rich.table import Table

        rows = retrieval_command(cfg, probes, personas, console)
        table = Table(title="choosing the fact: right one first, picked for lines that need none, time per message")
        for key in rows[0]:
            table.add_column(key)
        for r in rows:
            table.add_row(*(str(v) for v in r.values()))
        console.print(table)
        return 0
    with OutFolder(args.out, FILES, force=args.force) as out:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("loading models", total=None)

            def progress(name: str, i: int, n: int) -> None:
                bar.update(task, description=f"asking {name}", completed=i, total=n)

            result = run_quality(cfg, personas, probes, progress, args.fact_place)
        written = write(result, out)
    console.print(Markdown(report_md(result).split("\n## ")[0]))
    console.print(f"every input and reply: {written['quality.md']}")
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    q = common.command_parser(sub, "quality", __doc__)
    q.add_argument("--persona", action="append", metavar="NAME|FILE", help="a persona to ask (repeat; default: every persona in the probe set)")
    q.add_argument("--probes", metavar="YAML", help="another probe set (the format of vtuber/data/probes.yaml)")
    q.add_argument("--retrieval", action="store_true", help="measure how the facts are chosen instead (keywords, MiniLM, the chat model's embeddings)")
    q.add_argument("--fact-place", default="", metavar="WHERE", help="where the facts go: before_input (default), system_end, in_user")
    q.add_argument("--config", metavar="FILE", help="settings TOML file (see docs/config.md)")
    q.add_argument("--llm", metavar="GGUF", help="LLM model file (default: bundled SmolLM2-135M-Instruct Q4_1)")
    q.add_argument("--out", default="out/quality", metavar="DIR", help="output folder (default: out/quality)")
    q.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    q.set_defaults(func=cmd_quality)
