"""A thread-safe rate limiter for broker APIs, with an injectable clock and sleep.

Each bucket holds `capacity` tokens, and a spent token comes back exactly `period` seconds
after it was spent. Unlike a bucket that refills continuously (which lets up to twice its
capacity through in the window just after a burst), this guarantees what a venue's
"N requests per T seconds" rule means: at most `capacity` acquisitions in any window of
`period` seconds. A bucket of capacity 1 is a minimum spacing between calls.

One limiter may hold several buckets ("any request" and "orders", say); `acquire` takes a
token from each named bucket at the same instant, so every rule holds for the moment the
call is actually let through.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    """At most `capacity` acquisitions in any window of `period` seconds."""

    capacity: int
    period: float

    def __post_init__(self) -> None:
        if not (isinstance(self.capacity, int) and self.capacity >= 1):
            raise ValueError(f"bucket capacity must be a whole number >= 1, got {self.capacity!r}")
        if not (isinstance(self.period, (int, float)) and math.isfinite(self.period) and self.period > 0):
            raise ValueError(f"bucket period must be positive seconds, got {self.period!r}")


class RateLimiter:
    """Named token buckets behind one lock.

    `clock` returns seconds on a monotonic scale and `sleep` waits; tests inject a virtual
    clock whose `sleep` advances it, so nothing really sleeps.
    """

    def __init__(
        self,
        buckets: Mapping[str, Bucket],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not buckets:
            raise ValueError("a rate limiter needs at least one bucket")
        self._buckets = dict(buckets)
        self._spent: dict[str, deque[float]] = {name: deque() for name in self._buckets}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited_seconds = 0.0  # total time callers spent waiting, for metrics

    @property
    def bucket_names(self) -> tuple[str, ...]:
        return tuple(self._buckets)

    def acquire(self, *names: str) -> float:
        """Wait until every named bucket has a token, take one from each at the same instant,
        and return that instant (on the limiter's clock)."""
        if not names:
            raise ValueError(f"name the buckets to take a token from: {', '.join(self._buckets)}")
        unknown = [n for n in names if n not in self._buckets]
        if unknown:
            raise KeyError(f"no bucket named {', '.join(unknown)}; known: {', '.join(self._buckets)}")
        while True:
            with self._lock:
                now = self._clock()
                wait = max(self._wait_for(name, now) for name in names)
                if wait <= 0:
                    for name in names:
                        self._spent[name].append(now)
                    return now
                self.waited_seconds += wait
            self._sleep(wait)

    def _wait_for(self, name: str, now: float) -> float:
        """Seconds until `name` has a free token (<= 0: free now). Caller holds the lock."""
        bucket, spent = self._buckets[name], self._spent[name]
        while spent and now - spent[0] >= bucket.period:
            spent.popleft()
        if len(spent) < bucket.capacity:
            return 0.0
        return spent[0] + bucket.period - now

