"""The process's memory: how glibc's allocator is set up, and giving freed memory back.

Whisper, Piper, llama.cpp and the event loop allocate from their own threads. glibc keeps
what they free for reuse, per arena, and each model's per-call buffers (Whisper's features
and attention, Piper's audio) are tens of MiB: kept, they add up turn after turn, and every
new peak starts from higher up. Two things hold it down:

- `tune()`, at start: two arenas instead of glibc's eight a core (the bench's peak RSS
  ~730 -> ~680 MiB). A fixed small mmap threshold went further (~520 MiB) but made Whisper's
  and Piper's big buffers page-fault on every call (TTS first chunk p95 100 -> 190 ms).
- `trim_soon()`, after each reply's audio is made (while it plays): `malloc_trim` hands the
  free pages back to the system, 6-10 ms on a thread of its own. Over the bench's sixteen
  turns the RSS at the end went from ~637 to ~512 MiB and the peak from ~677 to ~640 MiB
  (the streaming run alone, back to back); `vtuber bench`'s peak from 639-652 to 615-622 MiB.
  The peak was then Whisper's whole 30 s window (lines under 1.5 s): its attention takes
  75-95 MiB for the call. Such a call now starts with a `trim()` (vtuber.hearing.asr), comes
  at the endpoint after the turn detector's verdict rather than beside it, and never when the
  streamer goes on (vtuber.hearing); with MiniLM's layers in int8 the bench's peak went from
  613-622 to 568-583 MiB.

Both do nothing outside glibc (the allocator there is not glibc's).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

M_ARENA_MAX = -8

_libc = None
_looked = False
_trimmer: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_busy = False


def _glibc():
    global _libc, _looked
    if not _looked:
        _looked = True
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL("libc.so.6")
                lib.mallopt, lib.malloc_trim  # noqa: B018 - glibc has both (musl has no malloc_trim)
                _libc = lib
            except (OSError, AttributeError):
                _libc = None
    return _libc


def tune() -> None:
    """Two arenas. Must run before the model threads start."""
    lib = _glibc()
    if lib is not None:
        lib.mallopt(M_ARENA_MAX, 2)


def trim() -> bool:
    """Give the free pages of every arena back to the system now; True when glibc did."""
    lib = _glibc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


def trim_soon() -> None:
    """`trim()` on a thread of its own (never on the event loop); a request while one runs
    is dropped (that one frees the same pages)."""
    global _trimmer, _busy
    if _glibc() is None:
        return
    with _lock:
        if _busy:
            return
        _busy = True
        if _trimmer is None:
            _trimmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trim")
    _trimmer.submit(_trim_then_free)


def _trim_then_free() -> None:
    global _busy
    try:
        trim()
    finally:
        with _lock:
            _busy = False
