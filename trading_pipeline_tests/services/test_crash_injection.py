"""Crash injection: eleven sessions (the first half of a month) killed at every boundary of the
order path, reconciliation and performance end exactly where the uninterrupted sessions end.

A boundary is each call that talks to the broker (the simulator's clock, positions, account,
orders, submit, cancel, fills) or writes the warehouse (the plan, each status, each cancel, the
fills, the snapshot, the per-session tables, the kill switch), before and after it. For each
session the daily steps run with a crash armed at boundary 1 of the attempt, then again (a
re-run, as after a killed process) with it armed at boundary 2, and so on until an attempt
gets through: every boundary of every re-run is crashed once. The crash is a BaseException,
so nothing in the loop can catch it, and whatever an open DuckDB transaction held is rolled
back, as when the process dies. Then orders, fills, positions, equity per session and the
risk record are compared with an uninterrupted run on the same data: nothing lost, nothing
doubled.
"""

from __future__ import annotations

from datetime import date

import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import KillSwitchConfig, PortfolioConfig, RiskConfig, StopConfig, StrategyResource
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.services import trading
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.scored_market import store_scored_market

# 11 sessions: entries and exits filled, stops sent, filled, canceled and left working (the
# second half of the month adds no new kind of step, only time)
MONTH = sessions_between(date(2024, 5, 1), date(2024, 5, 15))
HISTORY_SESSIONS = 100
STRATEGY = StrategyResource(portfolio=PortfolioConfig(top_k=4, no_trade_band=0.0), risk=RiskConfig(var_lookback=20),
                            stops=StopConfig(stop_loss_percent=0.02),
                            kill_switch=KillSwitchConfig(max_drawdown=0.03))
BROKER_CALLS = ("advance_to", "positions", "account", "open_orders", "submit", "submit_many",
                "submit_with_stop", "cancel", "fills", "order_status")
LEDGER_WRITES = ("record_plan", "mark_submitting", "record_status", "record_cancel", "hold",
                 "mark_unknown", "record_fills", "snapshot_session", "set_kill_switch",
                 "record_risk_event")


class Crash(BaseException):
    """The process dies here."""


class Boundaries:
    def __init__(self):
        self.armed_at: int | None = None
        self.count = 0
        self.crashes = 0

    def tick(self) -> None:
        self.count += 1
        if self.armed_at is not None and self.count == self.armed_at:
            self.crashes += 1
            raise Crash(f"killed at boundary {self.count}")

    def around(self, call):
        def wrapped(*args, **kwargs):
            self.tick()
            result = call(*args, **kwargs)
            self.tick()
            return result
        return wrapped


class CrashingWarehouse(Warehouse):
    boundaries: Boundaries | None = None

    def replace_where(self, table, key, frame):
        if self.boundaries is None:
            return super().replace_where(table, key, frame)
        return self.boundaries.around(super().replace_where)(table, key, frame)


class CrashingBroker:
    """The simulator, with a boundary before and after each call."""

    def __init__(self, simulator: PaperSimulator, boundaries: Boundaries):
        self._simulator, self._boundaries = simulator, boundaries
        self.name = simulator.name

    def __getattr__(self, attribute):
        value = getattr(self._simulator, attribute)
        return self._boundaries.around(value) if attribute in BROKER_CALLS else value


def crashing_ledger(warehouse: Warehouse, boundaries: Boundaries) -> Ledger:
    ledger = Ledger(warehouse)
    for name in LEDGER_WRITES:
        setattr(ledger, name, boundaries.around(getattr(ledger, name)))
    return ledger


def _prepare(path) -> tuple[CrashingWarehouse, SyntheticMarket]:
    warehouse = CrashingWarehouse(path)
    market, _, _ = store_scored_market(warehouse, MONTH, seed=11, universe_size=12,
                                       history_sessions=HISTORY_SESSIONS, model_version="crash-test")
    return warehouse, market


def _session_steps(warehouse, ledger, broker, session) -> None:
    """What one run of daily_trading_job does after predictions, in its order."""
    with warehouse.held():
        broker.advance_to(session)  # opening the broker for the session
        opener = trading.already_open(broker)
        trading.decide_session(ledger, broker.name, session, STRATEGY, opener)
        trading.send_session(ledger, broker.name, session, STRATEGY, opener)
        trading.reconcile_session(warehouse, ledger, broker.name, session, opener)
        trading.performance_through(ledger, broker.name, session, STRATEGY)


def _run_month(path, crash: bool) -> tuple[CrashingWarehouse, Boundaries]:
    warehouse, _ = _prepare(path)
    boundaries = Boundaries()
    warehouse.boundaries = boundaries
    simulator = PaperSimulator(warehouse, lambda s: market_store.read_bars(warehouse, [s]),
                               SimulatorConfig(initial_cash=100_000.0))
    broker = CrashingBroker(simulator, boundaries)
    ledger = crashing_ledger(warehouse, boundaries)
    for session in MONTH:
        arm = 1
        while True:
            boundaries.count = 0
            boundaries.armed_at = arm if crash else None
            try:
                _session_steps(warehouse, ledger, broker, session)
                break
            except Crash:
                arm += 1  # the re-run after the kill; the next boundary is killed this time
    boundaries.armed_at = None
    return warehouse, boundaries


def _record(warehouse: Warehouse) -> dict[str, list]:
    return {
        "orders": warehouse.query(
            """select client_order_id, session, symbol, side, quantity, order_type, stop_price, purpose,
                      status, filled_quantity, avg_fill_price, reason
               from ledger_orders order by client_order_id""").rows(),
        "fills": warehouse.query(
            """select client_order_id, symbol, side, quantity, price, commission, filled_at, recorded_session
               from ledger_fills order by client_order_id, filled_at, quantity""").rows(),
        "positions": warehouse.query(
            "select session, symbol, quantity, avg_entry_price from ledger_positions order by session, symbol").rows(),
        "account": warehouse.query("select session, cash, equity from ledger_account order by session").rows(),
        "performance": warehouse.query(
            "select session, equity, daily_pnl, drawdown from performance order by session").rows(),
        "risk": warehouse.query(
            "select session, kind, detail from risk_events order by session, kind, detail").rows(),
        "kill_switch": warehouse.query("select engaged, reason from kill_switch_events order by recorded_at").rows(),
        "plans": warehouse.query("select session, model_version, failures from session_plans order by session").rows(),
    }


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    calm, _ = _run_month(tmp_path_factory.mktemp("calm") / "warehouse.duckdb", crash=False)
    crashed, boundaries = _run_month(tmp_path_factory.mktemp("crashed") / "warehouse.duckdb", crash=True)
    return _record(calm), _record(crashed), boundaries


def test_sessions_killed_at_every_boundary_end_as_the_uninterrupted_sessions(month):
    calm, crashed, boundaries = month
    assert boundaries.crashes > 30 * len(MONTH)  # every boundary of every re-run, not a few
    for table in calm:
        assert crashed[table] == calm[table], table


def test_the_sessions_really_traded(month):
    calm, _, _ = month
    statuses = [row[8] for row in calm["orders"]]
    assert statuses.count("filled") >= 20
    assert any(row[7] == "stop_loss" for row in calm["orders"])  # protective stops were part of it
    assert len(calm["account"]) == len(MONTH)
    assert len({row[2] for row in calm["account"]}) > len(MONTH) // 2  # the equity moved
