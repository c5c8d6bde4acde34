import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.orders import OrderIntent, Side
from trading_pipeline.domain.risk.limits import (
    RiskLimitBreach,
    RiskLimits,
    check_orders,
    check_target,
    failed,
    raise_if_failed,
)
from trading_pipeline.domain.risk.var import compute_var

D = date(2024, 3, 1)


def returns(n_sessions=30, symbols=("A", "B", "C"), scale=0.01, seed=3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = [date(2024, 1, 1) + timedelta(days=i) for i in range(n_sessions)]
    data = {"session": sessions} | {s: scale * rng.standard_normal(n_sessions) for s in symbols}
    return pl.DataFrame(data)


def target(weights: dict[str, float], equity=100_000.0, price=50.0) -> pl.DataFrame:
    return pl.DataFrame({
        "symbol": list(weights),
        "weight": list(weights.values()),
        "target_shares": [w * equity / price for w in weights.values()],
    })


def by_name(checks):
    return {c.name: c for c in checks}


def test_defaults_and_frozen():
    limits = RiskLimits()
    assert (limits.max_positions, limits.max_position_weight, limits.min_order_value) == (20, 0.10, 100.0)
    assert (limits.cash_reserve, limits.max_gross_leverage, limits.max_orders_per_day) == (0.05, 1.0, 100)
    assert (limits.max_position_var, limits.max_portfolio_var) == (0.005, 0.02)
    assert (limits.var_lookback, limits.var_confidence) == (252, 0.95)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_positions = 50


@pytest.mark.parametrize("field, value, message", [
    ("max_positions", 0, "max_positions"),
    ("max_position_weight", 1.5, "max_position_weight"),
    ("cash_reserve", 1.0, "cash_reserve"),
    ("min_order_value", -1.0, "min_order_value"),
    ("max_gross_leverage", 0.0, "max_gross_leverage"),
    ("var_confidence", 1.0, "var_confidence"),
    ("var_lookback", 5, "var_lookback"),
    ("max_portfolio_var", float("nan"), "max_portfolio_var must be a finite number"),
    ("max_orders_per_day", 2.5, "max_orders_per_day"),
])
def test_invalid_limits_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        RiskLimits(**{field: value})


def test_target_within_every_limit_passes():
    limits = RiskLimits(var_lookback=30, max_position_var=0.05, max_portfolio_var=0.05)
    weights = {"A": 0.1, "B": 0.1, "C": 0.05}
    figures = compute_var(weights, returns(), 100_000, 0.95, 30)
    checks = check_target(target(weights), 100_000, limits, figures)
    assert [c.name for c in checks] == ["max_positions", "max_position_weight", "max_gross_leverage",
                                        "cash_reserve", "max_position_var", "max_portfolio_var"]
    assert failed(checks) == []
    assert by_name(checks)["cash_reserve"].actual == pytest.approx(0.75)
    assert by_name(checks)["max_portfolio_var"].actual == figures.portfolio_var
    raise_if_failed(checks)


def test_each_breach_is_reported_with_its_figures():
    limits = RiskLimits(max_positions=2, max_position_weight=0.3, max_gross_leverage=1.0, cash_reserve=0.5,
                        var_lookback=30, max_position_var=0.001, max_portfolio_var=0.001)
    weights = {"A": 0.4, "B": 0.35, "C": -0.35}
    figures = compute_var(weights, returns(), 100_000, 0.95, 30)
    checks = by_name(check_target(target(weights), 100_000, limits, figures))
    assert checks["max_positions"].actual == 3 and not checks["max_positions"].passed
    assert checks["max_position_weight"].actual == pytest.approx(0.4) and not checks["max_position_weight"].passed
    assert checks["max_gross_leverage"].actual == pytest.approx(1.1) and not checks["max_gross_leverage"].passed
    # short proceeds are not cash: 1 - (0.4 + 0.35)
    assert checks["cash_reserve"].actual == pytest.approx(0.25) and not checks["cash_reserve"].passed
    assert not checks["max_position_var"].passed and not checks["max_portfolio_var"].passed
    assert "exceeds limit" in checks["max_position_weight"].detail
    with pytest.raises(RiskLimitBreach, match="max_positions") as error:
        raise_if_failed(checks.values())
    assert len(error.value.failed) == 6


def test_var_checks_fail_without_matching_figures():
    limits = RiskLimits(var_lookback=30)
    weights = {"A": 0.05}
    checks = by_name(check_target(target(weights), 100_000, limits, None))
    assert not checks["max_position_var"].passed and "no VaR figures" in checks["max_position_var"].detail
    other = compute_var({"A": 0.04}, returns(), 100_000, 0.95, 30)
    checks = by_name(check_target(target(weights), 100_000, limits, other))
    assert not checks["max_portfolio_var"].passed and "other weights" in checks["max_portfolio_var"].detail
    right = compute_var(weights, returns(), 100_000, 0.95, 30)
    checks = by_name(check_target(target(weights), 200_000, limits, right))
    assert not checks["max_portfolio_var"].passed and "equity" in checks["max_portfolio_var"].detail


def order(symbol, side, qty):
    return OrderIntent(client_order_id=f"id-{symbol}-{side}", symbol=symbol, side=side, quantity=qty)


def test_orders_within_limits_pass():
    orders = [order("A", Side.SELL, 10), order("B", Side.BUY, 5)]
    checks = by_name(check_orders(orders, {"A": 20.0, "B": 100.0}, 1_000.0, RiskLimits()))
    assert all(c.passed for c in checks.values())
    assert checks["buying_power"].actual == pytest.approx(500.0)
    assert checks["min_order_value"].actual == pytest.approx(200.0)


def test_order_count_minimum_value_and_buying_power_breaches():
    limits = RiskLimits(max_orders_per_day=2, min_order_value=100.0)
    orders = [order("A", Side.BUY, 1), order("B", Side.BUY, 30), order("C", Side.BUY, 1)]
    checks = by_name(check_orders(orders, {"A": 50.0, "B": 100.0}, 2_000.0, limits))
    assert not checks["max_orders_per_day"].passed and checks["max_orders_per_day"].actual == 3
    assert not checks["min_order_value"].passed
    assert "A $50.00" in checks["min_order_value"].detail and "C (no price)" in checks["min_order_value"].detail
    assert not checks["buying_power"].passed and checks["buying_power"].actual == pytest.approx(3_050.0)


def test_current_positions_exempt_full_exits_but_sales_never_fund_buys():
    orders = [order("A", Side.SELL, 2), order("B", Side.SELL, 10), order("C", Side.BUY, 20)]
    prices = {"A": 30.0, "B": 50.0, "C": 40.0}
    strict = by_name(check_orders(orders, prices, 800.0, RiskLimits()))
    assert not strict["min_order_value"].passed  # A's $60 sale
    assert strict["buying_power"].passed and strict["buying_power"].actual == pytest.approx(800.0)
    held = {"A": 2.0, "B": 25.0}
    relaxed = by_name(check_orders(orders, prices, 799.0, RiskLimits(), current_positions=held))
    assert relaxed["min_order_value"].passed  # A is a full exit
    # sells fill at the next open: their $560 cannot pay for today's $800 of buys
    assert not relaxed["buying_power"].passed and relaxed["buying_power"].limit == 799.0
    partial = by_name(check_orders([order("B", Side.SELL, 1)], prices, 0.0, RiskLimits(), current_positions=held))
    assert not partial["min_order_value"].passed  # $50, and B is not closed


def test_no_orders_pass_trivially_but_still_report():
    checks = check_orders([], {}, 0.0, RiskLimits())
    assert [c.passed for c in checks] == [True, True, True]
    assert not math.isnan(checks[1].actual)
