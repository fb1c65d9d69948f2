"""The session clock: real time for live and real-time rehearsal, or a fast clock.

Sources never call `asyncio.sleep` themselves; they ask the clock to wake them at
a session time. The real clock just sleeps. The fast clock is a small discrete-event
scheduler: while the pipeline is busy (ASR running, a turn queued or being answered)
time runs at wall speed and inputs arrive on time, exactly as live, so every measured
latency is real compute time and triage (queue limits, stale messages) drops what it
would drop live; once the pipeline is idle and every source is waiting, time jumps to
the earliest wake-up.

Timers (`call_at`) are wake-ups that are not sources: simulated playback ends a
clause at a session time, the director waits for the speaker to be nearly free.
They fire on time, and the fast clock may jump to them when nothing else is due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class Clock:
    """Real-time session clock: `now()` is seconds since `start()`."""

    fast = False

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._busy = 0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    # Work accounting: only the fast clock acts on it, but every stage reports it
    # so the same pipeline code runs under either clock.
    def begin_work(self) -> None:
        self._busy += 1

    def end_work(self) -> None:
        self._busy = max(0, self._busy - 1)

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def add_source(self) -> None:
        pass

    def source_done(self) -> None:
        pass

    def call_at(self, t: float, callback) -> Timer:
        """Run `callback()` in the event loop at session time `t` (at once if past)."""
        handle = asyncio.get_running_loop().call_later(max(0.0, t - self.now()), callback)
        return Timer(handle.cancel)


class Timer:
    """A pending `call_at`; `cancel()` is safe to call more than once."""

    def __init__(self, cancel) -> None:
        self._cancel = cancel
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._cancel()


class FastClock(Clock):
    """Real time while the pipeline works, idle time skipped: honest latencies, the same triage as live."""

    fast = True

    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0
        self._waiters: list[tuple[float, int, asyncio.Future]] = []
        self._timers: list[tuple[float, int, Timer, object]] = []
        self._seq = itertools.count()
        self._live_sources = 0
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def now(self) -> float:
        return time.perf_counter() - self._t0 + self._offset

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _ensure_scheduler(self) -> None:
        if self._task is None or self._task.done():
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._schedule(), name="fast-clock")

    def add_source(self) -> None:
        self._live_sources += 1
        self._ensure_scheduler()

    def source_done(self) -> None:
        self._live_sources -= 1
        self._poke()

    def end_work(self) -> None:
        super().end_work()
        self._poke()

    def call_at(self, t: float, callback) -> Timer:
        timer = Timer(self._poke)
        heapq.heappush(self._timers, (t, next(self._seq), timer, callback))
        self._ensure_scheduler()
        self._poke()
        return timer

    def _fire_due_timers(self) -> None:
        while self._timers and (self._timers[0][2].cancelled or self._timers[0][0] <= self.now()):
            _, _, timer, callback = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                callback()

    async def sleep_until(self, t: float) -> None:
        self._ensure_scheduler()
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (t, next(self._seq), fut))
        self._poke()
        await fut

    async def _schedule(self) -> None:
        assert self._changed is not None
        while True:
            self._changed.clear()
            self._fire_due_timers()
            while self._waiters and self._waiters[0][2].cancelled():  # its source was cancelled
                heapq.heappop(self._waiters)
            every_source_parked = len(self._waiters) >= self._live_sources
            t_wait = self._waiters[0][0] if self._waiters else float("inf")
            t_timer = self._timers[0][0] if self._timers else float("inf")
            if t_wait == t_timer == float("inf"):
                if self._live_sources <= 0:
                    return
                await self._changed.wait()
                continue
            lag = min(t_wait, t_timer) - self.now()
            # Due inputs arrive on time, busy or not (so triage sees the same queue as
            # live); idle time, with every source parked, is skipped.
            if lag <= 0 or (not self.busy and every_source_parked):
                if lag > 0:
                    self._offset += lag
                if t_timer <= t_wait:
                    self._fire_due_timers()
                    await asyncio.sleep(0)  # let what the timer woke take up its work
                    continue
                _, _, fut = heapq.heappop(self._waiters)
                fut.set_result(None)
                # Let the woken source run and park again (or finish) before the next pick.
                await self._changed.wait()
                continue
            try:
                await asyncio.wait_for(self._changed.wait(), lag)
            except asyncio.TimeoutError:
                pass
