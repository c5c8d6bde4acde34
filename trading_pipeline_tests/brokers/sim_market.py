"""Deterministic bars for the paper simulator's tests: a seeded random walk, and hand-written
tables for scenarios whose fills are computed by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from trading_pipeline.domain.calendar import sessions_between

BAR_COLUMNS = ("symbol", "open", "high", "low", "close", "volume")


def frame(rows: dict[str, tuple[float, float, float, float, float]]) -> pl.DataFrame:
    """A bar frame from {symbol: (open, high, low, close, volume)}."""
    return pl.DataFrame(
        [(symbol, *map(float, values)) for symbol, values in rows.items()],
        schema={c: (pl.String if c == "symbol" else pl.Float64) for c in BAR_COLUMNS},
        orient="row",
    )


class TableMarket:
    """Bars written out by hand: {session: {symbol: (open, high, low, close, volume)}}.
    Records which sessions were asked for, so tests can see what the simulator read."""

    def __init__(self, table: dict[date, dict[str, tuple[float, float, float, float, float]]]):
        self.table = table
        self.requested: list[date] = []

    def __call__(self, session: date) -> pl.DataFrame:
        self.requested.append(session)
        rows = self.table.get(session)
        return frame(rows) if rows else frame({})


class RandomWalkMarket:
    """Daily bars of `symbols` over `count` XNYS sessions from `start`, a lognormal random walk
    with plenty of volume; the same seed always gives the same bars."""

    def __init__(self, symbols=("AAA", "BBB", "CCC", "DDD"), start=date(2024, 1, 2), count=60,
                 seed=11, volume=1_000_000.0):
        self.sessions = sessions_between(start, date(start.year + 1, 12, 31))[:count]
        rng = np.random.default_rng(seed)
        self._bars: dict[date, pl.DataFrame] = {}
        closes = {s: 50.0 + 25.0 * i for i, s in enumerate(symbols)}
        for session in self.sessions:
            rows = {}
            for symbol in symbols:
                previous = closes[symbol]
                open_ = previous * float(np.exp(rng.normal(0, 0.004)))
                close = open_ * float(np.exp(rng.normal(0, 0.012)))
                high = max(open_, close) * (1 + abs(float(rng.normal(0, 0.004))))
                low = min(open_, close) * (1 - abs(float(rng.normal(0, 0.004))))
                rows[symbol] = (open_, high, low, close, volume)
                closes[symbol] = close
            self._bars[session] = frame(rows).with_columns(pl.lit(session).alias("session"))

    def __call__(self, session: date) -> pl.DataFrame:
        return self._bars.get(session, frame({}))
