"""The emergency stop uses the account as it is: the paper simulator's clock does not move, and
closing orders are recorded for the account's own session. The kill switch shows in the UI
(asset `kill_switch`) the moment either job changes it, with its history."""

from datetime import date

import dagster as dg
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.assets.controls import KILL_SWITCH_KEY
from trading_pipeline.defs.jobs import clear_kill_switch_job, emergency_stop_job
from trading_pipeline.defs.resources import (
    AlertsResource,
    MarketDataResource,
    SimulatorBrokerResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.orders import OrderIntent, Side
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

BOUGHT = date(2024, 5, 1)
CLOCK = date(2024, 5, 2)  # the account's latest session: far behind today


@pytest.fixture
def holding(tmp_path):
    """A simulator account holding two positions, its clock at CLOCK."""
    path = tmp_path / "warehouse.duckdb"
    market = SyntheticMarket(seed=7, universe_size=6)
    broker = PaperSimulator(Warehouse(path), lambda s: market.bars([s]), SimulatorConfig())
    broker.advance_to(BOUGHT)
    symbols = sorted(market.bars([BOUGHT])["symbol"])[:2]
    for symbol in symbols:
        broker.submit(OrderIntent(client_order_id=f"buy-{symbol}", symbol=symbol, side=Side.BUY,
                                  quantity=5, session=BOUGHT, strategy="daily_ml"))
    broker.advance_to(CLOCK)
    return path, symbols


def resources(path):
    return {"warehouse": WarehouseResource(path=str(path)), "market": MarketDataResource(seed=7, universe_size=6),
            "broker": SimulatorBrokerResource(), "strategy": StrategyResource(), "alerts": AlertsResource()}


def kill_switch_shown(instance):
    event = instance.get_latest_materialization_event(KILL_SWITCH_KEY)
    assert event is not None, "the kill_switch asset was not reported"
    return event.asset_materialization.metadata


def test_an_emergency_flatten_leaves_the_simulator_clock_where_it_was(holding):
    path, symbols = holding
    result = emergency_stop_job.execute_in_process(
        run_config={"ops": {"engage_kill_switch_and_cancel": {"config": {"reason": "stop", "flatten": True}}}},
        resources=resources(path), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    warehouse = Warehouse(path)
    assert PaperSimulator(warehouse, lambda s: None).clock == CLOCK
    closing = warehouse.query("select symbol, side, session, status from ledger_orders "
                              "where strategy = 'emergency' order by symbol")
    assert closing.rows() == [(s, "sell", CLOCK, "new") for s in symbols]  # working for the next open


def test_a_closing_order_cancelled_at_the_broker_is_replaced_by_the_next_stop_and_never_doubled(holding):
    path, symbols = holding
    config = {"ops": {"engage_kill_switch_and_cancel": {"config": {"reason": "stop", "flatten": True}}}}
    emergency_stop_job.execute_in_process(run_config=config, resources=resources(path),
                                          instance=dg.DagsterInstance.ephemeral())
    warehouse = Warehouse(path)
    first = warehouse.query("select client_order_id from ledger_orders where strategy = 'emergency' "
                            "and symbol = ?", [symbols[0]])["client_order_id"][0]
    simulator = PaperSimulator(warehouse, lambda s: None)
    Ledger(warehouse).record_status(simulator.cancel(first))  # someone cancelled it at the broker
    for _ in range(2):  # the next stop closes that position again, once; the others keep working
        emergency_stop_job.execute_in_process(run_config=config, resources=resources(path),
                                              instance=dg.DagsterInstance.ephemeral())
    closing = warehouse.query("select symbol, status, count(*) as orders from ledger_orders "
                              "where strategy = 'emergency' group by all order by symbol, status")
    assert closing.rows() == [(symbols[0], "canceled", 1), (symbols[0], "new", 1), (symbols[1], "new", 1)]
    assert warehouse.scalar("select count(*) from sim_orders where status = 'new'") == 2


def test_the_kill_switch_asset_shows_the_state_and_history_as_each_job_changes_it(holding):
    path, _ = holding
    instance = dg.DagsterInstance.ephemeral()
    emergency_stop_job.execute_in_process(
        run_config={"ops": {"engage_kill_switch_and_cancel": {"config": {"reason": "desk call"}}}},
        resources=resources(path), instance=instance)
    shown = kill_switch_shown(instance)
    assert shown["state"].value == "engaged" and shown["reason"].value == "desk call"
    assert shown["account"].value == "simulator" and shown["actor"].value.startswith("run ")

    clear_kill_switch_job.execute_in_process(
        run_config={"ops": {"clear_kill_switch": {"config": {"reason": "broker checked"}}}},
        resources=resources(path), instance=instance)
    shown = kill_switch_shown(instance)
    assert shown["state"].value == "released" and shown["reason"].value == "broker checked"
    history = shown["history"]
    assert isinstance(history, dg.TableMetadataValue)
    assert [c.name for c in history.schema.columns] == ["recorded_at", "state", "reason", "actor"]
    assert [(r.data["state"], r.data["reason"]) for r in history.records] == [
        ("released", "broker checked"), ("engaged", "desk call")]  # newest first


def test_the_kill_switch_is_an_asset_of_the_code_location(small_settings):
    defs = build_definitions(small_settings())
    assert KILL_SWITCH_KEY in defs.resolve_asset_graph().get_all_asset_keys()


def test_a_venue_s_open_orders_are_cancelled_while_another_process_holds_the_warehouse(tmp_path):
    """Cancels go to the broker before anything is read or written in the warehouse."""
    import duckdb

    from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
    from trading_pipeline.domain.orders import OrderType
    from trading_pipeline.services.emergency import FlattenKeys, emergency_stop
    from trading_pipeline_tests.brokers.fakes.alpaca import DEFAULT_PRICES, FakeAlpaca, FakeAlpacaServer
    from trading_pipeline_tests.defs.test_emergency_kill_switch_store import warehouse_locked_by_another_process

    fake = FakeAlpaca("FAKEKEYID-SHOULD-NOT-LEAK", "FAKESECRET-SHOULD-NOT-LEAK")
    symbol = next(iter(DEFAULT_PRICES))
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).execute("select 1")
    with FakeAlpacaServer(fake), AlpacaBroker(AlpacaConfig(
            "FAKEKEYID-SHOULD-NOT-LEAK", "FAKESECRET-SHOULD-NOT-LEAK", paper=True, url_override=fake.url,
            timeout_seconds=2.0)) as broker:
        broker.submit(OrderIntent(client_order_id="resting-buy", symbol=symbol, side=Side.BUY, quantity=1,
                                  order_type=OrderType.LIMIT, limit_price=1.0, session=CLOCK, strategy="daily_ml"))
        keys = FlattenKeys(trading_env="paper", live_enabled=False, dry_run=False, confirmation="",
                           account=broker.name)
        with warehouse_locked_by_another_process(path):
            with pytest.raises(duckdb.IOException):  # recording waits for the warehouse, in vain here
                emergency_stop(broker, Ledger(Warehouse(path, lock_wait_seconds=1.0)), flatten=False, keys=keys)
        assert not fake.order("resting-buy").is_open  # but the broker cancelled it first
