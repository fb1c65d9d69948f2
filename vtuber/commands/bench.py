"""measure chat -> first audio and speech end -> first audio against a naive pipeline

Run N chat turns and N spoken turns (speech replayed in real time through VAD, endpointing and ASR) on the real
models after warm-up, then the same inputs through a naive pipeline (whole reply, then whole TTS). Prints
p50/p95/max per stage and writes bench.json and bench.png.
"""

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
    if args.hearing:  # the multilingual Whisper's cost against tiny.en (vtuber.bench_hearing)
        from vtuber import bench_hearing

        with OutFolder(args.out, bench_hearing.FILES, force=args.force) as out:
            with common.console.status("benchmarking hearing", spinner="dots") as status:
                result = bench_hearing.run_hearing(cfg.threads.asr, progress=status.update)
            path = bench_hearing.write(result, out)
        for line in bench_hearing.table_lines(result):
            common.console.print(escape(line))
        common.console.print(f"wrote {path}")
        return 0
    persona = load_persona(cfg.persona, cfg.persona_folders)
    resolve(cfg)
    with OutFolder(args.out, bench.FILES, force=args.force) as out:
        engine = common.load_engine(cfg, persona, quiet=True)
        with common.console.status("benchmarking", spinner="dots") as status:
            result = bench.run_bench(
            engine, args.turns, progress=lambda m: (status.update(m), common.console.print(f"[dim]{m}[/]")), load_s=args.load_s,
                pauses=not args.no_pauses,
            )
        files = bench.write(result, out)
    if common.console.is_terminal:
        common.console.print(bench_table(result))
    else:  # a log or a pipe: plain lines that read in 80 columns, not a squeezed table
        for line in bench_lines(result):
            common.console.print(escape(line), soft_wrap=True)
    from vtuber.load_bench import load_lines

    if result.get("live_load"):
        for line in load_lines(result["live_load"]):
            common.console.print(escape(line), soft_wrap=True)
    for line in turn_taking_lines(result.get("turn_taking")):
        common.console.print(escape(line), soft_wrap=True)
    for line in bench.parts_lines(result):  # name each part
        common.console.print(f"[dim]{escape(line)}[/]")
    for line in bench_verdict(result) + load_verdict(result):
        common.console.print(line)
    common.console.print(f"wrote {files['json']}, {files['plot']} and the live-load plot beside them")
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
        if s.get(kind, {}).get("input_to_reply_audio") != s.get(kind, {}).get("input_to_first_audio"):
            row("  after the opener: the answer", s.get(kind, {}).get("input_to_reply_audio"), bases=(naive.get(kind), plain.get(kind)))
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


def bench_lines(result: dict) -> list[str]:
    """The main table as plain text, at most 80 columns: metric, p50, p95, max, plain p50."""
    m = result["machine"]
    out = [f"vtuber bench: {m['cpu'][:40]}, {m['cores']} cores, {result['turns']}+{result['turns']} turns"]
    out.append(f"{'metric':<30}{'p50':>8}{'p95':>8}{'max':>8}{'plain':>8}{'vs':>7}")
    s, plain = result["streaming"], result.get("plain", {})

    def row(label, d, base=None):
        if d:
            cells = "".join(f"{d[k] * 1000:>5.0f} ms" for k in ("p50", "p95", "max"))
            ratio = base["p50"] / d["p50"] if base and d["p50"] else None
            vs = f"{base['p50'] * 1000:>5.0f} ms{ratio:>7.{2 if ratio < 100 else 0}f}x" if ratio is not None else ""
            out.append(f"{label[:30]:<30}{cells}{vs}")

    for kind, label in (("chat", "chat -> first audio"), ("speech", "speech end -> first audio")):
        row(label, s.get(kind, {}).get("input_to_first_audio"), plain.get(kind))
        if s.get(kind, {}).get("input_to_reply_audio") != s.get(kind, {}).get("input_to_first_audio"):
            row("  (after opener) answer audio", s.get(kind, {}).get("input_to_reply_audio"), plain.get(kind))
        for stage in ("endpoint", "asr", "queue_wait", "llm_first_token", "first_clause", "tts_first_chunk"):
            row(f"  {stage.replace('_', ' ')}", s.get(kind, {}).get(stage))
    out.append(f"peak RSS {result['peak_rss_mib']:.0f} MiB, gaps between clauses {result['gaps']}")
    return out


