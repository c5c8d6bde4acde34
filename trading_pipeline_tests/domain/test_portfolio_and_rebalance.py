from datetime import date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.orders import OrderPurpose, Side, make_client_order_id
from trading_pipeline.domain.rebalance import rebalance_orders

D = date(2024, 3, 1)


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
