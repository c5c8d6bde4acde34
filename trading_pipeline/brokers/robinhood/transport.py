"""The one door every robin_stocks request goes through: rate limits, a timeout, a record.

robin_stocks sends its requests through one global `requests.Session` with fixed
https://api.robinhood.com URLs, sets no timeout on GETs and turns failures into printed
messages and None. Mounting `GuardedTransport` on that session gives every request a
timeout and a token from the rate limiter, and records what happened to each request
(status, or the error when no answer came) so the adapter can tell "Robinhood is down"
(retry) from "Robinhood said no" (an answer) from "nothing found".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from trading_pipeline.brokers.rate_limit import Bucket, RateLimiter

REQUESTS = "requests"
ORDERS = "orders"
# Robinhood's published guidance for the private API, conservatively: 5 requests per 15 s,
# and at least 2 s between order placements / cancels.
REQUEST_BUCKET = Bucket(capacity=5, period=15.0)
ORDER_BUCKET = Bucket(capacity=1, period=2.0)

_ORDER_ACTION = re.compile(r"^/orders/([^/]+/cancel/)?$")
# Device approval (sheriff / pathfinder) flows poll for minutes and may ask for input().
_INTERACTIVE = re.compile(r"^/(pathfinder|push|challenge)/")
VERIFICATION_REFUSED = "device verification requested"


def robinhood_rate_limiter(
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
) -> RateLimiter:
    return RateLimiter({REQUESTS: REQUEST_BUCKET, ORDERS: ORDER_BUCKET}, clock=clock, sleep=sleep)


def is_order_action(method: str, path: str) -> bool:
    """Placing (POST /orders/) or canceling (POST /orders/<id>/cancel/) an order."""
    return method.upper() == "POST" and bool(_ORDER_ACTION.match(path))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one HTTP request."""

    method: str
    path: str
    status: int | None = None  # None: no answer came back
    error: str | None = None  # the exception type when no answer came back
    body: Any = None  # parsed body of 4xx answers (they carry Robinhood's reason)

    @property
    def transient(self) -> bool:
        """Worth retrying: no answer, a server error, or rate limited."""
        return self.status is None or self.status >= 500 or self.status == 429

    @property
    def refused(self) -> bool:
        """An answer that says no (4xx other than 429)."""
        return self.status is not None and 400 <= self.status < 500 and self.status != 429

    def describe(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else f"no answer ({self.error})"
        return f"{self.method} {self.path}: {what}"


class DeviceVerificationRequired(requests.ConnectionError):
    """Robinhood asked for interactive device approval, which an unattended run cannot give."""


class GuardedTransport(HTTPAdapter):
    """Wraps the adapter that really sends (`inner`): limiter first, fixed timeout, record after."""

    def __init__(self, *, inner: HTTPAdapter, limiter: RateLimiter, timeout: float,
                 interactive: bool = False) -> None:
        super().__init__()
        self._interactive = interactive  # a person at the keyboard may approve the device
        self._inner = inner
        self._limiter = limiter
        self._timeout = timeout
        self._local = threading.local()

    def begin(self) -> None:
        """Start a fresh record for the calling thread."""
        self._local.outcomes = []

    def outcomes(self) -> list[Outcome]:
        return list(getattr(self._local, "outcomes", []))

    def _record(self, outcome: Outcome) -> None:
        if not hasattr(self._local, "outcomes"):
            self._local.outcomes = []
        self._local.outcomes.append(outcome)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        method = (request.method or "GET").upper()
        path = urlsplit(request.url).path or "/"
        if _INTERACTIVE.match(path) and not self._interactive:
            self._record(Outcome(method, path, error=VERIFICATION_REFUSED))
            raise DeviceVerificationRequired("Robinhood asked to approve this device interactively")
        buckets = (REQUESTS, ORDERS) if is_order_action(method, path) else (REQUESTS,)
        self._limiter.acquire(*buckets)
        try:
            # Our timeout always wins: robin_stocks sets none on GETs and 16 s on POSTs.
            response = self._inner.send(
                request, stream=stream, timeout=self._timeout, verify=verify, cert=cert, proxies=proxies
            )
        except requests.RequestException as error:
            self._record(Outcome(method, path, error=type(error).__name__))
            raise
        body = None
        if 400 <= response.status_code < 500:
            try:
                body = response.json()
            except ValueError:
                body = response.text[:500]
        self._record(Outcome(method, path, status=response.status_code, body=body))
        return response

    def close(self) -> None:
        self._inner.close()
        super().close()