def turn_taking_lines(tt: dict | None) -> list[str]:
    """False cut-ins on the recorded pauses and speech end -> sent, per way of ending a turn."""
    if not tt:
        return []
    c = tt["clips"]
    out = [f"end of turn: {c['paused']} mid-sentence pauses, {c['finished']} finished sentences (Piper)"]
    for mode in ("silence", "punctuation", "smart_turn_alone", "smart_turn"):
        r = tt.get(mode)
        if r:
            commit = r["commit"]
            with_models = r.get("commit_with_models_p50")
            extra = f" (+models {with_models * 1000:.0f})" if with_models is not None else ""
            out.append(
                f"  {mode.replace('_alone', ' alone'):<16} false cut-ins {r['cut_ins']:>2}/{c['paused']}, "
                f"end -> sent p50 {commit.get('p50', 0) * 1000:.0f} ms{extra}"
            )
    return out


def _load_check(result: dict, key: str, stat: str, limit: float) -> bool:
    return result["live_load"][key]["input_to_first_heard"][stat] <= limit


LOAD_TARGETS = (
    ("live load: answered chat heard p50 <= 3 s", lambda r: _load_check(r, "chat", "p50", 3.0)),
    ("live load: answered chat heard p95 <= 6 s", lambda r: _load_check(r, "chat", "p95", 6.0)),
    ("live load: paid and mentions heard p95 <= 5 s", lambda r: _load_check(r, "urgent", "p95", 5.0)),
    ("chat -> first audio p50 15% under plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p50"] <= 0.85 * r["plain"]["chat"]["p50"]),
    ("chat -> first audio p95 15% under plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p95"] <= 0.85 * r["plain"]["chat"]["p95"]),
    ("speech end -> first audio p50 <= 400 ms", lambda r: r["streaming"]["speech"]["input_to_first_audio"]["p50"] <= 0.400),
    ("fewer false cut-ins with the turn detector than silence alone", lambda r: r["turn_taking"]["smart_turn"]["cut_ins"] < r["turn_taking"]["silence"]["cut_ins"]),
    ("peak RSS <= 600 MiB", lambda r: r["peak_rss_mib"] <= 600),
)


def verdict(targets, result: dict) -> list[str]:
    """A line per target: met or missed (a target without its measurement is missed)."""
    lines = []
    for label, check in targets:
        try:
            ok = check(result)
        except (KeyError, TypeError):
            ok = False
        lines.append(f"{'[green]met[/]' if ok else '[red]missed[/]'}  {label}")
    return lines


def load_verdict(result: dict) -> list[str]:
    """The live-load and end-of-turn targets."""
    return verdict(LOAD_TARGETS, result)


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
    """The latency and memory targets."""
    return verdict(TARGETS, result)


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    b = common.command_parser(sub, "bench", __doc__)
    b.add_argument("--turns", type=int, default=10, metavar="N", help="chat turns and spoken turns each (default 10)")
    b.add_argument("--load-s", type=float, default=60.0, metavar="S", help="live-load scenario: a chat message a second for S seconds while the streamer talks (0: skip; default 60)")
    b.add_argument("--no-pauses", action="store_true", help="skip the end-of-turn part (false cut-ins on recorded pauses)")
    b.add_argument("--hearing", action="store_true", help="only compare the hearing models: Whisper tiny.en against the multilingual base, on English and Korean speech")
    b.add_argument("--out", default="out/bench", metavar="DIR", help="output folder (default: out/bench)")
    b.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    common.add_common(b)
    b.set_defaults(func=cmd_bench)
