"""`vtuber bench`: latency against a naive pipeline, with the targets it is held to."""

from __future__ import annotations

import argparse

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError


def cmd_bench(args: argparse.Namespace) -> int:
    from vtuber import bench
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder

    if not 1 <= args.turns <= 200:
        raise UserError(f"--turns must be in [1, 200], got {args.turns}")
    if not 0 <= args.load_s <= 3600:
        raise UserError(f"--load-s must be in [0, 3600], got {args.load_s}")
    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    resolve(cfg)
    with OutFolder(args.out, bench.FILES, force=args.force) as out:
        engine = common.load_engine(cfg, persona, quiet=True)
        with common.console.status("benchmarking", spinner="dots") as status:
            result = bench.run_bench(
            engine, args.turns, progress=lambda m: (status.update(m), common.console.print(f"[dim]{m}[/]")), load_s=args.load_s
        )
        files = bench.write(result, out)
    common.console.print(bench_table(result))
    for line in bench.parts_lines(result):  # name each part
        common.console.print(f"[dim]{escape(line)}[/]")
    for line in bench_verdict(result):
        common.console.print(line)
    common.console.print(f"wrote {files['json']} and {files['plot']}")
    return 0


def bench_table(result: dict):
    from rich.table import Table

    m = result["machine"]
    table = Table(title=f"vtuber bench: {m['cpu']}, {m['cores']} cores, {result['turns']} chat + {result['turns']} spoken turns")
    columns = ("metric", "p50", "p95", "max", "naive p50", "vs naive", "plain p50", "vs plain")
    for c in columns:
        table.add_column(c, justify="left" if c == "metric" else "right")
    s, naive, plain = result["streaming"], result["naive"], result.get("plain", {})

    def row(label, d, scale=1000.0, unit="ms", bases=(None, None)):
        if not d:
            return
        cells = [f"{d[k] * scale:.0f} {unit}" for k in ("p50", "p95", "max")]
        for base in bases:
            cells.append(f"{base['p50'] * 1000:.0f} ms" if base else "")
            cells.append(f"{base['p50'] / d['p50']:.1f}x" if base and d["p50"] else "")
        table.add_row(label, *cells)

    for kind, label in (("chat", "chat -> first audio"), ("speech", "speech end -> first audio")):
        row(label, s.get(kind, {}).get("input_to_first_audio"), bases=(naive.get(kind), plain.get(kind)))
        row(f"{label} heard", s.get(kind, {}).get("input_to_first_heard"))
    for kind in ("chat", "speech"):
        for stage in ("endpoint", "asr", "queue_wait", "llm_first_token", "first_clause", "tts_first_chunk"):
            row(f"  {kind}: {stage.replace('_', ' ')}", s.get(kind, {}).get(stage))
    both = [s[k]["tokens_per_s"] for k in s if "tokens_per_s" in s[k]]
    if both:
        table.add_row("tokens/s (chat)", f"{both[0]['p50']:.0f}", f"{both[0]['p95']:.0f}", f"{both[0]['max']:.0f}")
    table.add_row("peak RSS", f"{result['peak_rss_mib']:.0f} MiB")
    table.add_row("gaps between clauses", str(result["gaps"]))
    load = result.get("live_load")
    if load:
        for kind in ("chat", "speech"):
            k = load[kind]
            row(f"live load: {kind} -> heard", k["input_to_first_heard"])
            table.add_row(f"  {kind}: answered / received", f"{k['answered']} / {k['received']}", "", "", "", "", "", "")
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(load["dropped"].items())) or "none"
        table.add_row("  dropped", dropped)
    q = result.get("quality")
    if q and q["replies"]:
        table.add_row(
            "reply quality",
            f"{q['replies']} replies: echo {q['echo']}, parrot {q['parrot']}, role play {q['roleplay']}, cut {q['cut']}, "
            f"first clauses redone {q['suppressed_first_clauses']}",
        )
    return table


TARGETS = (
    ("chat -> first audio p50 <= 200 ms", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p50"] <= 0.200),
    ("chat -> first audio p95 <= 300 ms", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p95"] <= 0.300),
    ("chat >= 4x faster than naive (p50)", lambda r: (r["chat_speedup_p50"] or 0) >= 4.0),
    ("chat -> first audio p50 < plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p50"] < r["plain"]["chat"]["p50"]),
    ("chat -> first audio p95 < plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p95"] < r["plain"]["chat"]["p95"]),
    ("speech end -> first audio p50 <= 800 ms", lambda r: r["streaming"]["speech"]["input_to_first_audio"]["p50"] <= 0.800),
    ("peak RSS <= 700 MiB", lambda r: r["peak_rss_mib"] <= 700),
    ("no gaps between clauses", lambda r: r["gaps"] == 0),
)


def bench_verdict(result: dict) -> list[str]:
    lines = []
    for label, check in TARGETS:
        try:
            ok = check(result)
        except (KeyError, TypeError):
            ok = False
        lines.append(f"{'[green]met[/]' if ok else '[red]missed[/]'}  {label}")
    return lines


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    b = sub.add_parser(
        "bench",
        help="measure chat -> first audio and speech end -> first audio against a naive pipeline",
        description=(
            "Run N chat turns and N spoken turns (speech replayed in real time through VAD, endpointing and ASR) "
            "on the real models after warm-up, then the same inputs through a naive pipeline (whole reply, then "
            "whole TTS). Prints p50/p95/max per stage and writes bench.json and bench.png."
        ),
    )
    b.add_argument("--turns", type=int, default=10, metavar="N", help="chat turns and spoken turns each (default 10)")
    b.add_argument("--load-s", type=float, default=60.0, metavar="S", help="live-load scenario: a chat message a second for S seconds while the streamer talks (0: skip; default 60)")
    b.add_argument("--out", default="out/bench", metavar="DIR", help="output folder (default: out/bench)")
    b.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    common.add_common(b)
    b.set_defaults(func=cmd_bench)
