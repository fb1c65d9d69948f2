"""Outputs with a lifecycle behind bounded queues: a slow or broken output never blocks
the pipeline or the other outputs; what it could not take is counted."""

from __future__ import annotations

import asyncio

from vtuber.outputs.hub import OutputHub


class Slow:
    name = "slow"

    def __init__(self):
        self.seen, self.started, self.closed = [], False, False

    def start(self):
        self.started = True

    async def handle(self, ev):
        await asyncio.sleep(0.01)
        self.seen.append(ev)

    def close(self):
        self.closed = True


class Broken:
    name = "broken"

    def handle(self, ev):
        raise RuntimeError("disk full")


async def test_a_slow_output_drops_and_counts_while_the_others_get_everything():
    slow, fast = Slow(), []
    hub = OutputHub([slow, fast.append], queue_size=8)
    hub.start()
    assert slow.started
    for i in range(100):
        hub(i)  # never waits, whatever the outputs do
        await asyncio.sleep(0)  # the pipeline goes on with its own work between events
    assert len(fast) == 100 and len(slow.seen) < 10  # the fast one kept up; nobody waited for the slow one
    await hub.close(timeout=5.0)
    assert fast == list(range(100))
    assert hub.drops["slow"] == 100 - len(slow.seen) and hub.drops["slow"] >= 90
    assert slow.seen == list(range(len(slow.seen)))  # in order, the oldest kept
    assert slow.closed


async def test_a_broken_output_is_switched_off_and_the_rest_go_on():
    got = []
    hub = OutputHub([Broken(), got.append])
    hub.start()
    for i in range(5):
        hub(i)
    await hub.close()
    assert got == [0, 1, 2, 3, 4]
    assert "disk full" in hub.failed["broken"]
