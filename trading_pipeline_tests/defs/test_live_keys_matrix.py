"""The live keys through the real order path: of the 16 combinations, exactly one sends.

Each combination gets its own copy of one prepared warehouse (bars, a session's predictions)
and a paper simulator standing in for the live venue; the target is built and the rebalance
submitted by the same services the assets call.
"""

import itertools
import shutil
from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import StrategyResource
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.services import trading
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

SESSION = date(2024, 3, 27)
VERSION = "3"
KEYS = ("live_enabled", "promotion_approved", "kill_switch_clear", "dry_run_off")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "prepared.duckdb"
    warehouse = Warehouse(path)
    Ledger(warehouse)  # creates the ledger tables
    market = SyntheticMarket(seed=7, universe_size=10)
    market_store.append_history(warehouse, market.bars(sessions_between(date(2023, 1, 3), SESSION)))
    symbols = market_store.read_bars(warehouse, [SESSION])["symbol"].sort()
    warehouse.replace_partition("predictions", SESSION, pl.DataFrame({
        "session": [SESSION] * len(symbols), "symbol": symbols,
        "score": [float(i) for i in range(len(symbols))], "model_version": [VERSION] * len(symbols)}))
    return path, market


def submit_with(prepared, tmp_path, live_enabled, approved_version, kill_switch, dry_run):
    source, market = prepared
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(source, path)
    warehouse = Warehouse(path)
    ledger = Ledger(warehouse)
    if approved_version is not None:
        ledger.record_promotion("daily_ml", approved_version, "paper", "live", "approved", ["test"], 20)
    if kill_switch:
        ledger.set_kill_switch("simulator", True, "test", actor="test")
    broker = PaperSimulator(warehouse, lambda s: market.bars([s]), SimulatorConfig())
    broker.advance_to(SESSION)
    strategy = StrategyResource(trading_env="live", live_enabled=live_enabled, dry_run=dry_run, top_k=4)
    trading.build_target(warehouse, broker, SESSION, strategy)
    summary = trading.submit_rebalance(ledger, broker, SESSION, strategy)
    orders = warehouse.query("select status, dry_run, reason from ledger_orders where session = ?", [SESSION])
    return summary, orders, warehouse.scalar("select count(*) from sim_orders")


@pytest.mark.parametrize("turned", list(itertools.product([True, False], repeat=4)),
                         ids=lambda t: "-".join(k for k, on in zip(KEYS, t) if on) or "none")
def test_exactly_one_combination_of_the_live_keys_sends(prepared, tmp_path, turned):
    live_enabled, approved, clear, dry_run_off = turned
    summary, orders, at_broker = submit_with(prepared, tmp_path, live_enabled, VERSION if approved else None,
                                             not clear, not dry_run_off)
    assert orders.height > 0  # the decisions are always recorded
    if all(turned):
        assert summary.entries.send and at_broker == orders.height
        assert "not_sent" not in set(orders["status"]) and set(orders["dry_run"]) == {False}
        return
    assert at_broker == 0 and not summary.outcomes["sent_now"].any()
    assert set(orders["status"]) == {"not_sent"}
    expected = {
        "live_enabled": "TRADING_LIVE_ENABLED", "promotion_approved": "no approved paper-to-live promotion",
        "kill_switch_clear": "kill switch", "dry_run_off": "dry-run is on",
    }
    for key, on in zip(KEYS, turned):
        for reason in orders["reason"]:
            assert (expected[key] in reason) is (not on), (key, reason)
    assert set(orders["dry_run"]) == {True}  # recorded as decided but held back


def test_an_approval_for_another_model_version_does_not_count(prepared, tmp_path):
    summary, orders, at_broker = submit_with(prepared, tmp_path, True, "2", False, False)
    assert at_broker == 0 and "no approved paper-to-live promotion" in summary.entries.explanation
