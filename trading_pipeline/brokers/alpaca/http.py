"""Building alpaca-py's TradingClient with bounded time, and sorting its errors.

alpaca-py 0.44 sets no HTTP timeout and retries 429/504 answers itself, sleeping 3 s with
`time.sleep` up to 3 times (RESTClient._retry / _retry_wait / _retry_codes; TradingClient
offers no argument for them and reads no environment variable). We:

- mount a `requests` adapter on the client's session that gives every request a timeout
  (requests' documented transport hook; the SDK's `Session.request` calls pass none);
- turn the SDK's own retry off (`_retry = 0`, so 429/504 raise `APIError` at once) and
  retry in the adapter instead, with `call_with_retries`: one bounded policy for all
  transient failures, with an injectable sleep.

Both touch private attributes of the pinned SDK (alpaca-py >=0.44,<0.45); `build_client`
checks they exist and the tests prove both take effect.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from requests.exceptions import (
    ChunkedEncodingError,
    ConnectionError,
    JSONDecodeError,
    Timeout,
)

from trading_pipeline.brokers.alpaca.config import AlpacaConfig

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CREDENTIAL_STATUSES = frozenset({401, 403})
_MAX_REASON = 300


class TimeoutHTTPAdapter(HTTPAdapter):
    """A requests transport adapter that bounds every request it sends by `timeout` seconds
    (connect and each read), unless the caller gave a timeout of its own."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)  # retries belong to call_with_retries, not urllib3
        self.timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def build_client(config: AlpacaConfig):
    """A TradingClient for `config`'s endpoint with a timeout and without the SDK's retry."""
    from alpaca.trading.client import (
        TradingClient,  # heavy (pandas): only when a broker is built
    )

    client = TradingClient(
        config.api_key_id.value,
        config.api_secret_key.value,
        paper=config.paper,
        url_override=config.url_override,
    )
    for private in ("_session", "_retry", "_base_url"):
        if not hasattr(client, private):
            raise RuntimeError(
                f"alpaca-py's TradingClient has no {private} attribute any more: this adapter "
                "is written for alpaca-py 0.44; pin that version or update brokers/alpaca/http.py"
            )
    client._retry = 0
    adapter = TimeoutHTTPAdapter(config.timeout_seconds)
    client._session.mount("https://", adapter)
    client._session.mount("http://", adapter)
    return client


def client_base_url(client) -> str:
    """The base URL the client sends requests to (the SDK stores an enum or a string)."""
    return str(getattr(client._base_url, "value", client._base_url))


def http_status(error: BaseException) -> int | None:
    """The HTTP status of an alpaca-py `APIError` (None for anything else)."""
    from alpaca.common.exceptions import APIError

    return error.status_code if isinstance(error, APIError) else None


def is_transient(error: BaseException) -> bool:
    """Worth another try: no answer, a cut connection, a timeout, 429 or a 5xx."""
    if isinstance(error, (ConnectionError, Timeout, ChunkedEncodingError)):
        return True
    return http_status(error) in TRANSIENT_STATUSES


def is_unreadable(error: BaseException) -> bool:
    """An answer that came back but is not the JSON / shape alpaca-py expects."""
    return isinstance(error, (ValidationError, JSONDecodeError))


def error_reason(error: BaseException) -> str:
    """Alpaca's own message for an `APIError` ({"code": ..., "message": ...}), else its text.
    Not scrubbed: callers scrub with the config's secrets."""
    text = str(error)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
