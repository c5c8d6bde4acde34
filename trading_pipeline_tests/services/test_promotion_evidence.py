"""A record earns its promotion: a clean-looking account that never traded is not approved.

Seen before: 22 sessions with 0 fills (the account's buying power held by old working orders)
recorded as approved. The ledger rows are written as the daily loop writes them, into a real
DuckDB warehouse; the gates read them for the stage's account only.
"""

from datetime import date, datetime

import polars as pl
import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.promotion import Decision, PromotionGates
from trading_pipeline.services.backtest import BACKTEST_SUMMARY
from trading_pipeline.services.promotion import evaluate_and_record, trading_activity
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

VERSION = "7"
VENUE = "simulator"
SESSIONS = sessions_between(date(2024, 5, 1), date(2024, 5, 31))  # 22 sessions
GATES = PromotionGates(min_sessions=20)


def account(tmp_path, sessions=SESSIONS, equity_step=0.0) -> Ledger:
    """22 sessions on record at VENUE, each scored by VERSION, whose backtest expects a profit."""
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    warehouse.append("predictions", pl.DataFrame({
        "session": sessions, "symbol": ["AAA"] * len(sessions), "score": [0.1] * len(sessions),
        "model_version": [VERSION] * len(sessions)}))
    with warehouse.held():  # one connection for the setup: opening one costs tens of ms
        for index, session in enumerate(sessions):
            warehouse.execute("insert into ledger_account (session, broker, cash, equity, "
                              "buying_power, recorded_at) values (?, ?, ?, ?, ?, ?)",
                              [session, VENUE, 100_000.0, 100_000.0 + equity_step * index,
                               100_000.0, datetime(2024, 6, 1)])
    warehouse.append(BACKTEST_SUMMARY, pl.DataFrame({"model_version": [VERSION], "sharpe": [1.2]}))
    return ledger


def order(ledger: Ledger, session: date, symbol: str, status: str, broker: str = VENUE) -> str:
    client_order_id = f"{broker}-{session}-{symbol}"
    ledger.warehouse.execute(
        "insert into ledger_orders (client_order_id, strategy, session, broker, symbol, side, quantity, "
        "order_type, time_in_force, purpose, status, created_at, updated_at) values "
        "(?, 'daily_ml', ?, ?, ?, 'buy', 10, 'market', 'day', 'rebalance', ?, ?, ?)",
        [client_order_id, session, broker, symbol, status, datetime(2024, 6, 1), datetime(2024, 6, 1)])
    return client_order_id


def fill(ledger: Ledger, client_order_id: str, session: date, symbol: str, broker: str = VENUE) -> None:
    ledger.warehouse.execute(
        "insert into ledger_fills (fill_id, client_order_id, broker, symbol, side, quantity, price, "
        "commission, filled_at, recorded_session) values (?, ?, ?, ?, 'buy', 10, 50, 1, ?, ?)",
        [f"fill-{client_order_id}", client_order_id, broker, symbol, datetime(2024, 6, 1), session])


def hold(ledger: Ledger, session: date, symbol: str, quantity: float = 10, broker: str = VENUE) -> None:
    ledger.warehouse.execute(
        "insert into ledger_positions (session, broker, symbol, quantity, avg_entry_price, market_price) "
        "values (?, ?, ?, ?, 50, 51)", [session, broker, symbol, quantity])


def trade_every_session(ledger: Ledger, sessions=SESSIONS, broker: str = VENUE) -> None:
    with ledger.warehouse.held():
        for session in sessions:
            for symbol in ("AAA", "BBB"):
                fill(ledger, order(ledger, session, symbol, "filled", broker), session, symbol, broker)
                hold(ledger, session, symbol, broker=broker)


def decide(ledger: Ledger, gates: PromotionGates = GATES):
    return evaluate_and_record(ledger, "daily_ml", VENUE, VERSION, gates, stage_from="local",
                               live_enabled=False, last_key=None)


def test_a_dead_account_over_twenty_sessions_is_rejected_naming_the_missing_evidence(tmp_path):
    ledger = account(tmp_path)
    # another account traded in the same warehouse: none of it is this stage's evidence
    trade_every_session(ledger, broker="alpaca-paper")
    # orders that never reached the broker (held back, dry run) prove nothing
    order(ledger, SESSIONS[3], "CCC", "not_sent")
    outcome = decide(ledger)
    result = outcome.result
    assert result.decision is Decision.REJECTED, result.reasons
    assert not result.checks["fills"] and not result.checks["exposure"]
    assert result.checks["time"] and result.checks["reconciliation"] and result.checks["expectation"]
    assert any("0 orders filled, at least 10 needed (no order was sent to the broker)" in r
               for r in result.reasons)
    assert any("positions were held on 0 sessions, at least 10 needed" in r for r in result.reasons)
    recorded = ledger.latest_promotion("daily_ml")
    assert recorded["decision"] == "rejected" and "0 orders filled" in recorded["reasons"]


def test_an_account_that_traded_is_approved_with_its_activity_in_the_reason(tmp_path):
    ledger = account(tmp_path, equity_step=50.0)
    trade_every_session(ledger)
    activity = trading_activity(ledger, VENUE, SESSIONS[0], SESSIONS[-1])
    assert (activity.filled_orders, activity.exposure_sessions, activity.sent_orders,
            activity.rejected_orders) == (44, 22, 44, 0)
    outcome = decide(ledger)
    assert outcome.result.decision is Decision.APPROVED, outcome.result.reasons
    assert all(outcome.result.checks.values())
    # the window is the last 20 sessions of the version's tenure
    assert "40 orders filled, positions held on 20 sessions, 0 of 40 orders sent rejected" \
        in outcome.result.reasons[0]


def test_too_many_rejected_orders_are_a_rejection(tmp_path):
    ledger = account(tmp_path, equity_step=50.0)
    trade_every_session(ledger)
    for session in SESSIONS[-10:]:
        order(ledger, session, "ZZZ", "rejected")
    outcome = decide(ledger)
    assert outcome.result.decision is Decision.REJECTED
    assert not outcome.result.checks["rejections"]
    assert outcome.result.reasons == ("10 of 50 orders sent were rejected (20%), above the 10% allowed",)


def test_a_quiet_start_is_too_early_to_judge_not_a_rejection(tmp_path):
    ledger = account(tmp_path, sessions=SESSIONS[:5])
    result = decide(ledger).result
    assert result.decision is Decision.NEEDS_REVIEW
    assert result.reasons[0].startswith("only 5 of the 20 sessions needed")
    assert any("0 orders filled" in r for r in result.reasons)


def test_exposure_counts_sessions_holding_a_position_not_flat_ones(tmp_path):
    ledger = account(tmp_path)
    hold(ledger, SESSIONS[0], "AAA")
    hold(ledger, SESSIONS[1], "AAA", quantity=0.0)  # a closed position's last row
    hold(ledger, SESSIONS[2], "AAA", quantity=-5.0)  # short is exposure too
    assert trading_activity(ledger, VENUE, SESSIONS[0], SESSIONS[-1]).exposure_sessions == 2


def test_gates_that_cannot_be_met_are_refused_with_the_setting_to_change():
    with pytest.raises(ValueError, match="TRADING_PROMOTION_MIN_EXPOSURE_SESSIONS"):
        PromotionGates(min_sessions=20, min_exposure_sessions=25)
    with pytest.raises(ValueError, match="max_rejected_share"):
        PromotionGates(max_rejected_share=1.5)
