"""Protective stops across several sessions at the real paper simulator, on a real warehouse.

After each close the test runs what the daily loop will run: read the broker's positions and
open orders, decide the rebalance orders and the stop plan, then send cancels first (checking
each answer), the rebalance orders next, the new stops last.

Sessions: D0 = Mon 2024-03-04 ... D3 = Thu 2024-03-07. Default simulator costs: 5 bps
slippage on market and stop fills, $0.005 a share with a $1.00 minimum per fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
)
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk import (
    StopPlan,
    plan_stops,
    stop_client_order_id,
    unconfirmed_cancels,
    working_stops_from,
)
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.sim_market import TableMarket

D0, D1, D2, D3 = (date(2024, 3, d) for d in (4, 5, 6, 7))
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
STRATEGY = "momentum"
CALM = (100.0, 101.0, 99.0, 100.0, 1e6)


@dataclass
class LoopResult:
    rebalance: list[OrderIntent]
    plan: StopPlan
    cancel_reports: list[OrderStatusReport]
    submitted: list[OrderStatusReport]


def run_after_close(sim: PaperSimulator, session: date, targets: dict[str, float]) -> LoopResult:
    held = sim.positions()
    positions = {p.symbol: p.quantity for p in held}
    entries = {p.symbol: p.avg_entry_price for p in held}
    target_frame = pl.DataFrame({"symbol": list(targets), "target_shares": list(targets.values())},
                                schema={"symbol": pl.String, "target_shares": pl.Float64})
    orders = rebalance_orders(session, STRATEGY, target_frame, positions, sim.last_prices(),
                              min_order_value=0.0)
    plan = plan_stops(session, STRATEGY, positions, entries, working_stops_from(sim.open_orders()),
                      rebalance_orders=orders)
    cancel_reports = [sim.cancel(cid) for cid in plan.cancel]  # 1. cancels, answers checked
    blocked = unconfirmed_cancels(cancel_reports)
    submitted = [sim.submit(o) for o in orders  # 2. rebalance
                 if not (o.side is Side.SELL and o.symbol in blocked)]
    submitted += [sim.submit(o) for o in plan.place]  # 3. new stops
    return LoopResult(orders, plan, cancel_reports, submitted)


@pytest.fixture
def make_simulator(tmp_path):
    def make(table) -> PaperSimulator:
        sim = PaperSimulator(Warehouse(tmp_path / "warehouse.duckdb"), TableMarket(table))
        assert sim.advance_to(D0) == [D0]
        return sim

    return make


def fills_of(sim: PaperSimulator, client_order_id: str):
    return [f for f in sim.fills(since=EPOCH) if f.client_order_id == client_order_id]


def test_a_stop_is_placed_replaced_on_growth_and_fills_when_the_price_falls_through(make_simulator):
    sim = make_simulator({
        D0: {"AAA": CALM},
        D1: {"AAA": (100.0, 102.0, 99.0, 101.0, 1e6)},
        D2: {"AAA": (110.0, 111.0, 109.0, 110.0, 1e6)},
        D3: {"AAA": (100.0, 101.0, 95.0, 96.0, 1e6)},  # opens above the stop, falls through it
    })

    # D0: buy 100; nothing is held yet, so no stop
    first = run_after_close(sim, D0, {"AAA": 100})
    assert [(o.side, o.quantity) for o in first.rebalance] == [(Side.BUY, 100)]
    assert first.plan.place == [] and first.plan.cancel == []

    # D1: the buy filled at the open, 100 x 1.0005 = 100.05 -> stop at 95.05 (95.0475); buy 50 more
    sim.advance_to(D1)
    (position,) = sim.positions()
    assert (position.quantity, position.avg_entry_price) == pytest.approx((100, 100.05))
    second = run_after_close(sim, D1, {"AAA": 150})
    (stop_1,) = second.plan.place
    assert (stop_1.quantity, stop_1.stop_price, stop_1.order_type) == (100, 95.05, OrderType.STOP)
    assert sim.order_status(stop_1.client_order_id).status is OrderStatus.NEW  # working
    assert {o.client_order_id for o in sim.open_orders()} == {
        stop_1.client_order_id, second.rebalance[0].client_order_id}

    # D2: the buy of 50 filled at 110.055; average entry (100 x 100.05 + 50 x 110.055) / 150
    # = 103.385 -> the stop for 100 is cancelled and one for 150 at 98.22 (98.21575) placed
    sim.advance_to(D2)
    (position,) = sim.positions()
    assert (position.quantity, position.avg_entry_price) == pytest.approx((150, 103.385))
    third = run_after_close(sim, D2, {"AAA": 150})
    assert third.rebalance == []
    assert third.plan.cancel == [stop_1.client_order_id]
    assert [r.status for r in third.cancel_reports] == [OrderStatus.CANCELED]
    (stop_2,) = third.plan.place
    assert (stop_2.quantity, stop_2.stop_price) == (150, 98.22)
    assert stop_2.client_order_id == stop_client_order_id(STRATEGY, D2, "AAA")
    assert stop_2.client_order_id != stop_1.client_order_id
    assert [o.client_order_id for o in sim.open_orders()] == [stop_2.client_order_id]
    assert sim.order_status(stop_2.client_order_id).quantity == 150

    # D3: the low 95 reaches 98.22 without a gap: the stop trades at 98.22 x 0.9995 = 98.17089
    sim.advance_to(D3)
    (fill,) = fills_of(sim, stop_2.client_order_id)
    assert (fill.side, fill.quantity) == (Side.SELL, 150)
    assert fill.price == pytest.approx(98.17089)
    assert fill.commission == pytest.approx(1.00)  # 150 x $0.005 = $0.75, below the minimum
    assert sim.order_status(stop_2.client_order_id).status is OrderStatus.FILLED
    assert fills_of(sim, stop_1.client_order_id) == []
    assert sim.positions() == [] and sim.open_orders() == []
    # cash: 100,000 - 10,005 - 5,502.75 + 14,725.6335 - three $1 commissions
    assert sim.account().cash == pytest.approx(99_214.8835)

    # the next run finds nothing to protect and nothing to cancel
    after = run_after_close(sim, D3, {})
    assert (after.rebalance, after.plan.place, after.plan.cancel) == ([], [], [])


def test_an_exit_by_rebalance_sell_cancels_the_stop_first_and_leaves_no_orphan(make_simulator):
    sim = make_simulator({
        D0: {"AAA": CALM},
        D1: {"AAA": CALM},
        D2: {"AAA": CALM},
        D3: {"AAA": (99.0, 99.5, 90.0, 91.0, 1e6)},  # would trigger the old stop at 95.05
    })
    run_after_close(sim, D0, {"AAA": 100})
    sim.advance_to(D1)  # bought 100 at 100.05
    (stop,) = run_after_close(sim, D1, {"AAA": 100}).plan.place

    sim.advance_to(D2)
    exit_run = run_after_close(sim, D2, {})
    (sell,) = exit_run.rebalance
    assert (sell.side, sell.quantity) == (Side.SELL, 100)
    assert exit_run.plan.cancel == [stop.client_order_id] and exit_run.plan.place == []
    assert [r.status for r in exit_run.cancel_reports] == [OrderStatus.CANCELED]
    (sent,) = exit_run.submitted
    assert (sent.client_order_id, sent.status) == (sell.client_order_id, OrderStatus.NEW)

    # D3: the sell fills at the open, 99 x 0.9995 = 98.9505; the cancelled stop does nothing
    sim.advance_to(D3)
    (fill,) = sim.fills(since=datetime(2024, 3, 7, tzinfo=UTC))
    assert (fill.client_order_id, fill.quantity) == (sell.client_order_id, 100)
    assert fill.price == pytest.approx(98.9505)
    assert sim.order_status(stop.client_order_id).status is OrderStatus.CANCELED
    assert sim.positions() == [] and sim.open_orders() == []
    after = run_after_close(sim, D3, {})
    assert (after.plan.place, after.plan.cancel) == ([], [])


def test_why_the_order_matters_a_sell_sent_while_the_stop_works_is_refused(make_simulator):
    sim = make_simulator({D0: {"AAA": CALM}, D1: {"AAA": CALM}})
    run_after_close(sim, D0, {"AAA": 100})
    sim.advance_to(D1)
    (stop,) = run_after_close(sim, D1, {"AAA": 100}).plan.place

    early_sell = OrderIntent(client_order_id="sell-before-cancel", symbol="AAA", side=Side.SELL,
                             quantity=100, session=D1, strategy=STRATEGY)
    refused = sim.submit(early_sell)

    assert refused.status is OrderStatus.REJECTED
    assert "100 already in working sell orders" in refused.reason
    assert sim.order_status(stop.client_order_id).status is OrderStatus.NEW
