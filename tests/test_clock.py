"""Unit tests for the fast clock: sources woken in global time order, jumps when idle, real time while busy."""

from __future__ import annotations

import asyncio
import time

import pytest

from vtuber.clock import Clock, FastClock


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
async def test_events_delivered_in_global_time_order(first):
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
    await asyncio.wait_for(asyncio.gather(*(sources[n]() for n in order)), 5.0)
    requested = [t for _, t, _ in log]
    assert requested == sorted(chat_times + mic_times)
    assert [n for n, _, _ in log] == [
        "mic", "chat", "mic", "chat", "mic", "chat", "chat", "mic", "mic", "mic", "chat",
    ]
    # Session time never runs backwards across sources.
    nows = [now for _, _, now in log]
    assert nows == sorted(nows)


async def test_now_at_wake_up_is_at_least_the_requested_time():
    clock = FastClock()
    clock.start()
    log: list = []
    times_a = [0.25, 3.0, 7.5, 7.5, 20.0]
    times_b = [0.0, 3.0, 8.0]
    await asyncio.wait_for(asyncio.gather(source(clock, "a", times_a, log), source(clock, "b", times_b, log)), 5.0)
    assert len(log) == len(times_a) + len(times_b)
    for name, t, now in log:
        assert now >= t, (name, t, now)
        assert now - t < 0.5  # and it did not overshoot: idle time jumps straight to t


async def test_clock_jumps_a_100_second_script_runs_fast():
    clock = FastClock()
    clock.start()
    log: list = []
    wall = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            source(clock, "chat", [float(t) for t in range(0, 101, 10)], log),
            source(clock, "mic", [5.0, 50.0, 99.5], log),
        ),
        5.0,
    )
    elapsed = time.perf_counter() - wall
    assert elapsed < 1.0
    assert len(log) == 14
    assert clock.now() >= 100.0


async def test_real_clock_does_not_jump():
    clock = Clock()
    clock.start()
    wall = time.perf_counter()
    await clock.sleep_until(0.05)
    assert clock.now() >= 0.05
    assert time.perf_counter() - wall >= 0.045
    assert not clock.fast and FastClock.fast


async def test_no_source_woken_while_work_is_held():
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
    await asyncio.sleep(0.15)  # far longer than the fast clock needs to deliver everything
    assert [entry[0] for entry in log] == ["chat", "work begins"]
    assert clock.busy
    # While busy, time runs at wall speed: no jump to 1.5.
    assert clock.now() < 1.5

    t_release = clock.now()
    log.append(("work ends", t_release, t_release))
    clock.end_work()
    await asyncio.wait_for(task, 5.0)
    assert [entry[0] for entry in log] == ["chat", "work begins", "work ends", "mic", "chat", "mic"]
    assert not clock.busy
    # Nothing was delivered before the work ended.
    for name, t, now in log[3:]:
        assert now >= t >= 1.5
        assert now >= t_release


async def test_nested_work_waits_for_the_last_end_work():
    clock = FastClock()
    clock.start()
    log: list = []

    def hold_twice(name, t):
        if t == 1.0:
            clock.begin_work()
            clock.begin_work()

    task = asyncio.gather(source(clock, "a", [1.0, 5.0], log, on_wake=hold_twice), source(clock, "b", [3.0], log))
    await asyncio.sleep(0.05)
    clock.end_work()
    await asyncio.sleep(0.05)
    assert [n for n, _, _ in log] == ["a"]  # one unit of work is still held
    clock.end_work()
    await asyncio.wait_for(task, 5.0)
    assert [(n, t) for n, t, _ in log] == [("a", 1.0), ("b", 3.0), ("a", 5.0)]


async def test_time_spent_busy_is_real_time_not_skipped():
    clock = FastClock()
    clock.start()
    log: list = []

    def busy_for_a_while(name, t):
        if t == 1.0:
            clock.begin_work()
            asyncio.get_running_loop().call_later(0.1, clock.end_work)

    await asyncio.wait_for(
        asyncio.gather(source(clock, "a", [1.0], log, on_wake=busy_for_a_while), source(clock, "b", [1.05, 2.0], log)),
        5.0,
    )
    by = {(n, t): now for n, t, now in log}
    # b asked for 1.05 while the pipeline was busy until about 1.1: it arrives on time, as
    # it would live (the director queues it), never early and never held back.
    assert 1.05 <= by[("b", 1.05)] < 1.1
    # Once the work ended, idle time jumped straight to 2.0.
    assert 2.0 <= by[("b", 2.0)] < 2.2


async def test_a_burst_during_work_arrives_on_time_so_triage_sees_it():
    # A long script in fast mode must queue (and drop) like live: messages that come
    # in while a turn is answered are not held until the pipeline is idle.
    clock = FastClock()
    clock.start()
    log: list = []

    def hold(name, t):
        if t == 1.0:
            clock.begin_work()

    task = asyncio.ensure_future(source(clock, "chat", [1.0, 1.02, 1.04, 1.06, 500.0], log, on_wake=hold))
    await asyncio.sleep(0.2)
    assert [t for _, t, _ in log] == [1.0, 1.02, 1.04, 1.06]  # delivered while busy
    assert clock.now() < 2.0  # no jump while busy
    clock.end_work()
    await asyncio.wait_for(task, 5.0)
    assert log[-1][1] == 500.0 and log[-1][2] >= 500.0


async def test_a_source_that_finishes_early_does_not_stall_the_other():
    clock = FastClock()
    clock.start()
    log: list = []
    await asyncio.wait_for(
        asyncio.gather(source(clock, "short", [1.0], log), source(clock, "long", [2.0, 50.0, 80.0], log)),
        5.0,
    )
    assert [(n, t) for n, t, _ in log] == [("short", 1.0), ("long", 2.0), ("long", 50.0), ("long", 80.0)]


async def test_a_cancelled_source_does_not_stall_the_others():
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
    await asyncio.wait_for(b, 1.0)
    assert [(n, t) for n, t, _ in log] == [("b", 10.0), ("b", 20.0), ("b", 60.0), ("b", 80.0)]
