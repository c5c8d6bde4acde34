"""Alerts as JSON POSTs to a webhook (Slack, Teams, Mattermost, or any HTTP receiver).

Webhook URLs usually carry their token in the path, so the URL is a secret: only
`scheme://host/…` is ever shown, and urllib3's debug lines about the request are scrubbed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from trading_pipeline.alerts.alert import Alert
from trading_pipeline.alerts.dispatch import AlertDeliveryError
from trading_pipeline.brokers.secrets import Secret, scrub

URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")


def redacted_url(url: str) -> str:
    """`scheme://host[:port]/…`: enough to tell which service, nothing of the token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/…"


class _ScrubSecretsFilter(logging.Filter):
    """Rewrites log records that contain a registered secret (urllib3 logs request paths at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []  # longest first: a whole URL goes before its path

    def add(self, *secrets: str | None) -> None:
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s and len(s) > 1)}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = scrub(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_URL_SCRUBBER = _ScrubSecretsFilter()


def _keep_out_of_http_logs(url: str) -> None:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    _URL_SCRUBBER.add(url, target, parts.path, parts.query, parts.password)
    for name in URLLIB3_LOGGERS:
        logging.getLogger(name).addFilter(_URL_SCRUBBER)  # a no-op when already there


def _server_error(response: requests.Response) -> bool:
    return response.status_code >= 500 or response.status_code == 429


class WebhookChannel:
    """POST the alert as JSON; retry connection failures, 429 and 5xx with backoff; bounded time.

    A request that reached the server but got no answer within `timeout` is not retried: the
    receiver may have acted on it, and the caller's step should not wait several timeouts.
    """

    name = "webhook"

    def __init__(self, url: str, *, timeout: float = 10.0, attempts: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep):
        self._url = Secret(url)
        try:
            parts = urlsplit(self._url.value)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a malformed port; its text would quote the URL
            usable = False
        if not usable:
            # the value itself is a secret: describe it, never echo it
            raise ValueError("the alert webhook URL must look like https://host/...; the value given "
                             "does not (not shown: it is a secret); check TRADING_ALERT_WEBHOOK_URL")
        if timeout <= 0 or attempts < 1:
            raise ValueError(f"webhook timeout must be > 0 and attempts >= 1 (got {timeout}, {attempts})")
        self.target = redacted_url(self._url.value)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        _keep_out_of_http_logs(self._url.value)

    def __repr__(self) -> str:
        return f"WebhookChannel({self.target}, timeout={self.timeout}, attempts={self.attempts})"

    def send(self, alert: Alert) -> None:
        tries = 0
        payload = alert.to_payload()

        def post() -> requests.Response:
            nonlocal tries
            tries += 1
            with requests.Session() as session:
                return session.post(self._url.value, json=payload, timeout=self.timeout,
                                    allow_redirects=False)

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=10 * self.backoff),
            retry=retry_if_exception_type(requests.ConnectionError) | retry_if_result(_server_error),
            sleep=self._sleep,
            # when tries run out: the last response (a 5xx) to report, or the last error raised
            retry_error_callback=lambda state: state.outcome.result(),
        )

        def after() -> str:
            return f"after {tries} attempt{'s' if tries != 1 else ''}"

        try:
            response = retrying(post)
        except requests.Timeout as slow:
            if isinstance(slow, requests.ConnectionError):  # ConnectTimeout: never reached the server
                raise AlertDeliveryError(f"{self.target} could not be reached within {self.timeout} s "
                                         f"{after()}") from None
            raise AlertDeliveryError(f"{self.target} did not answer within {self.timeout} s") from None
        except requests.ConnectionError as refused:
            raise AlertDeliveryError(f"could not connect to {self.target} ({type(refused).__name__}) "
                                     f"{after()}") from None
        except requests.RequestException as failure:
            # requests' texts repeat the URL: give the kind of failure only
            raise AlertDeliveryError(f"{self.target}: {type(failure).__name__}") from None
        if not 200 <= response.status_code < 300:
            reason = scrub(response.reason or "", _URL_SCRUBBER.secrets)  # the server's own words
            raise AlertDeliveryError(f"{self.target} answered HTTP {response.status_code} {reason} {after()}")
