"""The vectorised top-k screen equals its plain-loop reference, ties, gaps and NaN scores included."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.backtest import BacktestError, run_topk_vectorised
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline_tests.benchmarks.bench_backtest import random_walk_market, same_topk, topk_reference

SESSIONS = sessions_between(date(2024, 1, 2), date(2024, 3, 28))


@pytest.fixture(scope="module")
def inputs():
    bars = random_walk_market(30, SESSIONS, seed=9)
    rng = np.random.default_rng(2)
    scores = bars.select("session", "symbol").with_columns(
        score=pl.Series(rng.normal(size=bars.height)).round(1))  # rounded: many ties
    # a NaN score, a missing score, and a symbol without a bar on a session it is scored
    scores = scores.with_columns(pl.when((pl.col("symbol") == "S0003") & (pl.col("session") == SESSIONS[5]))
                                 .then(float("nan")).otherwise(pl.col("score")).alias("score"))
    scores = scores.filter(~((pl.col("symbol") == "S0004") & (pl.col("session") == SESSIONS[7])))
    bars = bars.filter(~((pl.col("symbol") == "S0005") & pl.col("session").is_in(SESSIONS[10:12])))
    return scores, bars


@pytest.mark.parametrize(("top_k", "cost_bps"), [(1, 0.0), (5, 10.0), (29, 25.0)])
def test_equals_the_plain_loop(inputs, top_k, cost_bps):
    scores, bars = inputs
    ours = run_topk_vectorised(scores, bars, top_k=top_k, cost_bps=cost_bps)
    reference = topk_reference(scores, bars, top_k=top_k, cost_bps=cost_bps)
    assert ours.height == len(SESSIONS) - 1
    assert same_topk(ours, reference)
    assert (ours["turnover"] <= 2 + 1e-12).all() and ours["turnover"][0] == pytest.approx(1.0)


def test_costs_lower_the_return_by_the_turnover(inputs):
    scores, bars = inputs
    free = run_topk_vectorised(scores, bars, top_k=5, cost_bps=0.0)
    paid = run_topk_vectorised(scores, bars, top_k=5, cost_bps=50.0)
    assert np.allclose((free["net_return"] - paid["net_return"]).to_numpy(), (paid["turnover"] * 0.005).to_numpy())


def test_bad_arguments_are_named(inputs):
    scores, bars = inputs
    with pytest.raises(BacktestError, match="top_k"):
        run_topk_vectorised(scores, bars, top_k=0)
    with pytest.raises(BacktestError, match="adj_close"):
        run_topk_vectorised(scores, bars.drop("adj_close"))
