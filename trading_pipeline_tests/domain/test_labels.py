from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy.stats import rankdata

from trading_pipeline.domain.features import BarsError
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline_tests.domain.conftest import make_bars


def test_forward_return_by_hand():
    sessions = [date(2024, 1, d) for d in (2, 3, 4, 5, 8)]
    prices = {"AAA": [10, 11, 12, 15, 9], "BBB": [20, 20, 25, 10, 30]}
    bars = pl.DataFrame([
        {"session": s, "symbol": sym, "open": p, "high": p, "low": p, "close": p * 2.0,
         "volume": 1.0, "adj_close": float(p)}
        for sym, series in prices.items() for s, p in zip(sessions, series)
    ]).with_columns(pl.col("open", "high", "low", "close", "volume").cast(pl.Float64))
    labels = forward_return_labels(bars, horizon=2)
    got = {(r["session"], r["symbol"]): r for r in labels.iter_rows(named=True)}
    # adj_close, not close: AAA 10 -> 12 two sessions later, BBB 20 -> 25
    assert got[(sessions[0], "AAA")]["forward_return"] == pytest.approx(0.2)
    assert got[(sessions[0], "BBB")]["forward_return"] == pytest.approx(0.25)
    assert got[(sessions[1], "AAA")]["forward_return"] == pytest.approx(15 / 11 - 1)
    assert got[(sessions[2], "BBB")]["forward_return"] == pytest.approx(30 / 25 - 1)
    # the better forward return ranks 1, the worse 0
    assert got[(sessions[0], "BBB")]["label"] == 1.0 and got[(sessions[0], "AAA")]["label"] == 0.0
    assert got[(sessions[1], "AAA")]["label"] == 1.0  # 15/11 beats 10/20
    # the last `horizon` sessions have no label yet
    for s in sessions[-2:]:
        for sym in prices:
            assert got[(s, sym)]["forward_return"] is None and got[(s, sym)]["label"] is None


def test_labels_are_percentile_ranks_per_session():
    bars = make_bars(n_symbols=9, n_sessions=40, seed=2)
    labels = forward_return_labels(bars, horizon=5)
    assert labels.columns == ["session", "symbol", "forward_return", "label"]
    sessions = labels["session"].unique().sort()
    assert labels.filter(pl.col("session").is_in(sessions[-5:].implode()))["label"].null_count() == 9 * 5
    for session in sessions[:-5]:
        day = labels.filter(pl.col("session") == session)
        expected = (rankdata(day["forward_return"].to_numpy()) - 1) / (day.height - 1)
        np.testing.assert_allclose(day["label"].to_numpy(), expected)
    assert labels["label"].drop_nulls().is_between(0, 1).all()


def test_horizon_must_be_positive():
    with pytest.raises(ValueError, match="horizon"):
        forward_return_labels(make_bars(2, 10), horizon=0)


def test_bad_bars_are_refused():
    with pytest.raises(BarsError, match="symbol"):
        forward_return_labels(make_bars(2, 10).drop("symbol"))
