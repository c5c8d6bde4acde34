"""A fake of Alpaca's market data API (`GET /v2/stocks/bars`) on 127.0.0.1, spoken to by the
real alpaca-py `StockHistoricalDataClient`. Standard library only, plus `serve_market` to start
it with a market of N symbols (and a split) in one call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline_tests.brokers.fakes.alpaca_data.server import FakeAlpacaDataServer
from trading_pipeline_tests.brokers.fakes.alpaca_data.state import (
    MAX_LIMIT,
    CorporateAction,
    DailyBar,
    DataRequest,
    FakeAlpacaData,
)

__all__ = [
    "CorporateAction", "DailyBar", "DataRequest", "FakeAlpacaData", "FakeAlpacaDataServer", "PlannedSplit",
    "data_environment", "load_frame", "serve_market",
]


@dataclass(frozen=True)
class PlannedSplit:
    """`symbol` splits `ratio`-for-1 at the open of `ex_date` (a session)."""

    symbol: str
    ex_date: date
    ratio: float = 2.0


def load_frame(fake: FakeAlpacaData, bars: pl.DataFrame) -> None:
    """Give the fake every row of a BAR_SCHEMA frame as traded (unadjusted) daily bars."""
    for (symbol,), rows in bars.sort("session").partition_by("symbol", as_dict=True).items():
        fake.add_bars(symbol, [DailyBar(s, o, h, l, c, v) for s, o, h, l, c, v in rows.select(
            "session", "open", "high", "low", "close", "volume").iter_rows()])


@contextmanager
def serve_market(symbols: int = 20, first: date = date(2020, 1, 2), last: date = date(2022, 12, 30), *,
                 split: PlannedSplit | None = None, seed: int = 7, bars: pl.DataFrame | None = None,
                 page_cap: int = MAX_LIMIT, key_id: str = "fake-data-key",
                 secret_key: str = "fake-data-secret") -> Iterator[FakeAlpacaDataServer]:
    """Start the fake with `symbols` symbols of the project's synthetic market (seed `seed`,
    sessions `first`..`last`; or the rows of `bars` instead) and an optional split; yields the
    running server (`server.url`, `server.fake.bar_requests()`, `server.fake.actions`). Give it
    the trading fake's keys when both run: the project sends the same APCA keys to each."""
    from trading_pipeline.domain.calendar import sessions_between
    from trading_pipeline.domain.market import SyntheticMarket

    fake = FakeAlpacaData(key_id=key_id, secret_key=secret_key, page_cap=page_cap)
    if bars is None:
        bars = SyntheticMarket(seed=seed, universe_size=symbols).bars(sessions_between(first, last))
    load_frame(fake, bars)
    if split is not None:
        if split.symbol not in fake.history:
            raise ValueError(f"the split names {split.symbol}, which the fake does not hold")
        fake.split(split.symbol, split.ex_date, split.ratio)
    with FakeAlpacaDataServer(fake) as server:
        yield server


def data_environment(server: FakeAlpacaDataServer, universe: Sequence[str] | None = None,
                     feed: str = "iex") -> Mapping[str, str]:
    """The environment variables that point the project's Alpaca data source at this fake
    (add them to a monkeypatched environment); the universe defaults to every symbol it holds."""
    fake = server.fake
    return {
        "TRADING_DATA_SOURCE": "alpaca",
        "TRADING_ALPACA_DATA_FEED": feed,
        "TRADING_UNIVERSE": ",".join(universe or sorted(fake.history)),
        "APCA_API_DATA_URL": server.url,
        "APCA_API_KEY_ID": fake.key_id,
        "APCA_API_SECRET_KEY": fake.secret_key,
    }
