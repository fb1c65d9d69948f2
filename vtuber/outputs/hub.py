"""Outputs with a lifecycle, each behind its own bounded queue.

An output is anything with `handle(event)` (or a plain callable), and optionally
`start()` and `close()` (run in a worker thread: a speaker drains its audio) or a coroutine
`aclose()` (run on the loop: a server or a socket client). `handle` may be a coroutine function. The hub gives each
output a queue of `queue_size` events and a task that feeds it, so a slow output
(a console on a slow terminal, a web page, a chat API) never blocks the pipeline.
Drop policy: when an output's queue is full the new event is dropped and counted in
`drops[name]` (the pipeline's own bookkeeping, the recorder, is not an output and
never drops).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Iterable

log = logging.getLogger("vtuber.outputs")

_STOP = object()


def _name(output: object) -> str:
    return getattr(output, "name", "") or type(output).__name__


class OutputHub:
    def __init__(self, outputs: Iterable[object] = (), queue_size: int = 1024):
        self.outputs = list(outputs)
        self.queue_size = queue_size
        self.drops: Counter[str] = Counter()
        self.failed: dict[str, str] = {}
        self._queues: list[asyncio.Queue] = []
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for output in self.outputs:
            start = getattr(output, "start", None)
            if callable(start):
                start()
            q: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
            self._queues.append(q)
            self._tasks.append(asyncio.create_task(self._feed(output, q), name=f"output-{_name(output)}"))

    async def _feed(self, output: object, q: asyncio.Queue) -> None:
        handle = getattr(output, "handle", None) or output
        name = _name(output)
        while (ev := await q.get()) is not _STOP:
            if name in self.failed:
                continue
            try:
                result = handle(ev)
                if inspect.isawaitable(result):
                    await result
            except Exception as e:  # one broken output must not take the others down
                self.failed[name] = f"{type(e).__name__}: {e}"
                log.error("output %s failed and is off for the rest of the session: %s", name, self.failed[name])

    def __call__(self, ev: object) -> None:
        for output, q in zip(self.outputs, self._queues):
            try:
                q.put_nowait(ev)
            except asyncio.QueueFull:
                self.drops[_name(output)] += 1

    async def close(self, timeout: float = 5.0) -> None:
        """Let each output take what is queued (up to `timeout`), then close it."""
        deadline = asyncio.get_running_loop().time() + timeout
        for output, q in zip(self.outputs, self._queues):
            while True:
                try:
                    q.put_nowait(_STOP)
                    break
                except asyncio.QueueFull:
                    if asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.01)  # let it take what is queued
                        continue
                    q.get_nowait()  # out of time: the oldest goes, counted, for the stop marker
                    self.drops[_name(output)] += 1
        if self._tasks:
            left = max(deadline - asyncio.get_running_loop().time(), 0.1)
            done, pending = await asyncio.wait(self._tasks, timeout=left)
            for task in pending:
                task.cancel()
        for output in self.outputs:
            aclose = getattr(output, "aclose", None)  # an output living on the loop (a server, a socket)
            close = getattr(output, "close", None)
            try:
                if inspect.iscoroutinefunction(aclose):
                    await asyncio.wait_for(aclose(), timeout)
                elif callable(close):
                    await asyncio.to_thread(close)  # a speaker drains its audio: not on the loop
            except Exception as e:
                log.error("output %s failed to close: %s", _name(output), e)
        self._tasks.clear()
        self._queues.clear()
