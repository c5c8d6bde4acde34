"""The token-bucket rate limiter: strict windows, order spacing, threads, no real sleeping."""

from __future__ import annotations

import threading
import time

import pytest

from trading_pipeline.brokers.rate_limit import Bucket, RateLimiter
from trading_pipeline_tests.brokers.fakes.robinhood import VirtualClock


def max_in_any_window(instants: list[float], period: float) -> int:
    """The largest number of `instants` inside any half-open window [t, t + period)."""
    ordered = sorted(instants)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_in_threads(n_threads: int, calls_each: int, call) -> list[tuple[float, str]]:
    """Run `call()` `calls_each` times in each of `n_threads` threads started together."""
    grants: list[tuple[float, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(n_threads)

    def worker():
        start.wait()
        for _ in range(calls_each):
            at = call()
            with lock:
                grants.append((at, threading.current_thread().name))

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a worker is stuck in the limiter"
    return grants


def test_window_counter_sees_a_burst_a_refilling_bucket_would_allow():
    # what a continuously refilling 5-per-15 s bucket lets through: 5 at once, one more 3 s later
    assert max_in_any_window([0, 0, 0, 0, 0, 3], 15) == 6
    assert max_in_any_window([0, 0, 0, 0, 0, 15], 15) == 5


def test_twenty_calls_from_four_threads_never_exceed_five_in_any_fifteen_seconds():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({"requests": Bucket(5, 15.0)}, clock=clock, sleep=clock.sleep)

    grants = run_in_threads(4, 5, lambda: limiter.acquire("requests"))

    instants = [at for at, _ in grants]
    assert len(instants) == 20
    assert max_in_any_window(instants, 15.0) == 5  # the limit, reached but never passed
    assert max(instants) - min(instants) >= 45.0  # 20 calls at 5 per 15 s need 3 full windows
    assert len({name for _, name in grants}) == 4  # every thread got through
    assert clock.sleeps and all(s > 0 for s in clock.sleeps)  # it waited on the injected sleep
    assert limiter.waited_seconds == pytest.approx(sum(clock.sleeps))


def test_orders_are_at_least_two_seconds_apart_across_threads():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({"orders": Bucket(1, 2.0)}, clock=clock, sleep=clock.sleep)

    instants = sorted(at for at, _ in run_in_threads(3, 4, lambda: limiter.acquire("orders")))

    gaps = [b - a for a, b in zip(instants, instants[1:])]
    assert len(instants) == 12
    assert min(gaps) >= 2.0 - 1e-9
    assert max_in_any_window(instants, 2.0) == 1


def test_request_and_order_tokens_are_taken_at_the_same_instant():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter(
        {"requests": Bucket(5, 15.0), "orders": Bucket(1, 2.0)}, clock=clock, sleep=clock.sleep
    )
    kinds = iter(["orders", "requests"] * 8)
    kinds_lock = threading.Lock()
    taken: list[tuple[float, str]] = []

    def call():
        with kinds_lock:
            kind = next(kinds)
        names = ("requests", "orders") if kind == "orders" else ("requests",)
        at = limiter.acquire(*names)
        with kinds_lock:
            taken.append((at, kind))
        return at

    run_in_threads(4, 4, call)

    every = [at for at, _ in taken]
    orders = sorted(at for at, kind in taken if kind == "orders")
    assert len(every) == 16 and len(orders) == 8
    assert max_in_any_window(every, 15.0) <= 5  # orders count as requests too
    assert min(b - a for a, b in zip(orders, orders[1:])) >= 2.0 - 1e-9


def test_tokens_come_back_one_period_after_use_not_before():
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({"requests": Bucket(2, 10.0)}, clock=clock, sleep=clock.sleep)
    first, second = limiter.acquire("requests"), limiter.acquire("requests")
    clock.sleep(4.0)
    third = limiter.acquire("requests")  # must wait until the first token is 10 s old
    assert (first, second) == (0.0, 0.0)
    assert third == pytest.approx(10.0)


def test_defaults_use_the_real_monotonic_clock():
    limiter = RateLimiter({"calls": Bucket(2, 0.05)})
    instants = [limiter.acquire("calls") for _ in range(3)]
    assert instants[2] - instants[0] >= 0.05
    assert instants[0] <= time.monotonic()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Bucket(0, 1.0), "capacity"),
        (lambda: Bucket(1, 0.0), "period"),
        (lambda: Bucket(1.5, 1.0), "capacity"),
        (lambda: RateLimiter({}), "at least one bucket"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_acquire_needs_known_bucket_names():
    limiter = RateLimiter({"requests": Bucket(1, 1.0)})
    with pytest.raises(ValueError, match="requests"):
        limiter.acquire()
    with pytest.raises(KeyError, match="orders"):
        limiter.acquire("orders")
