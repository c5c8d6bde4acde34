"""The live keys over every job that can send an order: for each, exactly one combination sends.

daily_trading_job: of the 16 combinations of its keys, one sends. Each combination gets its own
copy of one prepared warehouse (bars, a session's predictions) and a paper simulator standing in
for the live venue; the target is built and the rebalance submitted by the same services the
assets call.

emergency_stop_job with flatten: true: in live, closing positions needs the live key, dry-run
off and the confirmation naming the account in the job's config; of those 8 combinations one
sends. Cancels and the kill switch itself need no key: they only reduce risk.
"""

import itertools
import shutil
from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.jobs import emergency_stop_job
from trading_pipeline.defs.resources import (
    PortfolioConfig,
    AlertsResource,
    MarketDataResource,
    SimulatorBrokerResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.orders import OrderIntent, OrderType, Side
from trading_pipeline.services import trading
from trading_pipeline.services.approval import record_decision
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
        record_decision(ledger, strategy="daily_ml", model_version=approved_version, decision="approve",
                        reason="test", operator="test")  # the person's key goes with the sensor's approval
    if kill_switch:
        ledger.set_kill_switch("simulator", True, "test", actor="test")
    broker = PaperSimulator(warehouse, lambda s: market.bars([s]), SimulatorConfig())
    broker.advance_to(SESSION)
    strategy = StrategyResource(trading_env="live", live_enabled=live_enabled, dry_run=dry_run,
                                portfolio=PortfolioConfig(top_k=4))
    opener = trading.already_open(broker)
    trading.decide_session(ledger, broker.name, SESSION, strategy, opener)
    summary = trading.send_session(ledger, broker.name, SESSION, strategy, opener)
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


# -- emergency_stop_job with flatten: true ------------------------------------------------------

HELD_FROM = date(2024, 3, 26)  # bought at this session's close, filled at the next open
FLATTEN_KEYS = ("live_enabled", "dry_run_off", "confirmed")


@pytest.fixture(scope="module")
def account_with_positions(prepared, tmp_path_factory):
    """A simulator account holding three positions, with a resting limit order, clock at SESSION."""
    source, market = prepared
    path = tmp_path_factory.mktemp("flatten") / "holding.duckdb"
    shutil.copy(source, path)
    broker = PaperSimulator(Warehouse(path), lambda s: market.bars([s]), SimulatorConfig())
    broker.advance_to(HELD_FROM)
    symbols = sorted(market.bars([HELD_FROM])["symbol"])[:3]
    for symbol in symbols:
        broker.submit(OrderIntent(client_order_id=f"buy-{symbol}", symbol=symbol, side=Side.BUY, quantity=10,
                                  session=HELD_FROM, strategy="daily_ml"))
    broker.advance_to(SESSION)
    broker.submit(OrderIntent(client_order_id="resting-limit", symbol=symbols[0], side=Side.BUY, quantity=1,
                              order_type=OrderType.LIMIT, limit_price=0.01, session=SESSION, strategy="daily_ml"))
    assert {p.symbol for p in broker.positions()} == set(symbols)
    return path, symbols


def run_emergency_stop(path, *, trading_env, live_enabled, dry_run, confirmation=None, flatten=True):
    config = {"reason": "test stop", "flatten": flatten}
    if confirmation is not None:
        config["confirm_live_flatten"] = confirmation
    instance = dg.DagsterInstance.ephemeral()
    result = emergency_stop_job.execute_in_process(
        run_config={"ops": {"engage_kill_switch_and_cancel": {"config": config}}},
        resources={
            "warehouse": WarehouseResource(path=str(path)),
            "market": MarketDataResource(seed=7, universe_size=10),
            "broker": SimulatorBrokerResource(),  # stands in for the live venue
            "strategy": StrategyResource(trading_env=trading_env, live_enabled=live_enabled, dry_run=dry_run),
            "alerts": AlertsResource(),
        },
        instance=instance,
    )
    return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


def flatten_orders(path):
    warehouse = Warehouse(path)
    sent = warehouse.scalar("select count(*) from sim_orders where client_order_id not in "
                            "('resting-limit') and client_order_id not like 'buy-%'")
    recorded = warehouse.query("select symbol, status, dry_run, reason, session from ledger_orders "
                               "where strategy = 'emergency' order by symbol")
    resting = warehouse.scalar("select status from sim_orders where client_order_id = 'resting-limit'")
    return sent, recorded, resting


@pytest.mark.parametrize("turned", list(itertools.product([True, False], repeat=3)),
                         ids=lambda t: "-".join(k for k, on in zip(FLATTEN_KEYS, t) if on) or "none")
def test_exactly_one_combination_lets_a_live_emergency_flatten_send(account_with_positions, tmp_path, turned):
    source, symbols = account_with_positions
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(source, path)
    live_enabled, dry_run_off, confirmed = turned
    result, logged = run_emergency_stop(path, trading_env="live", live_enabled=live_enabled,
                                        dry_run=not dry_run_off,
                                        confirmation="FLATTEN simulator" if confirmed else None)
    assert result.success
    sent, recorded, resting = flatten_orders(path)
    assert resting == "canceled"  # cancels need no key
    assert Ledger(Warehouse(path)).kill_switch_engaged("simulator") == (True, "test stop")
    assert recorded["symbol"].to_list() == symbols  # every decision is recorded, sent or not
    if all(turned):
        assert sent == len(symbols) and "not_sent" not in set(recorded["status"])
        return
    assert sent == 0
    assert set(recorded["status"]) == {"not_sent"} and set(recorded["dry_run"]) == {True}
    expected = {"live_enabled": "TRADING_LIVE_ENABLED", "dry_run_off": "dry-run is on",
                "confirmed": 'confirm_live_flatten: "FLATTEN simulator"'}
    for key, on in zip(FLATTEN_KEYS, turned):
        for reason in recorded["reason"]:
            assert (expected[key] in reason) is (not on), (key, reason)
    assert any("nothing sent to close positions" in message for message in logged)  # and it says so


def test_a_confirmation_naming_another_account_does_not_count(account_with_positions, tmp_path):
    source, symbols = account_with_positions
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(source, path)
    run_emergency_stop(path, trading_env="live", live_enabled=True, dry_run=False,
                       confirmation="FLATTEN alpaca-live")
    sent, recorded, _ = flatten_orders(path)
    assert sent == 0 and set(recorded["status"]) == {"not_sent"}


def test_a_held_back_flatten_is_sent_once_confirmed(account_with_positions, tmp_path):
    source, symbols = account_with_positions
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(source, path)
    run_emergency_stop(path, trading_env="live", live_enabled=True, dry_run=False)
    assert flatten_orders(path)[0] == 0
    for _ in range(2):  # confirmed, then run again: each closing order goes once
        run_emergency_stop(path, trading_env="live", live_enabled=True, dry_run=False,
                           confirmation="FLATTEN simulator")
    sent, recorded, _ = flatten_orders(path)
    assert sent == len(symbols) and set(recorded["status"]) == {"new"}


def test_a_paper_account_flattens_without_the_live_confirmation(account_with_positions, tmp_path):
    source, symbols = account_with_positions
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(source, path)
    run_emergency_stop(path, trading_env="paper", live_enabled=False, dry_run=False)
    assert flatten_orders(path)[0] == len(symbols)


# -- every job is covered -----------------------------------------------------------------------

# Jobs made of ops (not assets) that could reach a broker, and the matrix above that covers them.
OP_JOBS_THAT_SEND = {"emergency_stop_job": test_exactly_one_combination_lets_a_live_emergency_flatten_send,
                     # its protective stops: defs/test_adoption_job.py, the live keys hold them
                     "adoption_job": "test_adoption_job::test_in_live_the_adoption_stops_wait_for_every_key"}
# Op jobs that send nothing, and why; a new job must be put in one of the two.
OP_JOBS_THAT_SEND_NOTHING = {
    "clear_kill_switch_job": "releases the kill switch in the ledger; no broker call",
    "release_quarantine_job": "records the release of a quarantined bar; no broker call",
    "approval_job": "records a person's decision on a promotion; no broker call",
}


def test_every_job_that_can_send_an_order_is_in_a_keys_matrix(small_settings):
    from trading_pipeline.definitions import build_definitions

    defs = build_definitions(small_settings())
    for job in defs.resolve_all_job_defs():
        assets = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
        if "submitted_orders" in assets:
            continue  # the daily order path: test_exactly_one_combination_of_the_live_keys_sends
        if assets:
            assert job.name == "training_job" or job.name.startswith("__"), (
                f"{job.name} materialises {sorted(assets)}: say here whether it can send an order")
            continue
        assert job.name in OP_JOBS_THAT_SEND or job.name in OP_JOBS_THAT_SEND_NOTHING, (
            f"{job.name} is not in a keys matrix: if it can reach a broker, add its matrix here")
