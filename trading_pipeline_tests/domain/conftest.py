import os
from datetime import date

import numpy as np
import polars as pl
import pytest

# MLflow reports usage over the network unless told not to; tests reach only loopback.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def make_bars(n_symbols: int = 20, n_sessions: int = 300, seed: int = 0,
              start: date = date(2022, 1, 3), signal: float = 0.6) -> pl.DataFrame:
    """Deterministic daily bars on XNYS sessions with a learnable signal.

    Each symbol's expected daily return is a slowly changing (AR(1)) drift, so recent returns
    carry information about forward returns; `signal` scales that drift against the noise.
    """
    from trading_pipeline.domain.calendar import sessions_back, sessions_between

    sessions = sessions_between(start, date(2035, 1, 1))[:n_sessions]
    if len(sessions) < n_sessions:  # the calendar ends about a year ahead
        sessions = sessions_back(sessions[-1], n_sessions)
    rng = np.random.default_rng(seed)
    drift = np.zeros(n_symbols)
    closes = np.empty((n_sessions, n_symbols))
    price = 20 + 80 * rng.random(n_symbols)
    for t in range(n_sessions):
        drift = 0.97 * drift + 0.0015 * signal * rng.standard_normal(n_symbols)
        market = 0.008 * rng.standard_normal()
        price = price * np.exp(drift + market + 0.015 * rng.standard_normal(n_symbols))
        closes[t] = price
    opens = closes * np.exp(0.004 * rng.standard_normal(closes.shape))
    spread = np.abs(0.01 * rng.standard_normal(closes.shape))
    highs = np.maximum(opens, closes) * (1 + spread)
    lows = np.minimum(opens, closes) * (1 - spread)
    volume = np.round(1e6 * np.exp(0.4 * rng.standard_normal(closes.shape)))
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    return pl.DataFrame({
        "session": np.repeat(np.array(sessions, dtype="datetime64[D]"), n_symbols),
        "symbol": symbols * n_sessions,
        "open": opens.ravel(),
        "high": highs.ravel(),
        "low": lows.ravel(),
        "close": closes.ravel(),
        "volume": volume.ravel(),
        # a constant dividend-style adjustment factor keeps adj_close distinct from close
        "adj_close": (closes * 0.98).ravel(),
    }).with_columns(pl.col("session").cast(pl.Date))


def training_frames(n_symbols: int, scored_sessions: int, seed: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features of `make_bars` from the first session with a full history on (`scored_sessions`
    of them), and their horizon-5 labels: what `train_model` takes."""
    from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
    from trading_pipeline.domain.labels import forward_return_labels

    bars = make_bars(n_symbols=n_symbols, n_sessions=MIN_HISTORY_SESSIONS + scored_sessions, seed=seed)
    features = compute_features(bars)
    first = features["session"].unique().sort()[MIN_HISTORY_SESSIONS]
    return features.filter(pl.col("session") >= first), forward_return_labels(bars, horizon=5)


@pytest.fixture(scope="session")
def bars() -> pl.DataFrame:
    return make_bars()
