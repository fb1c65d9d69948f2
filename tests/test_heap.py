"""Memory handed back to the system after a reply (glibc's malloc_trim)."""

from __future__ import annotations

import sys
import time

import pytest

from vtuber import heap


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._glibc() is None, reason="glibc's allocator only (Linux)")
def test_memory_freed_by_a_model_call_goes_back_after_a_trim():
    # Many blocks below the mmap threshold (like a model's per-call buffers), written to, then
    # freed with one block kept above them: glibc keeps the freed pages resident for reuse.
    import ctypes

    libc = heap._glibc()
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024
    blocks = [libc.malloc(size) for _ in range(3200)]  # 200 MiB
    for b in blocks:
        ctypes.memset(b, 1, size)
    keep = libc.malloc(100 * 1024)  # from the top of the heap, above the blocks
    before = rss_mib()
    for b in blocks:
        libc.free(b)
    held = rss_mib()
    heap.trim_soon()
    heap.trim_soon()  # a second request while one runs is dropped, not queued
    deadline = time.monotonic() + 5
    while heap._busy and time.monotonic() < deadline:
        time.sleep(0.01)
    after = rss_mib()
    assert not heap._busy
    assert held > before - 50, (before, held)  # freed, but still resident
    assert after < held - 100, (before, held, after)  # most of the 200 MiB went back
    libc.free(keep)
