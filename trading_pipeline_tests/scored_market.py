"""A warehouse of synthetic bars with planted-signal scores stored as predictions: what the
daily loop's trading steps need, without training a model. Shared by the backtest parity test
and the crash-injection test.

The scores are the synthetic market's planted signal (5-session reversal plus 60-session
momentum), computed with the real feature pipeline from the stored bars: deterministic, and they
reshuffle the top of the book every few sessions, so the book trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_pipeline.domain.calendar import sessions_back, sessions_between
from trading_pipeline.domain.features import compute_features
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.services.replay import store_predictions
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse


def store_scored_market(warehouse: Warehouse, window: Sequence[date], *, seed: int, universe_size: int,
                        history_sessions: int, model_version: str) -> tuple[SyntheticMarket, pl.DataFrame, pl.DataFrame]:
    """Bars from `history_sessions` before the window to its end, and the window's scores;
    returns the market, the stored bars and the scores."""
    market = SyntheticMarket(seed=seed, universe_size=universe_size)
    market_store.append_history(
        warehouse, market.bars(sessions_between(sessions_back(window[0], history_sessions)[0], window[-1])))
    bars = market_store.read_bars_through(warehouse, window[-1])
    scores = compute_features(bars).filter(pl.col("session").is_in(list(window))).select(
        "session", "symbol", (-pl.col("ret_5") + 0.5 * pl.col("ret_60")).alias("score"))
    store_predictions(warehouse, scores, model_version=model_version)
    return market, bars, scores
