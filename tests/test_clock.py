"""Unit tests for the fast clock: sources woken in global time order, jumps when idle, real time while busy.

The fast clock's tests run on a wall clock the test moves by hand (`wall`): a jump is then
exact, "time runs at wall speed while busy" is checked by moving the wall, and nothing
depends on how fast this machine happens to be.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from vtuber import clock as clock_module
from vtuber.clock import Clock, FastClock


class ManualWall:
    """Stands in for the `time` module inside vtuber.clock: perf_counter() moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def perf_counter(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def wall(monkeypatch) -> ManualWall:
    fake = ManualWall()
    monkeypatch.setattr(clock_module, "time", fake)
    return fake


async def until(condition, what: str) -> None:
    """Let the event loop run until `condition()` holds (a hang guard, not a time bound)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"never happened: {what}")


async def settle() -> None:
    """Give the scheduler ample loop turns to deliver anything that is due."""
    for _ in range(50):
        await asyncio.sleep(0)


def source(clock: FastClock, name: str, times: list[float], log: list, on_wake=None):
    """A fake source, shaped like ChatScriptSource.run: register, wake at each time, report done."""

    async def run() -> None:
        clock.add_source()
        try:
            for t in times:
                await clock.sleep_until(t)
                log.append((name, t, clock.now()))
                if on_wake is not None:
                    on_wake(name, t)
        finally:
            clock.source_done()

    return run()


@pytest.mark.parametrize("first", ["chat", "mic"])
async def test_events_delivered_in_global_time_order(first, wall):
    clock = FastClock()
    clock.start()
    log: list = []
    chat_times = [1.0, 4.0, 4.5, 9.0, 30.0]
    mic_times = [0.5, 2.0, 4.2, 10.0, 11.0, 12.0]
    sources = {
        "chat": lambda: source(clock, "chat", chat_times, log),
        "mic": lambda: source(clock, "mic", mic_times, log),
    }
    order = [first, "mic" if first == "chat" else "chat"]
    await asyncio.wait_for(asyncio.gather(*(sources[n]() for n in order)), 30.0)
    requested = [t for _, t, _ in log]
    assert requested == sorted(chat_times + mic_times)
    assert [n for n, _, _ in log] == [
        "mic", "chat", "mic", "chat", "mic", "chat", "chat", "mic", "mic", "mic", "chat",
    ]
    # Every source wakes exactly at its time: idle time is jumped, never overshot.
    assert all(now == t for _, t, now in log), log


async def test_now_at_wake_up_is_the_requested_time(wall):
    clock = FastClock()
    clock.start()
    log: list = []
    times_a = [0.25, 3.0, 7.5, 7.5, 20.0]
    times_b = [0.0, 3.0, 8.0]
    await asyncio.wait_for(asyncio.gather(source(clock, "a", times_a, log), source(clock, "b", times_b, log)), 30.0)
    assert len(log) == len(times_a) + len(times_b)
    # No wall time passed, so each wake-up is exactly where idle time jumped to: never
    # early, never overshot.
    assert [(name, now) for name, t, now in log if now != t] == []


async def test_clock_jumps_a_100_second_script_without_waiting(wall):
    clock = FastClock()
    clock.start()
    log: list = []
    await asyncio.wait_for(
        asyncio.gather(
            source(clock, "chat", [float(t) for t in range(0, 101, 10)], log),
            source(clock, "mic", [5.0, 50.0, 99.5], log),
        ),
        30.0,
    )
    assert len(log) == 14
    # 100 s of session time went by while the wall clock stood still: all of it was jumped.
    assert clock.now() == 100.0


async def test_real_clock_does_not_jump():
    clock = Clock()
    clock.start()
    wall = time.perf_counter()
    await clock.sleep_until(0.05)
    assert clock.now() >= 0.05
    assert time.perf_counter() - wall >= 0.045
    assert not clock.fast and FastClock.fast


async def test_no_source_woken_early_while_work_is_held(wall):
    clock = FastClock()
    clock.start()
    log: list = []

    def start_work(name, t):
        if (name, t) == ("chat", 1.0):
            clock.begin_work()  # e.g. the director queued this message for an answer
            log.append(("work begins", t, clock.now()))

    task = asyncio.gather(
        source(clock, "chat", [1.0, 2.0], log, on_wake=start_work),
        source(clock, "mic", [1.5, 60.0], log),
    )
    await until(lambda: len(log) >= 2, "chat at 1.0 delivered")
    await settle()
    assert [entry[0] for entry in log] == ["chat", "work begins"]
    assert clock.busy
    # While busy, time runs at wall speed (and the wall has not moved): no jump to 1.5.
    assert clock.now() == 1.0

    t_release = clock.now()
    log.append(("work ends", t_release, t_release))
    clock.end_work()
    await asyncio.wait_for(task, 30.0)
    assert [entry[0] for entry in log] == ["chat", "work begins", "work ends", "mic", "chat", "mic"]
    assert not clock.busy
    # Nothing was delivered before the work ended.
    for name, t, now in log[3:]:
        assert now >= t >= 1.5
        assert now >= t_release


async def test_nested_work_waits_for_the_last_end_work(wall):
    clock = FastClock()
    clock.start()
    log: list = []

    def hold_twice(name, t):
        if t == 1.0:
            clock.begin_work()
            clock.begin_work()

    task = asyncio.gather(source(clock, "a", [1.0, 5.0], log, on_wake=hold_twice), source(clock, "b", [3.0], log))
    await until(lambda: log, "a at 1.0 delivered")
    clock.end_work()
    await settle()
    assert [n for n, _, _ in log] == ["a"]  # one unit of work is still held
    assert clock.now() == 1.0
    clock.end_work()
    await asyncio.wait_for(task, 30.0)
    assert [(n, t) for n, t, _ in log] == [("a", 1.0), ("b", 3.0), ("a", 5.0)]


async def test_time_spent_busy_is_real_time_not_skipped(wall):
    clock = FastClock()
    clock.start()
    log: list = []

    def busy(name, t):
        if t == 1.0:
            clock.begin_work()

    task = asyncio.gather(source(clock, "a", [1.0], log, on_wake=busy), source(clock, "b", [1.05, 2.0], log))
    await until(lambda: log, "a at 1.0 delivered")
    wall.advance(0.03)  # working: session time follows the wall, no jump to 1.05
    await settle()
    assert [(n, t) for n, t, _ in log] == [("a", 1.0)] and clock.now() == pytest.approx(1.03)
    wall.advance(0.03)  # b's 1.05 is due while the pipeline is still busy: it arrives, as it would live
    await until(lambda: len(log) == 2, "b at 1.05 delivered while busy")
    assert log[1][:2] == ("b", 1.05) and log[1][2] == pytest.approx(1.06)
    await settle()
    assert len(log) == 2 and clock.now() == pytest.approx(1.06)  # still busy: no jump to 2.0
    clock.end_work()  # idle: time jumps straight to 2.0
    await asyncio.wait_for(task, 30.0)
    assert log[2][:2] == ("b", 2.0) and log[2][2] == pytest.approx(2.0)


async def test_a_burst_during_work_arrives_on_time_so_triage_sees_it(wall):
    # A long script in fast mode must queue (and drop) like live: messages that come
    # in while a turn is answered are not held until the pipeline is idle.
    clock = FastClock()
    clock.start()
    log: list = []

    def hold(name, t):
        if t == 1.0:
            clock.begin_work()

    task = asyncio.ensure_future(source(clock, "chat", [1.0, 1.02, 1.04, 1.06, 500.0], log, on_wake=hold))
    await until(lambda: log, "chat at 1.0 delivered")
    wall.advance(0.1)  # 100 ms of work
    await until(lambda: len(log) == 4, "the burst delivered while busy")
    await settle()
    assert [t for _, t, _ in log] == [1.0, 1.02, 1.04, 1.06]  # delivered while busy ...
    assert clock.now() == pytest.approx(1.1)  # ... and no jump while busy
    clock.end_work()
    await asyncio.wait_for(task, 30.0)
    assert log[-1][1] == 500.0 and log[-1][2] == pytest.approx(500.0)


async def test_a_source_that_finishes_early_does_not_stall_the_other(wall):
    clock = FastClock()
    clock.start()
    log: list = []
    await asyncio.wait_for(
        asyncio.gather(source(clock, "short", [1.0], log), source(clock, "long", [2.0, 50.0, 80.0], log)),
        30.0,
    )
    assert [(n, t) for n, t, _ in log] == [("short", 1.0), ("long", 2.0), ("long", 50.0), ("long", 80.0)]


async def test_a_cancelled_source_does_not_stall_the_others(wall):
    # Cancelling one source (e.g. a replay the user stops) must not leave its dead wake-up
    # in the schedule, where it blocks every other source once it reaches the front.
    clock = FastClock()
    clock.start()
    log: list = []
    a = asyncio.ensure_future(source(clock, "a", [50.0, 70.0], log))
    b = asyncio.ensure_future(source(clock, "b", [10.0, 20.0, 60.0, 80.0], log))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    a.cancel()
    await asyncio.wait_for(b, 30.0)
    assert [(n, t) for n, t, _ in log] == [("b", 10.0), ("b", 20.0), ("b", 60.0), ("b", 80.0)]
