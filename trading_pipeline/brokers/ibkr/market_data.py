"""Daily bars from TWS / IB Gateway through ib_insync's `reqHistoricalData`, within IB's
historical data pacing rules.

Per symbol: `TRADES` (traded prices, ending at the last wanted session) and `ADJUSTED_LAST`
(split- and dividend-adjusted; IB serves it only up to now, with an empty end time). IB
refuses with error 162 ("pacing violation") beyond: 60 requests in any 10 minutes, an
identical request within 15 seconds, 6 requests for one contract within 2 seconds. Every
request first waits until all three rules allow it on the client side (`IbPacer`); a pacing
violation that still comes (another program on the same login) is waited out and the request
sent again, `max_pacing_retries` times, then the fetch fails with a clear `MarketDataError`.
"No data" (162) and "no security definition" (200) mean the symbol has no bars: no rows.

The data connection uses its own client id (the trading client's + 1) so fetching bars never
disturbs the order connection.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import polars as pl

from trading_pipeline.brokers.ibkr.config import IbkrConfig
from trading_pipeline.brokers.ibkr.session import IbkrSession
from trading_pipeline.brokers.universe_bars import UniverseBarSource
from trading_pipeline.domain.market.bars import MarketDataError, empty_bars, validate_bars

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
OHLCV_SCHEMA = {"session": pl.Date(), "symbol": pl.String(), **{c: pl.Float64() for c in PRICE_COLUMNS}}
NO_DATA_CODES = {162: "HMDS query returned no data", 200: "No security definition"}


@dataclass(frozen=True)
class IbkrPacing:
    """IB's historical data pacing rules (https://interactivebrokers.github.io/tws-api/historical_limitations.html)."""

    window_requests: int = 60
    window_seconds: float = 600.0
    identical_seconds: float = 15.0
    same_contract_requests: int = 6
    same_contract_seconds: float = 2.0
    max_pacing_retries: int = 3
    violation_wait: float = 15.0  # seconds to wait after a pacing violation before asking again
    # IB times a request when it arrives, we when we send it: each window is kept this much longer
    margin: float = 0.1

    def __post_init__(self) -> None:
        if not (self.window_requests >= 1 and self.same_contract_requests >= 1 and self.max_pacing_retries >= 0
                and min(self.window_seconds, self.identical_seconds, self.same_contract_seconds) > 0
                and self.violation_wait >= 0 and self.margin >= 0):
            raise ValueError(f"invalid IB pacing rules: {self}")


@dataclass(frozen=True)
class IbkrDataConfig:
    connection: IbkrConfig
    pacing: IbkrPacing = field(default_factory=IbkrPacing)
    use_rth: bool = True  # regular trading hours: the session's own open and close

    @classmethod
    def from_values(cls, *, trading_env: str, host=None, port=None, client_id=None, gateway=None,
                    pacing: IbkrPacing | None = None, **overrides) -> IbkrDataConfig:
        """The trading connection's settings (IBKR_*), on the next client id."""
        trading = IbkrConfig.from_values(trading_env=trading_env, host=host, port=port, client_id=client_id,
                                         gateway=gateway, **overrides)
        return cls(replace(trading, client_id=trading.client_id + 1), pacing or IbkrPacing())


