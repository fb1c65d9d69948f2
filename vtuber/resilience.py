"""The one circuit breaker and the one reconnect backoff, used by every service and client.

- `CircuitBreaker`: a remote service (an LLM server, a Wyoming speech server) that
  failed is not asked again for `retry_after_s`; the local model answers meanwhile.
  It also keeps the counts a report shows (remote, local, fallbacks) and the last error.
- `Backoff`: the delays between reconnects of a long-lived connection (OBS, VTube
  Studio, Twitch, YouTube): `start_s` doubling up to `max_s`, optionally jittered, reset
  on success. Kept here rather than taken from tenacity or stamina: those wrap one call
  in retries, while these loops live for the whole stream, log once per outage and show
  the next delay in their state; only the delay sequence is shared, and it is this small.

Both take their clock (and the backoff its random source) as arguments, so tests run
them on a fake clock with no sleeps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class CircuitBreaker:
    """Open for `retry_after_s` after a failure: `usable()` is False until then."""

    def __init__(self, retry_after_s: float, now: Callable[[], float] = time.monotonic):
        self.retry_after_s = retry_after_s
        self.now = now
        self.down_until = 0.0  # `now()` time before which the service is not asked
        self.last_error = ""
        self.counts = {"remote": 0, "local": 0, "fallbacks": 0}

    def usable(self) -> bool:
        """True when the service may be asked (it has not failed in the last `retry_after_s`)."""
        return self.now() >= self.down_until

    def failed(self, why: str) -> None:
        """The service failed: open the breaker, remember why, count a fallback."""
        self.down_until = self.now() + self.retry_after_s
        self.last_error = why
        self.counts["fallbacks"] += 1

    def succeeded(self) -> None:
        """The service answered: count it and close the breaker."""
        self.counts["remote"] += 1
        self.down_until = 0.0

    def used_local(self) -> None:
        """The local fallback answered this request."""
        self.counts["local"] += 1


class Backoff:
    """Reconnect delays: `start_s`, then doubling, capped at `max_s`.

    `jitter = (lo, hi)` multiplies each delay by a random factor in that range (so many
    clients do not reconnect in step); `rand` is the random source (`random.uniform`).
    `next()` gives the next delay and counts the attempt; `reset()` after a success."""

    def __init__(
        self,
        start_s: float,
        max_s: float,
        factor: float = 2.0,
        jitter: tuple[float, float] | None = None,
        rand: Callable[[float, float], float] = random.uniform,
    ):
        if start_s < 0 or max_s < 0:
            raise ValueError("backoff delays cannot be negative")
        self.start_s = start_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self.rand = rand
        self.attempts = 0

    def delay(self, attempt: int) -> float:
        """The delay before try number `attempt` + 1 (0 = the first retry), no jitter."""
        return min(self.max_s, self.start_s * self.factor ** min(attempt, 64))

    def next(self) -> float:
        """The next delay (jittered if asked); counts the attempt."""
        d = self.delay(self.attempts)
        self.attempts += 1
        if self.jitter is not None:
            d *= self.rand(*self.jitter)
        return d

    def reset(self) -> None:
        """Connected: the next outage starts again at `start_s`."""
        self.attempts = 0
