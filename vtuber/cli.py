"""The `vtuber` command: the parser (one module per command under `vtuber.commands`) and `main`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vtuber import __version__, cpu, heap
from vtuber.commands import COMMANDS
from vtuber.commands.bench import TARGETS, bench_table, bench_verdict  # noqa: F401 - the bench's targets, importable from here as before
from vtuber.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    """`vtuber` and its commands, in the order of `vtuber.commands.COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="vtuber",
        description="A fully local AI co-host for live streamers and VTubers.",
    )
    parser.add_argument("--version", action="version", version=f"vtuber {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vtuber.commands.{name}").add(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run unwinds (temporary files removed) and stops."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    heap.tune()  # before any model thread starts
    cpu.limit_blas()  # numpy's products are small: one thread, none spinning beside the models
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except UserError as e:
        print(f"vtuber: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("vtuber: stopped (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("vtuber: stopped; nothing half-written was left", file=sys.stderr)
        return 130


def tune_malloc() -> None:
    """glibc's allocator, set before any model thread starts (Linux; elsewhere nothing).

    Measured with the bundled models (the demo rehearsal's peak RSS): every thread that
    allocates (ASR, LLM, TTS, the turn detector, executors) gets its own arena by default,
    and after a big buffer is freed glibc raises its mmap threshold so later big buffers
    (Piper's decoder: ~35 MiB a second of audio) stay in the heap and are never given
    back. Two arenas and a fixed 4 MiB mmap threshold: big buffers return to the system
    when freed, at no measurable cost in synthesis time."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD (a fixed value also stops its growth)
    except (OSError, AttributeError):
        pass


def entry() -> None:
    """The `vtuber` command: `main`, then a quick exit. Once the work is done and written,
    tearing down the loaded models (llama.cpp, CTranslate2, onnxruntime, PortAudio) takes
    about 2 s more for nothing; a stop on SIGTERM must be over within 2 s."""
    import os

    tune_malloc()
    rc = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            rc = rc or 1
    os._exit(rc)


if __name__ == "__main__":
    entry()
