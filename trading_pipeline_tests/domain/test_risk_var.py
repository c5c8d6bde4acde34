"""VaR and expected shortfall against figures worked out from a history written out here."""

import math
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.risk.var import InsufficientHistory, compute_var, wide_returns

# 20 sessions of daily returns for two symbols. A's two worst days are -0.050 and -0.031;
# B's are -0.040 and -0.028. Sorted, the book's P&L is checked below with plain numpy.
A = [0.010, -0.020, 0.005, -0.050, 0.012, 0.003, -0.031, 0.008, 0.015, -0.004,
     0.002, -0.011, 0.020, 0.001, -0.015, 0.006, 0.009, -0.007, 0.004, 0.011]
B = [-0.005, 0.012, -0.040, 0.007, 0.003, -0.028, 0.010, -0.002, 0.006, 0.004,
     -0.013, 0.009, -0.001, 0.015, 0.002, -0.009, 0.005, 0.008, -0.006, 0.001]
SESSIONS = [date(2024, 1, 1) + timedelta(days=i) for i in range(20)]


def long_frame(series: dict[str, list[float]], sessions=SESSIONS) -> pl.DataFrame:
    rows = [(s, sym, r) for sym, values in series.items() for s, r in zip(sessions, values)]
    return pl.DataFrame(rows, schema={"session": pl.Date, "symbol": pl.String, "return": pl.Float64}, orient="row")


def test_single_position_var_is_the_second_worst_day_at_90_percent():
    # "lower" quantile at 1 - 0.9 over 20 sessions: index floor(0.1 * 19) = 1, the second worst.
    figures = compute_var({"A": 0.1}, long_frame({"A": A}), equity=50_000, confidence=0.9, lookback=20)
    row = figures.positions.row(0, named=True)
    assert row["var"] == pytest.approx(0.0031)  # 0.1 * 0.031
    assert row["var_dollars"] == pytest.approx(155.0)  # 0.0031 * 50,000
    assert row["es"] == pytest.approx((0.0050 + 0.0031) / 2)
    assert figures.portfolio_var == pytest.approx(0.0031)


def test_book_var_uses_the_joint_history_not_a_sum_of_parts():
    weights = {"A": 0.3, "B": -0.2}
    figures = compute_var(weights, long_frame({"A": A, "B": B}), equity=1_000_000, confidence=0.9, lookback=20)
    a, b = np.array(A), np.array(B)
    book = np.sort(0.3 * a - 0.2 * b)
    assert figures.portfolio_var == pytest.approx(-book[1])
    assert figures.portfolio_es == pytest.approx(-book[:2].mean())
    assert figures.portfolio_var_dollars == pytest.approx(-book[1] * 1_000_000)
    # a short loses on B's best days (0.015, 0.012): the second worst loss is 0.2 * 0.012
    assert figures.positions.filter(pl.col("symbol") == "B")["var"][0] == pytest.approx(0.0024)
    parts = figures.positions["var"].sum()
    assert figures.portfolio_var != pytest.approx(parts)


def test_perfect_hedge_has_no_book_risk_but_each_leg_has():
    mirror = [-r for r in A]
    figures = compute_var({"A": 0.1, "M": 0.1}, long_frame({"A": A, "M": mirror}), 10_000, 0.9, 20)
    assert figures.portfolio_var == pytest.approx(0.0)
    assert (figures.positions["var"] > 0).all()


def test_parametric_var_from_mean_and_sample_covariance():
    weights = {"A": 0.5, "B": 0.25}
    figures = compute_var(weights, long_frame({"A": A, "B": B}), 10_000, confidence=0.95, lookback=20)
    n = 20
    mean_a, mean_b = sum(A) / n, sum(B) / n
    var_a = sum((x - mean_a) ** 2 for x in A) / (n - 1)
    var_b = sum((x - mean_b) ** 2 for x in B) / (n - 1)
    cov_ab = sum((x - mean_a) * (y - mean_b) for x, y in zip(A, B)) / (n - 1)
    sigma = math.sqrt(0.25 * var_a + 0.0625 * var_b + 2 * 0.5 * 0.25 * cov_ab)
    z = NormalDist().inv_cdf(0.95)
    assert figures.portfolio_parametric_var == pytest.approx(z * sigma - (0.5 * mean_a + 0.25 * mean_b))
    row_a = figures.positions.filter(pl.col("symbol") == "A").row(0, named=True)
    assert row_a["parametric_var"] == pytest.approx(z * 0.5 * math.sqrt(var_a) - 0.5 * mean_a)