class IbkrBarSource(UniverseBarSource):
    """IB's daily bars for a chosen universe, as a `MarketDataSource` and as the fetcher the
    incremental market data service uses (`fetch_bars`, `fetch_traded`, `fetch_adjusted`)."""

    name = "ibkr"

    def __init__(self, config: IbkrDataConfig, universe: Sequence[str], *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = date.today, session: IbkrSession | None = None) -> None:
        self.config = config
        self.universe = tuple(sorted(set(universe)))
        self._sleep, self._clock, self._today = sleep, clock, today
        self._session = session or IbkrSession(config.connection, sleep=sleep)
        self._pacer = IbPacer(config.pacing, clock=clock, sleep=sleep)
        self.requests = 0
        self.pacing_violations = 0
        self.no_data: set[str] = set()

    def __repr__(self) -> str:
        return f"IbkrBarSource(client_id={self.config.connection.client_id}, symbols={len(self.universe)})"

    # -- MarketDataSource ------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    # -- fetching ----------------------------------------------------------------------------------

    def fetch_bars(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        traded = self.fetch_traded(symbols, first, last)
        if traded.is_empty():
            return empty_bars()
        have = sorted(set(traded["symbol"].to_list()))
        adjusted = self.fetch_adjusted(have, first, last).select("session", "symbol", pl.col("close").alias("adj_close"))
        merged = traded.join(adjusted, on=["session", "symbol"], how="left")
        return validate_bars(merged, f"IBKR historical data ({first} .. {last})")

    def fetch_traded(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """session, symbol, open, high, low, close, volume as traded (TRADES)."""
        end = f"{last:%Y%m%d} 23:59:59 US/Eastern"
        return self._each(symbols, first, last, "TRADES", end, _duration(first, last))

    def fetch_adjusted(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """The same columns adjusted for splits and dividends as of now (ADJUSTED_LAST, which
        IB serves only up to now: asked with an empty end time, then cut at `last`)."""
        return self._each(symbols, first, last, "ADJUSTED_LAST", "", _duration(first, max(last, self._today())))

    def _each(self, symbols, first: date, last: date, what: str, end: str, duration: str) -> pl.DataFrame:
        frames = [self._one(symbol, what, end, duration) for symbol in sorted(set(symbols))] if first <= last else []
        if not frames:
            return pl.DataFrame(schema=OHLCV_SCHEMA)
        return pl.concat(frames).filter(pl.col("session").is_between(first, last))

    def _one(self, symbol: str, what: str, end: str, duration: str) -> pl.DataFrame:
        from ib_insync import RequestError, Stock

        contract = Stock(symbol, "SMART", "USD")
        key = (symbol, what, end, duration)
        rules = self.config.pacing
        for attempt in range(rules.max_pacing_retries + 1):
            self._pace(symbol, key)
            self.requests += 1

            async def ask(ib, contract=contract):
                raising = ib.RaiseRequestErrors
                ib.RaiseRequestErrors = True  # an error ends the request with its code, not an empty list
                try:
                    return await ib.reqHistoricalDataAsync(
                        contract, end, duration, "1 day", what, self.config.use_rth, formatDate=1,
                        timeout=self.config.connection.request_timeout)
                finally:
                    ib.RaiseRequestErrors = raising

            try:
                bars = self._session.run(f"historical {what} bars of {symbol}", ask)
            except RequestError as refused:
                self._pacer.answered()
                if refused.code in NO_DATA_CODES and "pacing" not in refused.message.lower():
                    self.no_data.add(symbol)
                    return pl.DataFrame(schema=OHLCV_SCHEMA)
                if "pacing" not in refused.message.lower():
                    raise MarketDataError(f"IBKR refused historical {what} bars of {symbol} (error {refused.code}: "
                                          f"{refused.message}). Nothing was stored.") from None
                self.pacing_violations += 1
                if attempt < rules.max_pacing_retries:
                    self._sleep(rules.violation_wait)
                continue
            self._pacer.answered()
            return _frame(symbol, bars)
        raise MarketDataError(
            f"IBKR kept refusing historical {what} bars of {symbol} with pacing violations (error 162) after "
            f"{rules.max_pacing_retries} waits of {rules.violation_wait:g} s: another program on this login may "
            "be fetching history too; run the step again later. Nothing was stored.")

    def _pace(self, symbol: str, key: tuple) -> None:
        self._pacer.wait(symbol, key)


class IbPacer:
    """Holds requests back until IB's three pacing rules all allow one more at the same
    instant (buckets taken one after another would let a wait on one rule bunch requests up
    under another). Remembers the requests of the longest window."""

    def __init__(self, rules: IbkrPacing, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rules, self._clock, self._sleep = rules, clock, sleep
        self._sent: deque[tuple[float, tuple, str]] = deque()
        self.waited_seconds = 0.0

    def wait(self, symbol: str, key: tuple) -> None:
        while True:
            now = self._clock()
            delay = self._delay(symbol, key, now)
            if delay <= 0:
                self._sent.append((now, key, symbol))
                return
            self.waited_seconds += delay
            self._sleep(delay)

    def answered(self) -> None:
        """The last request was answered: count it from now. IB counts a request from when it
        arrives, which on a slow link or a loaded machine is later than when it was sent; the
        answer comes later still, so pacing from it never runs ahead of IB's clock."""
        if self._sent:
            _, key, symbol = self._sent.pop()
            self._sent.append((self._clock(), key, symbol))

    def _delay(self, symbol: str, key: tuple, now: float) -> float:
        rules, pad = self.rules, 1 + self.rules.margin
        window, identical, same = (rules.window_seconds * pad, rules.identical_seconds * pad,
                                   rules.same_contract_seconds * pad)
        while self._sent and now - self._sent[0][0] >= max(window, identical, same):
            self._sent.popleft()
        delays = [0.0]
        in_window = [t for t, _, _ in self._sent if now - t < window]
        if len(in_window) >= rules.window_requests:
            delays.append(in_window[-rules.window_requests] + window - now)
        delays += [t + identical - now for t, k, _ in self._sent if k == key and now - t < identical]
        for_contract = [t for t, _, s in self._sent if s == symbol and now - t < same]
        if len(for_contract) >= rules.same_contract_requests:
            delays.append(for_contract[-rules.same_contract_requests] + same - now)
        return max(delays)


def _duration(first: date, last: date) -> str:
    """IB's durationStr covering `first` to `last`: days up to a year, then whole years."""
    days = (last - first).days + 1
    return f"{max(days, 1)} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


def _frame(symbol: str, bars) -> pl.DataFrame:
    rows = [(bar.date, symbol, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars or ()]
    return pl.DataFrame(rows, schema=OHLCV_SCHEMA, orient="row")


__all__ = ["IbkrBarSource", "IbkrDataConfig", "IbkrPacing"]
