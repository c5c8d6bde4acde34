"""Alpaca credentials, endpoint and limits. Imports nothing from alpaca-py (it pulls in pandas)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from trading_pipeline.brokers.secrets import Secret

ENV_KEY_ID = "APCA_API_KEY_ID"
ENV_SECRET_KEY = "APCA_API_SECRET_KEY"
ENV_BASE_URL = "APCA_API_BASE_URL"

# The SDK's own endpoints (alpaca.common.enums.BaseURL); a test checks they still agree.
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
_PAPER_HOST = urlsplit(PAPER_URL).hostname
_LIVE_HOST = urlsplit(LIVE_URL).hostname


@dataclass(frozen=True)
class AlpacaConfig:
    """What the Alpaca adapter needs. Credentials are `Secret`s: masked in every repr.

    `paper` picks Alpaca's paper or live endpoint; `url_override` (APCA_API_BASE_URL)
    replaces it, e.g. with a proxy or a local fake. Every HTTP request waits at most
    `timeout_seconds`; transient failures are tried `max_attempts` times in all, with
    exponential backoff starting at `retry_base_delay` seconds.
    """

    api_key_id: Secret
    api_secret_key: Secret
    paper: bool
    url_override: str | None = None
    timeout_seconds: float = 10
    max_attempts: int = 3
    retry_base_delay: float = 0.5

    def __post_init__(self) -> None:
        for name in ("api_key_id", "api_secret_key"):
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, Secret):
                object.__setattr__(self, name, Secret(value.strip()))
        if isinstance(self.url_override, str):
            object.__setattr__(self, "url_override", normalise_base_url(self.url_override))
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid Alpaca settings: " + "; ".join(problems))

    def _problems(self):
        for name, env_name in (("api_key_id", ENV_KEY_ID), ("api_secret_key", ENV_SECRET_KEY)):
            value = getattr(self, name)
            if not isinstance(value, Secret) or not value.value.strip():
                yield f"{name} is empty (set {env_name})"
        if not isinstance(self.paper, bool):
            yield f"paper must be True or False, got {self.paper!r}"
        if self.url_override is not None:
            yield from _url_problems(self.url_override, self.paper)
        if not (isinstance(self.timeout_seconds, (int, float)) and math.isfinite(self.timeout_seconds)
                and self.timeout_seconds > 0):
            yield f"timeout_seconds must be positive seconds, got {self.timeout_seconds!r}"
        if not (isinstance(self.max_attempts, int) and not isinstance(self.max_attempts, bool)
                and self.max_attempts >= 1):
            yield f"max_attempts must be a whole number >= 1, got {self.max_attempts!r}"
        if not (isinstance(self.retry_base_delay, (int, float)) and self.retry_base_delay >= 0):
            yield f"retry_base_delay must be >= 0 seconds, got {self.retry_base_delay!r}"

    @classmethod
    def from_values(
        cls,
        api_key_id: str | None,
        api_secret_key: str | None,
        *,
        paper: bool,
        base_url: str | None = None,
        **limits,
    ) -> AlpacaConfig:
        """Build from the raw APCA_* values (strings or None); a missing one is named by its
        environment variable. An empty `base_url` means Alpaca's own endpoint for `paper`."""
        missing = [
            env_name
            for env_name, value in ((ENV_KEY_ID, api_key_id), (ENV_SECRET_KEY, api_secret_key))
            if value is None or not str.strip(value)
        ]
        if missing:
            raise ValueError(
                f"Alpaca needs {' and '.join(missing)}: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment (or .env) to the "
                f"{'paper' if paper else 'live'} account's API key id and secret key"
            )
        override = base_url.strip() if isinstance(base_url, str) and base_url.strip() else None
        return cls(Secret(str.strip(api_key_id)), Secret(str.strip(api_secret_key)), paper,
                   url_override=override, **limits)

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (without the /v2 the SDK appends)."""
        return self.url_override or (PAPER_URL if self.paper else LIVE_URL)

    @property
    def secrets(self) -> tuple[Secret, Secret]:
        return (self.api_key_id, self.api_secret_key)


def normalise_base_url(raw: str) -> str:
    """`raw` without surrounding blanks, a trailing slash or a trailing /v2 (the SDK adds /v2)."""
    url = raw.strip().rstrip("/")
    if url.endswith("/v2"):
        url = url[: -len("/v2")]
    return url


def _url_problems(url: str, paper: bool):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield (f"{ENV_BASE_URL} must be an http(s) URL such as {PAPER_URL}, got {url!r}")
        return
    if paper and parts.hostname == _LIVE_HOST:
        yield (f"{ENV_BASE_URL} points at Alpaca's live endpoint ({LIVE_URL}) but the paper "
               f"endpoint was asked for: that is real money; unset {ENV_BASE_URL} or use {PAPER_URL}")
    if not paper and parts.hostname == _PAPER_HOST:
        yield (f"{ENV_BASE_URL} points at Alpaca's paper endpoint ({PAPER_URL}) but the live "
               f"endpoint was asked for; unset {ENV_BASE_URL} or use {LIVE_URL}")
