"""The process's cores: each model runs on the threads the config gives it ([threads]);
numpy's BLAS gets one.

numpy's OpenBLAS starts a pool of one thread a core at import, and after every matrix
product its threads spin, waiting for the next. The pipeline's numpy products are small
(Whisper's and Smart Turn's mel features, resampling) and come from many places, so on a
2-core machine the second core was spun away while Whisper, the turn detector, the LLM
and Piper needed it. Measured in `vtuber bench` on the 2-core machine: of the CPU time
spent while the streamer's last line was transcribed, about a quarter (60-120 ms a line)
was that spinning thread, and the transcription took 265-359 ms instead of 215-273 ms.

`limit_blas()` holds numpy's BLAS to one thread for the whole run (the command line calls
it first); `one_blas_thread()` does it for one block, where a stage is used as a library
(the fact finder's encoder). threadpoolctl finds the pool whichever BLAS numpy was built
with; neither changes anything where numpy has no threaded BLAS.
"""

from __future__ import annotations

_limits = None
_controller = None


def limit_blas(threads: int = 1) -> None:
    """numpy's BLAS on `threads` threads, from now on, for the whole process."""
    global _limits
    if _limits is None:
        import numpy  # noqa: F401 - the pool to limit is the one numpy loads
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(limits=threads, user_api="blas")


def blas_threads() -> list[int]:
    """How many threads each BLAS pool loaded in the process uses now."""
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread (the setting before comes back after)."""
    global _controller
    if _controller is None:
        import numpy  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
