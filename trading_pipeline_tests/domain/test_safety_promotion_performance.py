import itertools
from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.performance import equity_curve, summary
from trading_pipeline.domain.promotion import (
    Decision,
    PromotionEvidence,
    PromotionGates,
    TradingActivity,
    evaluate_promotion,
    next_stage,
)
from trading_pipeline.domain.safety import SubmissionKeys, may_submit

TRADED = TradingActivity(filled_orders=40, exposure_sessions=20, sent_orders=42, rejected_orders=1)


def test_exactly_one_combination_of_live_keys_sends():
    sent = []
    for live_enabled, approved, killed, dry in itertools.product([True, False], repeat=4):
        # "approved": the sensor's promotion and a person's approval (approval_job) both on record
        decision = may_submit(SubmissionKeys("live", live_enabled, approved, killed, dry, human_approved=approved))
        if decision.send:
            sent.append((live_enabled, approved, killed, dry))
        else:
            assert decision.reasons  # every refusal says why
    assert sent == [(True, True, False, False)]


def test_local_sends_unless_killed_or_dry_run():
    assert may_submit(SubmissionKeys("local", False, False, False, False)).send
    killed = may_submit(SubmissionKeys("local", False, False, True, False))
    assert not killed.send and "kill switch" in killed.explanation


def test_promotion_decisions():
    gates = PromotionGates(min_sessions=20)
    good = PromotionEvidence(30, 0.02, -0.03, 0, 0, 0, expected_sharpe=1.2, activity=TRADED)
    approved = evaluate_promotion(good, gates)
    assert approved.decision is Decision.APPROVED and all(approved.checks.values())
    early = PromotionEvidence(5, 0.02, -0.03, 0, 0, 0, expected_sharpe=1.2)
    assert evaluate_promotion(early, gates).decision is Decision.NEEDS_REVIEW
    bad = evaluate_promotion(PromotionEvidence(30, -0.1, -0.3, 2, 1, 3, ("return a", "sharpe b"),
                                               expected_sharpe=1.0, activity=TRADED), gates)
    assert bad.decision is Decision.REJECTED
    assert bad.reasons == ("2 reconciliation breaks in the window", "1 risk violations in the window",
                           "severe drift on 3 sessions", "monitor: return a", "monitor: sharpe b")


def test_one_monitor_breach_or_no_expected_profit_is_a_review_not_an_approval():
    gates = PromotionGates(min_sessions=20)
    one = evaluate_promotion(PromotionEvidence(30, 0.0, -0.02, 0, 0, 0, ("daily loss",), 1.0, TRADED), gates)
    assert one.decision is Decision.NEEDS_REVIEW and one.reasons == ("monitor: daily loss",)
    for sharpe, words in ((None, "no backtest on record"), (-0.3, "expects no profit")):
        result = evaluate_promotion(PromotionEvidence(30, 0.05, -0.02, 0, 0, 0, (), sharpe, TRADED), gates)
        assert result.decision is Decision.NEEDS_REVIEW and words in result.reasons[0]
    # every reason is listed: too early and a rejection together
    both = evaluate_promotion(PromotionEvidence(3, 0.0, 0.0, 1, 0, 0, (), 1.0, TRADED), gates)
    assert both.decision is Decision.REJECTED and len(both.reasons) == 2


def test_stages_go_local_paper_live():
    assert next_stage("local") == "paper" and next_stage("paper") == "live"
    with pytest.raises(ValueError, match="last stage"):
        next_stage("live")
    with pytest.raises(ValueError, match="unknown stage"):
        next_stage("prod")


def test_equity_curve_pnl_and_drawdown():
    account = pl.DataFrame({"session": [date(2024, 1, d) for d in (2, 3, 4)], "equity": [110.0, 99.0, 121.0]})
    curve = equity_curve(account, 100.0)
    assert curve["daily_pnl"].to_list() == pytest.approx([10.0, -11.0, 22.0])
    assert curve["drawdown"].to_list() == pytest.approx([0.0, 99 / 110 - 1, 0.0])
    stats = summary(curve, 100.0)
    assert stats["total_return"] == pytest.approx(0.21)
    assert stats["max_drawdown"] == pytest.approx(99 / 110 - 1)


def test_kill_switch_and_risk_failures_stop_entries_but_not_exits():
    keys = SubmissionKeys("paper", False, False, True, False, risk_failures=("max_orders_per_day",))
    entry = may_submit(keys)
    assert not entry.send and "kill switch" in entry.explanation and "max_orders_per_day" in entry.explanation
    assert may_submit(keys, reduces_exposure=True).send
    dry = SubmissionKeys("paper", False, False, False, True)
    assert not may_submit(dry, reduces_exposure=True).send  # dry-run holds back everything
