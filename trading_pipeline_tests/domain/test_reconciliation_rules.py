from datetime import UTC, datetime

import polars as pl

from trading_pipeline.domain.orders import FillReport, OrderStatus, OrderStatusReport, PositionReport, Side
from trading_pipeline.domain.reconciliation import (
    BreakKind,
    LikelyCause,
    expected_positions,
    foreign_fills,
    order_breaks,
    position_breaks,
)


def report(cid, filled, status=OrderStatus.FILLED, qty=10):
    return OrderStatusReport(cid, "A", Side.BUY, qty, status, filled_quantity=filled)


def test_matching_sides_have_no_breaks():
    assert position_breaks({"A": 10}, [PositionReport("A", 10, 5.0)]) == []
    assert order_breaks({"o1": "A"}, {"o1": report("o1", 10)}, {"o1": 10}, [], {"o1"}) == []


def test_manual_trade_shows_as_position_break():
    [b] = position_breaks({}, [PositionReport("B", 7, 5.0)])
    assert (b.kind, b.likely_cause, b.ledger_quantity, b.broker_quantity) == (
        BreakKind.POSITION_MISMATCH, LikelyCause.MANUAL_TRADE, 0, 7)


def test_missed_fill_names_the_order_and_explains_the_position():
    breaks = order_breaks({"o1": "A"}, {"o1": report("o1", 10)}, {"o1": 4}, [], {"o1"})
    [b] = breaks
    assert b.kind is BreakKind.MISSED_FILL and b.client_order_id == "o1"
    [p] = position_breaks({"A": 4}, [PositionReport("A", 10, 5.0)], missed_fill_symbols={"A"})
    assert p.likely_cause is LikelyCause.FILL_WE_MISSED


def test_order_lost_by_broker_and_foreign_order():
    breaks = order_breaks({"o1": "A"}, {"o1": None}, {}, [report("hand-1", 0, OrderStatus.NEW)], {"o1"})
    kinds = {(b.kind, b.client_order_id) for b in breaks}
    assert kinds == {(BreakKind.UNKNOWN_ORDER, "o1"), (BreakKind.FOREIGN_ORDER, "hand-1")}


def test_quantity_mismatch_when_both_sides_hold():
    [b] = position_breaks({"A": 10}, [PositionReport("A", 12, 5.0)])
    assert b.likely_cause is LikelyCause.QUANTITY_MISMATCH


def test_foreign_fill_and_expected_positions():
    at = datetime(2024, 1, 2, tzinfo=UTC)
    fills = [FillReport("f1", "o1", "A", Side.BUY, 5, 10.0, at), FillReport("f2", "x", "A", Side.SELL, 2, 10.0, at)]
    [b] = foreign_fills(fills, {"o1"})
    assert b.kind is BreakKind.FOREIGN_FILL and b.client_order_id == "x"
    frame = pl.DataFrame({"symbol": ["A", "A", "B"], "side": ["buy", "sell", "buy"], "quantity": [5.0, 2.0, 1.0]})
    assert expected_positions(frame) == {"A": 3.0, "B": 1.0}
