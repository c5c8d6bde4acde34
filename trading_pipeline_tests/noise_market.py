"""A market with nothing to find: every symbol's daily returns are independent draws, so no
feature of past bars says anything about future returns. A model trained on it is a noise
model by construction, the case the signal gate must refuse."""

from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_pipeline.domain.market.bars import BAR_SCHEMA


def noise_bars(sessions: Sequence[date], n_symbols: int = 12, seed: int = 0) -> pl.DataFrame:
    """Bars (BAR_SCHEMA, sorted by session then symbol) of a random walk per symbol: i.i.d.
    close-to-close returns (1.5 % a day), an independent overnight gap, a range around open and
    close, and i.i.d. volume."""
    rng = np.random.default_rng(seed)
    days, symbols = len(sessions), [f"NZ{i:02d}" for i in range(n_symbols)]
    log_returns = rng.normal(0.0, 0.015, (days, n_symbols))
    close = 50.0 * np.exp(np.cumsum(log_returns, axis=0))
    previous = np.vstack([np.full((1, n_symbols), 50.0), close[:-1]])
    open_ = previous * np.exp(rng.normal(0.0, 0.003, (days, n_symbols)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.004, (days, n_symbols))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.004, (days, n_symbols))))
    volume = np.round(rng.lognormal(13.0, 0.3, (days, n_symbols)))
    return pl.DataFrame({
        "session": np.repeat(np.asarray(sessions, dtype="datetime64[D]"), n_symbols),
        "symbol": symbols * days,
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(), "close": close.ravel(),
        "volume": volume.ravel(), "adj_close": close.ravel(),
    }).with_columns(pl.col("session").cast(pl.Date)).select(
        [pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items()])
