"""Bounded retries with backoff for every broker call (tenacity)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from trading_pipeline.brokers.base import BrokerUnavailable
from trading_pipeline.brokers.secrets import scrub

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def call_with_retries(
    fn: Callable[[], T],
    *,
    broker: str,
    operation: str,
    attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    is_transient: Callable[[BaseException], bool] = lambda e: isinstance(e, TRANSIENT_ERRORS),
    secrets: Iterable[str | None] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `fn`; retry transient failures with exponential backoff; then fail clearly.

    The final error is `BrokerUnavailable` naming the broker, the operation and the last
    error's type and (scrubbed) text. Non-transient errors propagate at once.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=base_delay, max=max_delay),
        retry=retry_if_exception(is_transient),
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(fn)
    except RetryError as exhausted:
        last = exhausted.last_attempt.exception()
        detail = scrub(f"{type(last).__name__}: {last}", secrets)
        raise BrokerUnavailable(
            f"{broker} did not answer {operation} after {attempts} attempt"
            f"{'s' if attempts != 1 else ''} ({detail}). Check that the broker (for IBKR: TWS or "
            "IB Gateway) is running and reachable; nothing was lost, re-run the step when it is back."
        ) from None
