"""Promotion gates, local simulator -> broker paper account -> live: a decision with every reason.

Rejected: something went wrong that more time will not fix (reconciliation breaks, risk
violations, severe drift, two or more monitor breaches). Needs review: too early, one monitor
breach, or a backtest that expects no profit. Approved: none of these. An approval for live is
a recorded opinion, not a switch: live orders also need the human key (see `safety.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

STAGES = ("local", "paper", "live")


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"


def next_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    if stage == STAGES[-1]:
        raise ValueError("live is the last stage: there is nothing to promote to")
    return STAGES[STAGES.index(stage) + 1]


@dataclass(frozen=True, slots=True)
class PromotionEvidence:
    sessions: int
    total_return: float
    max_drawdown: float  # fraction, <= 0
    reconciliation_breaks: int
    risk_events: int
    severe_drift_sessions: int
    monitor_breaches: tuple[str, ...] = ()  # the monitor's details of each breached check
    expected_sharpe: float | None = None  # the model version's backtest; None: none on record


@dataclass(frozen=True, slots=True)
class PromotionGates:
    min_sessions: int = 20
    max_monitor_breaches: int = 1  # more than this is a rejection; exactly this many, a review


@dataclass(frozen=True, slots=True)
class PromotionResult:
    decision: Decision
    reasons: tuple[str, ...]
    checks: dict[str, bool] = field(default_factory=dict)  # gate -> passed


def evaluate_promotion(evidence: PromotionEvidence, gates: PromotionGates) -> PromotionResult:
    checks = {
        "time": evidence.sessions >= gates.min_sessions,
        "reconciliation": evidence.reconciliation_breaks == 0,
        "risk": evidence.risk_events == 0,
        "drift": evidence.severe_drift_sessions == 0,
        "performance": not evidence.monitor_breaches,
        "expectation": evidence.expected_sharpe is not None and evidence.expected_sharpe > 0,
    }
    rejections, reviews = [], []
    if not checks["time"]:
        reviews.append(f"only {evidence.sessions} of the {gates.min_sessions} sessions needed have been "
                       "traded on this model version's predictions at this stage's account")
    if not checks["reconciliation"]:
        rejections.append(f"{evidence.reconciliation_breaks} reconciliation breaks in the window")
    if not checks["risk"]:
        rejections.append(f"{evidence.risk_events} risk violations in the window")
    if not checks["drift"]:
        rejections.append(f"severe drift on {evidence.severe_drift_sessions} sessions")
    breached = [f"monitor: {detail}" for detail in evidence.monitor_breaches]
    (rejections if len(breached) > gates.max_monitor_breaches else reviews).extend(breached)
    if evidence.expected_sharpe is None:
        reviews.append("no backtest on record for the model version in use")
    elif not checks["expectation"]:
        reviews.append(f"the version's backtest expects no profit (Sharpe {evidence.expected_sharpe:.2f})")
    if rejections:
        return PromotionResult(Decision.REJECTED, tuple(rejections + reviews), checks)
    if reviews:
        return PromotionResult(Decision.NEEDS_REVIEW, tuple(reviews), checks)
    return PromotionResult(Decision.APPROVED, (
        f"{evidence.sessions} sessions, return {evidence.total_return:+.2%}, max drawdown "
        f"{-evidence.max_drawdown:.1%}, within the backtest's tolerance; no breaks, no risk "
        f"violations, no severe drift; backtest Sharpe {evidence.expected_sharpe:.2f}",), checks)
