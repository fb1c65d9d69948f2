"""a long rehearsal under load with faults injected: does she last a stream?

Run the real models for N minutes on the real clock: chat at --rate messages a second, the streamer speaking every
--speech-every seconds, and a fault every 20-40 s (the LLM hangs, crashes or crawls; TTS raises, returns silence or
hangs; ASR hangs or crashes). Samples memory, threads, tasks and file descriptors; prints a summary, writes soak.json
and soak.png, exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError


def cmd_soak(args: argparse.Namespace) -> int:
    from vtuber import soak
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder

    if not 0.1 <= args.minutes <= 24 * 60:
        raise UserError(f"--minutes must be in [0.1, 1440], got {args.minutes}")
    if not 0.05 <= args.rate <= 50:
        raise UserError(f"--rate must be in [0.05, 50], got {args.rate}")
    if not 5 <= args.speech_every <= 3600:
        raise UserError(f"--speech-every must be in [5, 3600], got {args.speech_every}")
    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    resolve(cfg)
    with OutFolder(args.out, soak.FILES, force=args.force) as out:
        engine = common.load_engine(cfg, persona, quiet=True)
        common.console.print(
            f"[dim]soak: {args.minutes:g} min, {args.rate:g} messages/s, the streamer every {args.speech_every:g} s, "
            "a fault every 20-40 s[/]"
        )
        result = soak.run_soak(
            engine, args.minutes, rate=args.rate, speech_every_s=args.speech_every, seed=args.seed,
            progress=lambda line: common.console.print(f"[dim]{escape(line)}[/]", soft_wrap=True),
        )
        files = soak.write(result, out)
    for line in soak.summary_lines(result):
        common.console.print(escape(line), soft_wrap=True)
    common.console.print(f"wrote {files['soak.json']} and {files['soak.png']}")
    return 0 if result.ok else 1


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    sk = common.command_parser(sub, "soak", __doc__)
    sk.add_argument("--minutes", type=float, default=30.0, metavar="N", help="how long (default 30)")
    sk.add_argument("--rate", type=float, default=2.0, metavar="R", help="chat messages a second (default 2)")
    sk.add_argument("--speech-every", type=float, default=30.0, metavar="S", help="the streamer speaks every S seconds (default 30)")
    sk.add_argument("--seed", type=int, default=7, help="random seed for the load and the faults (default 7)")
    sk.add_argument("--out", default="out/soak", metavar="DIR", help="output folder (default: out/soak)")
    sk.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    common.add_common(sk)
    sk.set_defaults(func=cmd_soak)
