"""What the order path's faster persistence must keep: a plan is recorded whole or not at all
(one insert per table), and the paper simulator's kept view of its account (marks, positions,
working orders) is used only while nothing has changed it, whoever changed it."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side
from trading_pipeline.domain.session_plan import PlannedOrder, SessionPlan, Step
from trading_pipeline.storage.ledger import PLANNED, Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.sim_market import TableMarket

D0, D1 = date(2024, 3, 4), date(2024, 3, 5)
ACCOUNT, STRATEGY = "simulator", "daily_ml"


def _intent(cid: str, symbol: str, side: Side = Side.BUY, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol=symbol, side=side, quantity=quantity,
                       session=D0, strategy=STRATEGY, **kw)


def _plan(*orders: PlannedOrder) -> SessionPlan:
    return SessionPlan(session=D0, target=None, cancels=(), orders=orders, failures=(), notes=())


def _record(ledger: Ledger, plan: SessionPlan) -> bool:
    return ledger.record_plan(ACCOUNT, plan, strategy=STRATEGY, model_version="1", equity=1e5,
                              buying_power=1e5)


def test_a_plan_is_recorded_in_sending_order_with_one_planned_event_per_order(tmp_path):
    ledger = Ledger(Warehouse(tmp_path / "w.duckdb"))
    orders = [PlannedOrder(_intent(f"o{i}", s), Step.REBALANCE, False) for i, s in enumerate("CAB")]
    orders.append(PlannedOrder(_intent("stop", "C", Side.SELL, order_type=OrderType.STOP, stop_price=90.0),
                               Step.STOP, True))
    assert _record(ledger, _plan(*orders))
    rows = ledger.planned_orders(ACCOUNT, STRATEGY, D0)
    assert rows["client_order_id"].to_list() == ["o0", "o1", "o2", "stop"]
    assert rows["plan_seq"].to_list() == [0, 1, 2, 3]
    assert rows["status"].unique().to_list() == [PLANNED]
    assert rows["reduces_exposure"].to_list() == [False, False, False, True]
    assert rows.filter(pl.col("client_order_id") == "stop").select("order_type", "stop_price").row(0) == ("stop", 90.0)
    events = ledger.warehouse.query("select client_order_id, status from ledger_order_events")
    assert sorted(events.rows()) == sorted((cid, PLANNED) for cid in ["o0", "o1", "o2", "stop"])
    assert not _record(ledger, _plan(*orders))  # once per session: the second is refused quietly


def test_a_plan_whose_order_id_is_taken_records_nothing(tmp_path):
    ledger = Ledger(Warehouse(tmp_path / "w.duckdb"))
    ledger.record_intent(_intent("taken", "AAA"), ACCOUNT, dry_run=False, status="filled")
    plan = _plan(PlannedOrder(_intent("fresh", "BBB"), Step.REBALANCE, False),
                 PlannedOrder(_intent("taken", "AAA"), Step.REBALANCE, False))
    with pytest.raises(ValueError, match="order id taken of the plan for 2024-03-04 is already in the ledger"):
        _record(ledger, plan)
    assert ledger.session_plan(ACCOUNT, STRATEGY, D0) is None
    assert ledger.order("fresh") is None
    assert ledger.order("taken")["status"] == "filled"  # what was recorded stays as it was


def test_a_plan_repeating_an_order_id_records_nothing(tmp_path):
    ledger = Ledger(Warehouse(tmp_path / "w.duckdb"))
    twice = PlannedOrder(_intent("twice", "AAA"), Step.REBALANCE, False)
    with pytest.raises(ValueError, match="order id twice"):
        _record(ledger, _plan(twice, twice))
    assert ledger.session_plan(ACCOUNT, STRATEGY, D0) is None and ledger.order("twice") is None


MARKET = TableMarket({D0: {"AAA": (100, 101, 99, 100, 1e6), "BBB": (50, 51, 49, 50, 1e6)},
                      D1: {"AAA": (100, 101, 99, 100, 1e6), "BBB": (50, 51, 49, 50, 1e6)}})


def _simulator(warehouse: Warehouse) -> PaperSimulator:
    return PaperSimulator(warehouse, MARKET, SimulatorConfig(initial_cash=1_600.0, slippage_bps=0.0,
                                                             commission_per_share=0.0,
                                                             commission_min=0.0))


def test_buying_power_freed_by_another_simulators_cancel_is_seen_at_once(tmp_path):
    """The kept view would still count the canceled buy's reservation: the cancel changed the
    account, so the next submit reads it again."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    first = _simulator(warehouse)
    first.advance_to(D0)
    assert first.submit(_intent("a", "AAA")).status is OrderStatus.NEW  # reserves $1,000
    assert first.submit(_intent("b", "BBB", quantity=20)).status is OrderStatus.REJECTED  # $1,000 > $600
    other = _simulator(warehouse)  # e.g. the emergency stop, in another process
    assert other.cancel("a").status is OrderStatus.CANCELED
    assert first.submit(_intent("c", "BBB", quantity=20)).status is OrderStatus.NEW


def test_a_submit_seen_before_is_answered_from_the_record_and_takes_no_order_number(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    simulator = _simulator(warehouse)
    simulator.advance_to(D0)
    first = simulator.submit(_intent("a", "AAA"))
    again = _simulator(warehouse).submit(_intent("a", "AAA"))
    assert again == first
    assert simulator.submit(_intent("b", "BBB")).broker_order_id == "paper-000002"
    assert warehouse.scalar("select count(*) from sim_orders") == 2
