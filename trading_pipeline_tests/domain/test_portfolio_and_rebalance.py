from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.orders import OrderPurpose, Side, make_client_order_id
from trading_pipeline.domain.portfolio import PortfolioInputError, PortfolioLimits, build_target_portfolio
from trading_pipeline.domain.rebalance import rebalance_orders

D = date(2024, 3, 1)


def frames(scores: dict[str, float], prices: dict[str, float]):
    return (pl.DataFrame({"symbol": list(scores), "score": list(scores.values())}),
            pl.DataFrame({"symbol": list(prices), "close": list(prices.values())}))


def test_top_k_equal_weight_whole_shares():
    preds, prices = frames({"A": 0.9, "B": 0.5, "C": 0.1}, {"A": 10.0, "B": 33.0, "C": 7.0})
    target = build_target_portfolio(D, preds, prices, 10_000, PortfolioLimits(top_k=2, max_position_weight=0.5))
    assert target["symbol"].to_list() == ["A", "B"]
    # 95% investable over 2 names: 4,750 each; whole shares round down
    assert target["target_shares"].to_list() == [475.0, 143.0]
    assert target["weight"].to_list() == pytest.approx([0.475, 143 * 33 / 10_000])


def test_non_finite_scores_are_dropped_and_all_bad_is_an_error():
    preds, prices = frames({"A": float("nan"), "B": 1.0}, {"A": 10.0, "B": 10.0})
    target = build_target_portfolio(D, preds, prices, 10_000, PortfolioLimits(top_k=5))
    assert target["symbol"].to_list() == ["B"]
    preds, prices = frames({"A": float("inf"), "B": float("nan")}, {"A": 10.0, "B": 10.0})
    with pytest.raises(PortfolioInputError, match="NaN or infinite"):
        build_target_portfolio(D, preds, prices, 10_000, PortfolioLimits())


def test_zero_equity_is_refused_and_unpriced_symbol_is_skipped():
    preds, prices = frames({"A": 1.0, "B": 2.0}, {"A": 10.0})
    with pytest.raises(PortfolioInputError, match="equity"):
        build_target_portfolio(D, preds, prices, 0.0, PortfolioLimits())
    target = build_target_portfolio(D, preds, prices, 1_000, PortfolioLimits())
    assert target["symbol"].to_list() == ["A"]


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-5, 5), min_size=1, max_size=40),
    price=st.floats(1, 2_000),
    equity=st.floats(1_000, 5_000_000),
    top_k=st.integers(1, 30),
    max_positions=st.integers(1, 30),
    max_weight=st.floats(0.01, 1.0),
    reserve=st.floats(0.0, 0.5),
)
def test_target_always_within_limits(scores, price, equity, top_k, max_positions, max_weight, reserve):
    symbols = [f"S{i}" for i in range(len(scores))]
    preds = pl.DataFrame({"symbol": symbols, "score": scores})
    prices = pl.DataFrame({"symbol": symbols, "close": [price * (1 + i / 10) for i in range(len(scores))]})
    limits = PortfolioLimits(top_k=top_k, max_positions=max_positions,
                             max_position_weight=max_weight, cash_reserve=reserve)
    target = build_target_portfolio(D, preds, prices, equity, limits)
    assert target.height <= min(top_k, max_positions)
    assert (target["weight"] <= max_weight + 1e-12).all()
    assert target["weight"].sum() <= 1 - reserve + 1e-9
    assert (target["target_shares"] == target["target_shares"].floor()).all()


def test_rebalance_sells_first_exits_fully_and_skips_small_orders():
    targets = pl.DataFrame({"symbol": ["A", "B", "C"], "target_shares": [10.0, 3.0, 100.0]})
    current = {"A": 4.0, "B": 2.0, "Z": 1.0}
    prices = {"A": 50.0, "B": 20.0, "C": 10.0, "Z": 5.0}
    orders = rebalance_orders(D, "s", targets, current, prices, min_order_value=100)
    summary = [(o.symbol, o.side, o.quantity) for o in orders]
    # Z is a full exit (kept even though $5 < $100); B's 1 share ($20) is below the minimum
    assert summary == [("Z", Side.SELL, 1.0), ("A", Side.BUY, 6.0), ("C", Side.BUY, 100.0)]
    assert orders[1].client_order_id == make_client_order_id("s", D, "A", Side.BUY, OrderPurpose.REBALANCE)


def test_client_order_ids_are_deterministic_and_distinct():
    a = make_client_order_id("s", D, "A", Side.BUY, OrderPurpose.REBALANCE)
    assert a == make_client_order_id("s", D, "A", Side.BUY, OrderPurpose.REBALANCE)
    others = {make_client_order_id("s", D, "A", Side.SELL, OrderPurpose.REBALANCE),
              make_client_order_id("t", D, "A", Side.BUY, OrderPurpose.REBALANCE),
              make_client_order_id("s", date(2024, 3, 4), "A", Side.BUY, OrderPurpose.REBALANCE),
              make_client_order_id("s", D, "A", Side.BUY, OrderPurpose.STOP_LOSS)}
    assert a not in others and len(others) == 4
    assert len(a) <= 48


def test_buys_are_cut_to_buying_power_best_target_first():
    targets = pl.DataFrame({"symbol": ["B", "A", "C"], "target_shares": [10.0, 10.0, 10.0]})
    prices = {"A": 100.0, "B": 100.0, "C": 100.0, "Z": 50.0}
    orders = rebalance_orders(D, "s", targets, {"Z": 10.0}, prices, min_order_value=100,
                              buying_power=1_600.0)
    summary = [(o.symbol, o.side, o.quantity) for o in orders]
    # the sell of Z always goes; B (ranked first) gets its 10, A what is left (5 at $101)
    assert summary == [("Z", Side.SELL, 10.0), ("B", Side.BUY, 10.0), ("A", Side.BUY, 5.0)]


@settings(max_examples=60, deadline=None)
@given(
    targets=st.lists(st.tuples(st.floats(1, 500), st.integers(0, 300)), min_size=1, max_size=20),
    buying_power=st.floats(0, 200_000),
    min_order=st.floats(0, 1_000),
)
def test_orders_never_exceed_buying_power_or_fall_under_the_minimum(targets, buying_power, min_order):
    symbols = [f"S{i}" for i in range(len(targets))]
    prices = {s: p for s, (p, _) in zip(symbols, targets)}
    frame = pl.DataFrame({"symbol": symbols, "target_shares": [float(q) for _, q in targets]})
    orders = rebalance_orders(D, "s", frame, {}, prices, min_order, buying_power)
    assert sum(o.quantity * prices[o.symbol] for o in orders) <= buying_power + 1e-6
    assert all(o.quantity * prices[o.symbol] >= min_order for o in orders)
