"""adoption_job on a real Dagster instance and warehouse: a simulator account traded by hand
(5 longs, about $50,000 in cash, a resting order) is refused by the daily run until it is
adopted; after adoption daily runs reconcile with 0 breaks and every long has a stop."""

from datetime import date

import dagster as dg
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.defs.jobs import adoption_job
from trading_pipeline.defs.resources import StrategyResource
from trading_pipeline.domain.orders import OrderIntent, OrderType, Side, TimeInForce
from trading_pipeline.domain.risk.stops import working_stops_from
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import adoption_store
from trading_pipeline_tests.conftest import SMALL_RUN

BOUGHT = date(2024, 4, 25)  # bought by hand after this close
SESSIONS = (date(2024, 4, 30), date(2024, 5, 1), date(2024, 5, 2))
ADOPT = {"ops": {"adopt_existing_account": {"config": {
    "operator": "Ada", "reason": "first run on my paper account"}}}}


def failure_message(result) -> str:
    """Every failed step's error with its causes, as the run's page shows them."""
    messages = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None:
                messages.append(error.message)
                error = error.cause
    return " ".join(messages)


@pytest.fixture
def home(tmp_path):
    settings = TradingSettings(_env_file=None, home=tmp_path / "home", **SMALL_RUN)
    defs = build_definitions(settings)
    resources = defs.resources
    warehouse = resources["warehouse"].warehouse
    market = resources["market"].market()
    broker = resources["broker"].open(warehouse, market, BOUGHT)
    closes = dict(market.bars([BOUGHT]).select("symbol", "close").iter_rows())
    symbols = sorted(closes)
    for symbol in symbols[:5]:
        broker.submit(OrderIntent(f"by-hand-{symbol}", symbol, Side.BUY, float(int(9_900 / closes[symbol])),
                                  session=BOUGHT, strategy="by hand"))
    broker.advance_to(date(2024, 4, 29))
    broker.submit(OrderIntent("by-hand-limit", symbols[7], Side.BUY, 1.0, OrderType.LIMIT, TimeInForce.GTC,
                              limit_price=0.5, session=date(2024, 4, 29), strategy="by hand"))
    assert len(broker.positions()) == 5 and 48_000 < broker.account().cash < 52_000
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield defs, instance, warehouse, lambda: resources["broker"].open(warehouse, market, None)


def test_the_daily_run_refuses_until_adoption_then_reconciles_with_no_break(home):
    defs, instance, warehouse, open_broker = home
    daily = defs.resolve_job_def("daily_trading_job")
    adoption = defs.resolve_job_def("adoption_job")

    refused = daily.execute_in_process(partition_key=SESSIONS[0].isoformat(), instance=instance,
                                       raise_on_error=False)
    assert not refused.success
    assert "adoption_job" in failure_message(refused) and "5 positions" in failure_message(refused)

    adopted = adoption.execute_in_process(run_config=ADOPT, instance=instance)
    assert adopted.success
    record = adoption_store.adoption(warehouse, "simulator")
    assert (record["operator"], record["reason"]) == ("Ada", "first run on my paper account")
    observed = [e.event_specific_data.asset_observation for e in adopted.all_events
                if e.event_type_value == "ASSET_OBSERVATION"]
    assert observed and observed[0].asset_key == dg.AssetKey("account_view")
    metadata = observed[0].metadata
    assert "5 positions" in metadata["adoption"].value and metadata["adopted_by"].value == "Ada"
    assert not any("secret" in str(v.value).lower() for v in metadata.values())
    broker = open_broker()
    assert {o.symbol for o in working_stops_from(broker.open_orders())} == {p.symbol for p in broker.positions()}

    for session in SESSIONS:
        run = daily.execute_in_process(partition_key=session.isoformat(), instance=instance)
        assert run.success
        breaks = warehouse.scalar("select count(*) from reconciliation_breaks where account = ? and session = ?",
                                  ["simulator", session])
        assert breaks == 0, warehouse.query("select * from reconciliation_breaks").to_dicts()
        broker = open_broker()
        # every long is protected by a stop, or is being sold (its stop cancelled before the sell)
        held = {p.symbol for p in broker.positions() if p.quantity > 0}
        assert held and held <= {o.symbol for o in broker.open_orders() if o.side is Side.SELL}
    assert "by-hand-limit" in {o.client_order_id for o in open_broker().open_orders()}  # left alone

    again = adoption.execute_in_process(run_config=ADOPT, instance=instance, raise_on_error=False)
    assert not again.success and "adopted already" in failure_message(again)


def test_in_live_the_adoption_stops_wait_for_every_key(home):
    defs, instance, warehouse, open_broker = home
    live = StrategyResource(trading_env="live", live_enabled=True, dry_run=False)
    resources = {**defs.resources, "strategy": live}
    run = adoption_job.execute_in_process(run_config=ADOPT, instance=instance, resources=resources)
    assert run.success
    stops = warehouse.query("select status, reason from ledger_orders where purpose = 'stop_loss'")
    assert stops.height == 5 and set(stops["status"]) == {"not_sent"}
    assert all("approval_job" in reason for reason in stops["reason"])
    assert working_stops_from(open_broker().open_orders()) == []
