"""A split between two sessions changes the quantity the broker reports (2-for-1: twice the
shares). Reconciliation reads the split from `adjustment_events` (recorded by the market data
sync before the run reconciles) and expects the split quantity: no break. Here on the fake
Alpaca through alpaca-py, for an adopted holding and for one the pipeline bought."""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
from trading_pipeline.domain.market.bars import BAR_SCHEMA
from trading_pipeline.domain.orders import FillReport, OrderIntent, Side
from trading_pipeline.domain.risk.stops import StopPolicy
from trading_pipeline.domain.safety import SubmissionKeys
from trading_pipeline.services.adoption import adopt_account
from trading_pipeline.services.reconcile import reconcile
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer

KEY_ID, SECRET_KEY = "SPLIT-TEST-KEY", "SPLIT-TEST-SECRET"
BEFORE, EX_DATE = date(2024, 4, 2), date(2024, 4, 3)
PAPER = SubmissionKeys("paper", live_enabled=False, promotion_approved=False, kill_switch_engaged=False,
                       dry_run=False)


def _event(symbol: str, ratio: float) -> pl.DataFrame:
    """An adjustment event as the market data sync records it on the ex-date's run."""
    return pl.DataFrame([{
        "session_detected": EX_DATE, "symbol": symbol, "reference_session": BEFORE, "old_adj_close": 100.0,
        "new_adj_close": 100.0 / ratio, "ratio": ratio, "rows_replaced": 60, "source": "alpaca",
        "recorded_at": datetime.now(UTC)}], schema=market_store.ADJUSTMENT_EVENT_SCHEMA)


@pytest.fixture
def account(tmp_path):
    fake = FakeAlpaca(KEY_ID, SECRET_KEY, prices={"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}, cash=50_000.0)
    fake.set_position("AAA", 10, 90.0)  # held by hand before the pipeline
    fake.set_position("CCC", 100, 20.0)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    with FakeAlpacaServer(fake) as server:
        config = AlpacaConfig(KEY_ID, SECRET_KEY, paper=True, url_override=server.url, timeout_seconds=2.0)
        with AlpacaBroker(config, sleep=lambda seconds: None) as broker:
            adopt_account(ledger, broker, strategy="daily_ml", stop_policy=StopPolicy(), keys=PAPER,
                          operator="Ada", reason="test", cancel_foreign_orders=False)
            ledger.record_intent(OrderIntent("buy-bbb", "BBB", Side.BUY, 4.0, session=BEFORE, strategy="daily_ml"),
                                 broker.name, dry_run=False, status="filled")
            ledger.record_fills([FillReport("fill-bbb", "buy-bbb", "BBB", Side.BUY, 4.0, 50.0,
                                            datetime(2024, 4, 2, 13, 30, tzinfo=UTC))], broker.name, BEFORE)
            fake.set_position("BBB", 4, 50.0)
            yield fake, warehouse, ledger, broker


def test_a_split_changes_the_expected_quantity_with_no_break(account):
    fake, warehouse, ledger, broker = account
    for order in list(fake.orders):  # the venue cancels open orders in a splitting symbol
        if order.symbol in ("AAA", "BBB") and order.is_open:
            order.status = "canceled"
    market_store.store_fetched(warehouse, pl.DataFrame(schema=BAR_SCHEMA),
                               pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "adj_close": pl.Float64}),
                               pl.concat([_event("AAA", 2.0), _event("BBB", 3.0), _event("CCC", 1.004)]))
    fake.set_position("AAA", 20, 45.0)  # adopted, then split 2-for-1
    fake.set_position("BBB", 12, 50.0 / 3)  # bought by the pipeline, then split 3-for-1
    # CCC: a dividend restated its adjusted history (ratio 1.004): the quantity stays

    result = reconcile(broker, ledger, EX_DATE)
    assert result.break_count == 0, result.breaks.to_dicts()
    assert {p.symbol: p.quantity for p in ledger.positions_snapshot(broker.name, EX_DATE)} == \
        {"AAA": 20, "BBB": 12, "CCC": 100}


def test_a_quantity_the_split_does_not_explain_is_still_a_break(account):
    fake, warehouse, ledger, broker = account
    market_store.store_fetched(warehouse, pl.DataFrame(schema=BAR_SCHEMA),
                               pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "adj_close": pl.Float64}),
                               _event("AAA", 2.0))
    fake.set_position("AAA", 10, 90.0)  # the broker did not split the position

    result = reconcile(broker, ledger, EX_DATE)
    assert result.breaks.filter(pl.col("kind") == "position_mismatch")[["symbol", "ledger_quantity",
                                                                         "broker_quantity"]].rows() == [("AAA", 20, 10)]