def test_only_the_last_lookback_sessions_count():
    older = [date(2023, 12, 27) + timedelta(days=i) for i in range(5)]
    crash = long_frame({"A": [-0.5] * 5}, older)
    figures = compute_var({"A": 0.1}, pl.concat([crash, long_frame({"A": A})]), 10_000, 0.9, 20)
    assert figures.portfolio_var == pytest.approx(0.0031)
    assert figures.first_session == SESSIONS[0]
    assert figures.last_session == SESSIONS[-1]


def test_wide_and_long_returns_give_the_same_figures():
    long = long_frame({"A": A, "B": B})
    wide = pl.DataFrame({"session": SESSIONS, "A": A, "B": B})
    assert wide_returns(long).equals(wide.select("session", "A", "B"))
    from_long = compute_var({"A": 0.2, "B": 0.1}, long, 10_000, 0.9, 20)
    from_wide = compute_var({"A": 0.2, "B": 0.1}, wide, 10_000, 0.9, 20)
    assert from_long.positions.equals(from_wide.positions)
    assert from_long.portfolio_var == from_wide.portfolio_var


def test_short_or_gappy_history_is_an_error_naming_the_symbol():
    gappy = B[:]
    gappy[7] = float("nan")
    frame = long_frame({"A": A, "B": gappy})
    with pytest.raises(InsufficientHistory, match=r"B \(19 of 20\)") as error:
        compute_var({"A": 0.1, "B": 0.1}, frame, 10_000, 0.9, 20)
    assert error.value.symbols == ("B",)
    with pytest.raises(InsufficientHistory, match="C"):
        compute_var({"C": 0.1}, frame, 10_000, 0.9, 20)
    with pytest.raises(InsufficientHistory, match="needs 30 sessions"):
        compute_var({"A": 0.1}, frame, 10_000, 0.9, 30)
    # a symbol with no weight needs no history
    assert compute_var({"A": 0.1, "B": 0.0}, frame, 10_000, 0.9, 20).positions["symbol"].to_list() == ["A"]


def test_bad_arguments_are_refused():
    frame = long_frame({"A": A})
    with pytest.raises(ValueError, match="equity"):
        compute_var({"A": 0.1}, frame, 0.0, 0.9, 20)
    with pytest.raises(ValueError, match="finite"):
        compute_var({"A": float("nan")}, frame, 1.0, 0.9, 20)
    with pytest.raises(ValueError, match="duplicated"):
        compute_var({"A": 0.1}, pl.concat([frame, frame]), 1.0, 0.9, 20)


def test_empty_book_has_zero_risk():
    figures = compute_var({}, long_frame({"A": A}), 10_000, 0.95, 20)
    assert figures.positions.height == 0
    assert figures.portfolio_var == 0.0 and figures.max_position_var == 0.0


def test_proxied_symbols_take_the_sessions_median_return_on_their_gaps():
    from datetime import date as _date

    from trading_pipeline.domain.risk.var import InsufficientHistory, compute_var as _var, history_counts

    sessions = [_date(2024, 1, d) for d in range(2, 12)]
    wide = pl.DataFrame({"session": sessions,
                         "A": [0.01 * (i % 3 - 1) for i in range(10)],
                         "B": [0.02 * (i % 2) - 0.01 for i in range(10)],
                         "C": [None, 0.5] + [0.0] * 8})  # C: one gap
    assert history_counts(wide, ["A", "C"], 10) == {"A": 10, "C": 9}
    with pytest.raises(InsufficientHistory):
        _var({"C": 0.1}, wide, 1000.0, 0.9, 10)
    figures = _var({"C": 0.1}, wide, 1000.0, 0.9, 10, proxied=["C"])
    filled = wide.with_columns(pl.when(pl.col("C").is_null()).then(
        pl.concat_list("A", "B").list.median()).otherwise(pl.col("C")).alias("C"))
    assert figures.portfolio_var == pytest.approx(_var({"C": 0.1}, filled, 1000.0, 0.9, 10).portfolio_var)
