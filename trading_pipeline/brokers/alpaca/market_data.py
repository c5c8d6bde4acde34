"""Daily bars from Alpaca's market data API through alpaca-py's `StockHistoricalDataClient`.

Each fetch asks for the traded prices (`adjustment=raw`) and the split- and dividend-adjusted
ones (`adjustment=all`) of a list of symbols over a range of sessions, one request per
adjustment while the answer fits one page (Alpaca pages at 10,000 bars across all symbols; the
SDK follows `next_page_token`). The answers are read raw (`raw_data=True`: no pandas, no
per-bar models) into a BAR_SCHEMA frame whose `adj_close` is the adjusted close.

Rate limit: Alpaca allows about 200 requests a minute on a free plan and answers 429 beyond
it. Every HTTP request (each page) takes a token from a `RateLimiter`; a 429 is waited out
(Retry-After, else X-RateLimit-Reset, else a second) and sent again, inside the transport, so
a page in the middle of a paginated answer is retried without starting over. After
`max_rate_limit_retries` refusals in a row the fetch fails with a clear `MarketDataError`.
The SDK's own 429 retry (3 s sleeps) is turned off, as in `http.py`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import polars as pl
from requests.adapters import HTTPAdapter

from trading_pipeline.brokers.rate_limit import Bucket, RateLimiter
from trading_pipeline.brokers.retry import call_with_retries
from trading_pipeline.brokers.secrets import Secret, scrub
from trading_pipeline.brokers.universe_bars import UniverseBarSource
from trading_pipeline.domain.market.bars import MarketDataError, empty_bars, validate_bars

FEEDS = ("iex", "sip")
DATA_URL = "https://data.alpaca.markets"  # alpaca.common.enums.BaseURL.DATA
NEW_YORK = ZoneInfo("America/New_York")
PAGE_SIZE = 10_000  # what alpaca-py asks for per page (Alpaca's maximum)
SYMBOLS_PER_REQUEST = 500  # keeps the query string short
_PRICE_KEYS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


@dataclass(frozen=True)
class AlpacaDataConfig:
    """Credentials (the trading keys: Alpaca's data API takes the same ones), the feed
    (`iex` on a free plan, `sip` with a subscription) and the limits of every request."""

    api_key_id: Secret
    api_secret_key: Secret
    feed: str = "iex"
    url_override: str | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 3  # connection failures and 5xx, with backoff
    requests_per_minute: int = 200
    max_rate_limit_retries: int = 4
    max_rate_limit_wait: float = 60.0  # seconds; a longer Retry-After is capped to this

    def __post_init__(self) -> None:
        for name in ("api_key_id", "api_secret_key"):
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, Secret):
                object.__setattr__(self, name, Secret(value.strip()))
        problems = []
        for name, env in (("api_key_id", "APCA_API_KEY_ID"), ("api_secret_key", "APCA_API_SECRET_KEY")):
            if not str.__str__(getattr(self, name) or "").strip():
                problems.append(f"{name} is empty (set {env}: Alpaca's market data takes the trading keys)")
        if self.feed not in FEEDS:
            problems.append(f"feed {self.feed!r} is not one of {', '.join(FEEDS)} (TRADING_ALPACA_DATA_FEED: "
                            "iex on a free plan, sip with a market data subscription)")
        if self.url_override is not None and not self.url_override.startswith(("http://", "https://")):
            problems.append(f"the data URL {self.url_override!r} must start with http:// or https:// (APCA_API_DATA_URL)")
        if not (self.requests_per_minute >= 1 and self.max_rate_limit_retries >= 0 and self.max_attempts >= 1
                and math.isfinite(self.timeout_seconds) and self.timeout_seconds > 0):
            problems.append("requests_per_minute, max_attempts must be >= 1, max_rate_limit_retries >= 0, "
                            "timeout_seconds positive")
        if problems:
            raise ValueError("invalid Alpaca market data settings: " + "; ".join(problems))

    @property
    def secrets(self) -> tuple[str, str]:
        return (self.api_key_id, self.api_secret_key)


def retry_wait(headers, now: float, default: float = 1.0) -> float:
    """Seconds to wait after a 429: Retry-After (seconds or an HTTP date), else the
    X-RateLimit-Reset epoch second, else `default`."""
    after = headers.get("Retry-After")
    if after:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    return default


class RateLimitedAdapter(HTTPAdapter):
    """A requests transport that bounds each request's time, spaces requests by the limiter,
    waits out 429 answers and sends the request again (at most `max_retries_429` times),
    and counts what it sent: `requests` (HTTP requests, one per page) and `rate_limited`."""

    def __init__(self, config: AlpacaDataConfig, limiter: RateLimiter, sleep: Callable[[float], None],
                 wall_clock: Callable[[], float]) -> None:
        super().__init__(max_retries=0)
        self.config, self.limiter, self.sleep, self.wall_clock = config, limiter, sleep, wall_clock
        self.requests = 0
        self.rate_limited = 0
        self.waited_seconds = 0.0

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.config.timeout_seconds
        refusals = 0
        while True:
            self.limiter.acquire("requests")
            response = super().send(request, **kwargs)
            self.requests += 1
            if response.status_code != 429 or refusals >= self.config.max_rate_limit_retries:
                return response
            refusals += 1
            self.rate_limited += 1
            wait = min(retry_wait(response.headers, self.wall_clock()), self.config.max_rate_limit_wait)
            response.close()
            self.waited_seconds += wait
            self.sleep(wait)


class AlpacaBarSource(UniverseBarSource):
    """Alpaca's daily bars for a chosen universe, as a `MarketDataSource` and as the fetcher
    the incremental market data service uses (`fetch_bars`, `fetch_traded`, `fetch_adjusted`)."""

    name = "alpaca"

    def __init__(self, config: AlpacaDataConfig, universe: Sequence[str], *,
                 sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time, limiter: RateLimiter | None = None) -> None:
        from alpaca.data.historical.stock import StockHistoricalDataClient  # heavy: only when used

        self.config = config
        self.universe = tuple(sorted(set(universe)))
        self._sleep = sleep
        self._client = StockHistoricalDataClient(
            config.api_key_id.value, config.api_secret_key.value, raw_data=True, url_override=config.url_override)
        if not hasattr(self._client, "_retry") or not hasattr(self._client, "_session"):
            raise RuntimeError("alpaca-py's StockHistoricalDataClient has no _retry/_session attribute any more: "
                               "this source is written for alpaca-py 0.44; pin it or update alpaca/market_data.py")
        self._client._retry = 0  # 429 is waited out in the transport, by the venue's own headers
        limiter = limiter or RateLimiter({"requests": Bucket(config.requests_per_minute, 60.0)})
        self.transport = RateLimitedAdapter(config, limiter, sleep, wall_clock)
        self._client._session.mount("https://", self.transport)
        self._client._session.mount("http://", self.transport)

    def __repr__(self) -> str:
        return f"AlpacaBarSource(feed={self.config.feed!r}, symbols={len(self.universe)})"

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (one per page, retries after a 429 included)."""
        return self.transport.requests

    # -- MarketDataSource ------------------------------------------------------------------------

    def close(self) -> None:
        self._client._session.close()

    # -- fetching ----------------------------------------------------------------------------------

    def fetch_bars(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """Validated BAR_SCHEMA bars of `symbols` from `first` to `last`: traded prices, with
        the adjusted close beside them. A symbol Alpaca has no bars for has no rows."""
        traded = self.fetch_traded(symbols, first, last)
        if traded.is_empty():
            return empty_bars()
        adjusted = self.fetch_adjusted(symbols, first, last).select("session", "symbol", pl.col("close").alias("adj_close"))
        merged = traded.join(adjusted, on=["session", "symbol"], how="left")
        return validate_bars(merged, f"Alpaca market data ({self.config.feed} feed, {first} .. {last})")

    def fetch_traded(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """session, symbol, open, high, low, close, volume as traded (`adjustment=raw`)."""
        return self._fetch(symbols, first, last, "raw")

    def fetch_adjusted(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """The same columns split- and dividend-adjusted as Alpaca gives them today
        (`adjustment=all`). The latest bars, with no action after them, equal the traded ones."""
        return self._fetch(symbols, first, last, "all")

    def _fetch(self, symbols: Sequence[str], first: date, last: date, adjustment: str) -> pl.DataFrame:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        if first > last or not symbols:
            return _frame({})
        wanted = sorted(set(symbols))
        frames = []
        for start in range(0, len(wanted), SYMBOLS_PER_REQUEST):
            request = StockBarsRequest(
                symbol_or_symbols=wanted[start:start + SYMBOLS_PER_REQUEST], timeframe=TimeFrame.Day,
                # midnight to midnight New York time: Alpaca stamps a daily bar at the session's midnight
                start=datetime.combine(first, clock_time(0), NEW_YORK),
                end=datetime.combine(last, clock_time(23, 59), NEW_YORK),
                adjustment=Adjustment(adjustment), feed=DataFeed(self.config.feed), limit=None)
            frames.append(_frame(self._call(lambda r=request: self._client.get_stock_bars(r), adjustment)))
        return pl.concat(frames)

    def _call(self, fetch: Callable[[], dict], adjustment: str) -> dict:
        from alpaca.common.exceptions import APIError

        from trading_pipeline.brokers.alpaca.http import http_status, is_transient

        try:
            answer = call_with_retries(
                fetch, broker="Alpaca market data", operation=f"daily bars ({adjustment})",
                attempts=self.config.max_attempts, is_transient=lambda e: is_transient(e) and http_status(e) != 429,
                secrets=self.config.secrets, sleep=self._sleep)
        except APIError as refused:
            raise MarketDataError(self._explain(refused)) from None
        except Exception as failed:
            if isinstance(failed, MarketDataError):
                raise
            raise MarketDataError(scrub(f"Alpaca market data failed: {failed}", self.config.secrets)) from None
        return answer or {}

    def _explain(self, refused) -> str:
        from trading_pipeline.brokers.alpaca.http import error_reason, http_status

        status, reason = http_status(refused), scrub(error_reason(refused), self.config.secrets)
        if status == 429:
            return (f"Alpaca market data kept refusing with 429 (rate limit) after "
                    f"{self.config.max_rate_limit_retries} waits ({self.transport.waited_seconds:.0f} s): "
                    f"{reason}. Another program may share these keys' limit; run the step again later. "
                    "Nothing was stored.")
        if status in (401, 403) and self.config.feed == "sip" and "sip" in reason.lower():
            return (f"Alpaca refused the sip feed ({status}: {reason}): a free plan has only "
                    "TRADING_ALPACA_DATA_FEED=iex. Nothing was stored.")
        if status in (401, 403):
            return (f"Alpaca market data refused the keys ({status}: {reason}): check APCA_API_KEY_ID and "
                    "APCA_API_SECRET_KEY (paper keys work for market data). Nothing was stored.")
        return f"Alpaca market data refused the request ({status}: {reason}). Nothing was stored."


def _frame(raw: dict) -> pl.DataFrame:
    """The raw `{SYMBOL: [{"t", "o", "h", "l", "c", "v", ...}]}` answer as session, symbol,
    open, high, low, close, volume (a daily bar's `t` is its session's midnight in New York)."""
    symbols, stamps = [], []
    columns: dict[str, list] = {name: [] for name in _PRICE_KEYS.values()}
    for symbol, bars in raw.items():
        for bar in bars or ():
            symbols.append(symbol)
            stamps.append(bar.get("t"))
            for key, name in _PRICE_KEYS.items():
                columns[name].append(bar.get(key))
    frame = pl.DataFrame({"t": stamps, "symbol": symbols, **columns},
                         schema={"t": pl.String, "symbol": pl.String, **{n: pl.Float64 for n in _PRICE_KEYS.values()}})
    return frame.select(
        pl.col("t").str.to_datetime(time_zone="UTC").dt.convert_time_zone("America/New_York").dt.date().alias("session"),
        "symbol", *_PRICE_KEYS.values())


__all__ = ["AlpacaBarSource", "AlpacaDataConfig", "RateLimitedAdapter", "retry_wait"]
