"""A person approves: live orders wait for a recorded human decision on the model version that
made the plan, beside the promotion sensor's own decision."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import StrategyResource
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.safety import SubmissionKeys, may_submit
from trading_pipeline.services import trading
from trading_pipeline.services.approval import ApprovalRefused, live_approval, record_decision
from trading_pipeline.storage import approval_store, market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

SESSION = date(2024, 3, 27)
VERSION = "3"
LIVE = dict(trading_env="live", live_enabled=True, dry_run=False)


@pytest.fixture
def live_account(tmp_path):
    """A warehouse with a session's bars and v3's predictions; a simulator stands in for the live venue."""
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    market = SyntheticMarket(seed=7, universe_size=10)
    market_store.append_history(warehouse, market.bars(sessions_between(date(2023, 1, 3), SESSION)))
    symbols = market_store.read_bars(warehouse, [SESSION])["symbol"].sort()
    warehouse.replace_partition("predictions", SESSION, pl.DataFrame({
        "session": [SESSION] * len(symbols), "symbol": symbols,
        "score": [float(i) for i in range(len(symbols))], "model_version": [VERSION] * len(symbols)}))
    broker = PaperSimulator(warehouse, lambda s: market.bars([s]), SimulatorConfig())
    broker.advance_to(SESSION)
    return ledger, broker


def send(ledger, broker):
    strategy = StrategyResource(**LIVE)
    opener = trading.already_open(broker)
    trading.decide_session(ledger, broker.name, SESSION, strategy, opener)
    trading.send_session(ledger, broker.name, SESSION, strategy, opener)
    return ledger.warehouse.query("select status, reason from ledger_orders where session = ?", [SESSION])


def decide(ledger, decision, version=VERSION, **overrides):
    values = dict(strategy="daily_ml", model_version=version, decision=decision, reason="read the paper record",
                  operator="Grace")
    return record_decision(ledger, **{**values, **overrides})


def test_the_human_key_alone_holds_live_orders_and_names_approval_job():
    keys = SubmissionKeys("live", True, True, False, False, human_approved=False)
    held = may_submit(keys)
    assert not held.send and "approval_job" in held.explanation
    assert may_submit(SubmissionKeys("live", True, True, False, False, human_approved=True)).send
    assert may_submit(SubmissionKeys("paper", False, False, False, False)).send  # paper needs no person


def test_a_sensor_approval_alone_sends_nothing_live_until_a_person_approves(live_account):
    ledger, broker = live_account
    ledger.record_promotion("daily_ml", VERSION, "paper", "live", "approved", ["gates passed"], 20)
    held = send(ledger, broker)
    assert held.height and set(held["status"]) == {"not_sent"}
    assert all("approval_job" in reason for reason in held["reason"])
    assert broker.open_orders() == []
    decided = decide(ledger, "approve")
    assert decided.sensor_decision == "approved" and decided.decision == "approved"
    sent = send(ledger, broker)  # the held orders of the same plan go now
    assert "not_sent" not in set(sent["status"]) and len(broker.open_orders()) == sent.height


def test_a_needs_review_waits_for_a_person_and_an_approval_settles_it(live_account):
    ledger, broker = live_account
    ledger.record_promotion("daily_ml", VERSION, "paper", "live", "needs_review", ["too early: 10 of 20"], 10)
    assert live_approval(ledger, "daily_ml", VERSION) == (False, False)
    assert set(send(ledger, broker)["status"]) == {"not_sent"}
    decide(ledger, "approve")
    assert live_approval(ledger, "daily_ml", VERSION) == (True, True)
    assert "not_sent" not in set(send(ledger, broker)["status"])


def test_a_rejection_is_recorded_and_keeps_things_as_they_are(live_account):
    ledger, broker = live_account
    ledger.record_promotion("daily_ml", VERSION, "paper", "live", "needs_review", ["one monitor breach"], 20)
    rejected = decide(ledger, "reject", reason="the breach needs a look first")
    assert rejected.decision == "rejected" and "nothing else changes" in rejected.in_force
    held = send(ledger, broker)
    assert set(held["status"]) == {"not_sent"} and broker.open_orders() == []
    recorded = approval_store.approvals(ledger.warehouse, "daily_ml")
    assert recorded.select("decision", "operator", "sensor_decision").row(0) == \
        ("rejected", "Grace", "needs_review")
    # a later approval replaces an earlier one only forward: the newest decision is in force
    decide(ledger, "approve")
    decide(ledger, "reject", reason="changed my mind")
    assert live_approval(ledger, "daily_ml", VERSION) == (False, False)


def test_an_approval_counts_for_its_own_model_version_only(live_account):
    ledger, broker = live_account
    ledger.record_promotion("daily_ml", "2", "paper", "live", "approved", ["gates passed"], 20)
    decide(ledger, "approve", version="2")
    assert set(send(ledger, broker)["status"]) == {"not_sent"}  # the plan was made by v3


def test_a_version_the_sensor_rejected_or_never_judged_cannot_be_approved_by_hand(live_account):
    ledger, _ = live_account
    with pytest.raises(ApprovalRefused, match="no decision on record.*paper_to_live_promotion_sensor"):
        decide(ledger, "approve")
    ledger.record_promotion("daily_ml", VERSION, "paper", "live", "rejected", ["3 reconciliation breaks"], 20)
    with pytest.raises(ApprovalRefused, match="rejected.*3 reconciliation breaks"):
        decide(ledger, "approve")
    with pytest.raises(ApprovalRefused, match="'approve' or 'reject'.*reason is empty"):
        decide(ledger, "maybe", reason=" ")
    assert approval_store.approvals(ledger.warehouse, "daily_ml").is_empty()
