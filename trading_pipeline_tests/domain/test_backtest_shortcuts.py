"""The shortcuts that make the backtest affordable at 3,000 symbols x 20 years give the figures
the plain computation gives: the kill switch on three sessions of the equity history, VaR
windows' finite-return counts from one cumulative count, every position's VaR quantile in one
call, bars laid out whatever their row order. Speed itself is measured by
`trading_pipeline_tests/benchmarks/bench_backtest.py`, never asserted here."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.backtest import BacktestError, _EquityTrack, _Returns, run_backtest
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.risk import KillSwitchRules, evaluate_kill_switch
from trading_pipeline.domain.risk.construction import _clean_prices
from trading_pipeline.domain.risk.var import ReturnMatrix, compute_var, historical_es, historical_var
from trading_pipeline_tests.benchmarks.bench_backtest import CONFIG, backtest_inputs

RULES = KillSwitchRules(max_daily_loss=0.03, max_drawdown=0.08)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([90.0, 95.0, 97.0, 100.0, 100.0, 103.0, 110.0]), min_size=1, max_size=40))
def test_the_kill_switch_decides_on_the_tracked_sessions_as_on_the_whole_history(equities):
    sessions = sessions_between(date(2024, 1, 2), date(2024, 3, 29))[:len(equities)]
    track = _EquityTrack()
    for count, (session, equity) in enumerate(zip(sessions, equities), start=1):
        track.add(session, equity)
        whole = pl.DataFrame({"session": sessions[:count], "equity": equities[:count]})
        # ties at the high included: the drawdown is measured from the first one
        assert evaluate_kill_switch(track.frame(), RULES) == evaluate_kill_switch(whole, RULES)


def gapped_bars() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The benchmark's market at 40 symbols, with holes: S0001 misses 30 sessions (a window
    starting inside them has no bar to measure its first return after them from), S0002
    starts late, S0003 misses one session."""
    scores, bars = backtest_inputs(40, 0.2)
    sessions = bars["session"].unique().sort().to_list()
    holes = ((pl.col("symbol") == "S0001") & pl.col("session").is_between(sessions[200], sessions[229])) | \
            ((pl.col("symbol") == "S0002") & (pl.col("session") < sessions[150])) | \
            ((pl.col("symbol") == "S0003") & (pl.col("session") == sessions[300]))
    return scores, bars.filter(~holes)


def test_a_windows_finite_counts_are_those_counted_on_its_values():
    _, bars = gapped_bars()
    returns = _Returns(bars)
    symbols = list(returns.symbols)
    blanked = 0
    for session in returns.sessions[100:]:
        for lookback in (20, 252):
            window = returns.matrix_window(session, lookback)
            counted = ReturnMatrix(window.sessions, window.symbols, window.values)  # counts its values
            assert window.finite_counts(symbols) == counted.finite_counts(symbols), (session, lookback)
            assert window.finite_counts(["S0001", "S0002", "NOPE"]) == \
                counted.finite_counts(["S0001", "S0002", "NOPE"]), (session, lookback)
            first = returns.sessions.index(window.sessions[0])
            raw = returns.values[first:first + window.height]
            blanked += int(np.isnan(window.values).sum() - np.isnan(raw).sum())
    assert blanked > 0  # some windows start inside a hole: their first return after it is blanked


def test_bars_in_any_row_order_give_the_same_backtest():
    scores, bars = gapped_bars()
    ordered = run_backtest(scores, bars, CONFIG)
    shuffled = run_backtest(scores, bars.sample(fraction=1.0, shuffle=True, seed=3), CONFIG)
    assert ordered.fills.height > 0
    for name in ("daily", "positions", "fills"):
        assert getattr(shuffled, name).equals(getattr(ordered, name)), name
    assert shuffled.notes == ordered.notes


def test_a_bar_given_twice_is_refused_with_the_pair_named():
    scores, bars = backtest_inputs(5, 0.05)
    twice = pl.concat([bars, bars.filter((pl.col("symbol") == "S0003") & (pl.col("session") == date(2024, 12, 2)))])
    with pytest.raises(BacktestError, match=r"S0003 on 2024-12-02 \(2 bars\): keep one bar per symbol and session"):
        run_backtest(scores, twice, CONFIG)


def test_every_positions_var_and_es_are_the_per_column_figures():
    rng = np.random.default_rng(7)
    symbols = [f"S{i:03d}" for i in range(60)]
    sessions = sessions_between(date(2023, 1, 3), date(2024, 6, 28))[:252]
    returns = ReturnMatrix(sessions, symbols, rng.standard_t(3, size=(252, 60)) * 0.02)
    weights = {s: float(w) for s, w in zip(symbols[::6], rng.uniform(-0.1, 0.1, 10))}
    figures = compute_var(weights, returns, 50_000.0, 0.95, 252)
    held = sorted(weights)
    pnl = returns.columns_of(held) * np.array([weights[s] for s in held])
    assert figures.positions["symbol"].to_list() == held
    assert figures.positions["var"].to_list() == [historical_var(pnl[:, i], 0.95) for i in range(len(held))]
    assert figures.positions["es"].to_list() == [historical_es(pnl[:, i], 0.95) for i in range(len(held))]
    assert figures.portfolio_var == historical_var(pnl.sum(axis=1), 0.95)
    assert figures.portfolio_es == historical_es(pnl.sum(axis=1), 0.95)


def test_prices_keep_each_symbols_last_usable_close():
    prices = pl.DataFrame({"symbol": ["A", "B", "C", "D", "A", "E"],
                           "close": [10.0, float("nan"), 0.0, None, 11.0, -1.0]})
    assert _clean_prices(prices) == {"A": 11.0}
