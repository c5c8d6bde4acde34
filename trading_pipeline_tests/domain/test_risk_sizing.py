from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.risk.limits import RiskLimits
from trading_pipeline.domain.risk.sizing import size_within_var
from trading_pipeline.domain.risk.var import InsufficientHistory, compute_var

LIMITS = RiskLimits(var_lookback=40, max_position_var=0.005, max_portfolio_var=0.012)


def returns(vols=(0.005, 0.02, 0.04, 0.03), n=40, seed=7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = [date(2024, 1, 1) + timedelta(days=i) for i in range(n)]
    market = 0.01 * rng.standard_normal(n)
    data = {f"S{i}": market + vol * rng.standard_normal(n) for i, vol in enumerate(vols)}
    return pl.DataFrame({"session": sessions} | data)


def test_each_position_and_the_book_end_within_limits_and_never_grow():
    weights = {"S0": 0.1, "S1": 0.1, "S2": 0.1, "S3": 0.1}
    before = compute_var(weights, returns(), 100_000, 0.95, 40)
    assert before.max_position_var > LIMITS.max_position_var  # the test needs a binding limit
    sized, figures, notes = size_within_var(weights, returns(), 100_000, LIMITS)
    assert figures.max_position_var <= LIMITS.max_position_var
    assert figures.portfolio_var <= LIMITS.max_portfolio_var
    assert all(0 < sized[s] <= weights[s] for s in weights)
    # historical VaR is positively homogeneous: a scaled position sits at its limit
    worst = figures.positions.sort("var")["var"][-1]
    assert worst == pytest.approx(LIMITS.max_position_var, rel=1e-6)
    low_risk = before.positions.filter(pl.col("var") <= LIMITS.max_position_var)["symbol"].to_list()
    assert notes and all(not n.startswith(f"{s}:") for s in low_risk for n in notes)
    assert figures.weights() == sized


def test_book_limit_scales_everything_by_one_factor():
    loose = RiskLimits(var_lookback=40, max_position_var=1.0, max_portfolio_var=0.004)
    weights = {"S0": 0.2, "S1": 0.1, "S3": 0.05}
    sized, figures, notes = size_within_var(weights, returns(), 50_000, loose)
    ratios = {s: sized[s] / weights[s] for s in weights}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
    assert figures.portfolio_var == pytest.approx(0.004, rel=1e-6)
    assert len(notes) == 1 and notes[0].startswith("book:")


def test_within_limits_nothing_changes_and_result_is_deterministic():
    weights = {"S0": 0.05, "S1": 0.01}
    sized, figures, notes = size_within_var(weights, returns(), 100_000, LIMITS)
    assert sized == weights and notes == []
    again = size_within_var(pl.DataFrame({"symbol": ["S0", "S1"], "weight": [0.05, 0.01]}),
                            returns(), 100_000, LIMITS)
    assert again[0] == sized and again[1].positions.equals(figures.positions)


def test_long_short_stays_dollar_neutral():
    weights = {"S0": 0.1, "S1": 0.1, "S2": -0.1, "S3": -0.1}
    sized, figures, _ = size_within_var(weights, returns(), 100_000, LIMITS, keep_dollar_neutral=True)
    longs = sum(w for w in sized.values() if w > 0)
    shorts = -sum(w for w in sized.values() if w < 0)
    assert longs == pytest.approx(shorts) and longs < 0.2
    assert figures.max_position_var <= LIMITS.max_position_var


def test_missing_history_is_an_error_not_zero_risk():
    with pytest.raises(InsufficientHistory, match="S9"):
        size_within_var({"S0": 0.05, "S9": 0.05}, returns(), 100_000, LIMITS)
