"""Promotion gates, local simulator -> broker paper account -> live: a decision with every reason.

Rejected: something went wrong that more time will not fix (reconciliation breaks, risk
violations, severe drift, two or more monitor breaches, too many rejected orders), or the time
is up and the account did not trade (too few filled orders or sessions holding positions).
Needs review: too early, one monitor breach, or a backtest that expects no profit. Approved:
none of these. An approval for live is
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
class TradingActivity:
    """What the account did in the window, from the ledger: evidence that the strategy traded."""

    filled_orders: int = 0  # distinct orders with at least one fill
    exposure_sessions: int = 0  # sessions that ended holding a position
    sent_orders: int = 0  # orders the broker answered (accepted or rejected)
    rejected_orders: int = 0

    @property
    def rejected_share(self) -> float | None:
        return self.rejected_orders / self.sent_orders if self.sent_orders else None


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
    activity: TradingActivity = TradingActivity()
    # The version against its shuffled-label control when trained: True passed, False failed
    # (no better than noise), None no test on record (a version trained before the gate).
    signal_passed: bool | None = None


@dataclass(frozen=True, slots=True)
class PromotionGates:
    min_sessions: int = 20
    max_monitor_breaches: int = 1  # more than this is a rejection; exactly this many, a review
    # A record earns its promotion only if the strategy traded: a quiet account (no fills, no
    # positions) has nothing to say about the strategy, however clean it looks.
    min_filled_orders: int = 10
    min_exposure_sessions: int = 10
    max_rejected_share: float = 0.10  # of the orders sent

    def __post_init__(self) -> None:
        if not 1 <= self.min_exposure_sessions <= self.min_sessions:
            raise ValueError(
                f"promotion min_exposure_sessions ({self.min_exposure_sessions}) must be between 1 and "
                f"min_sessions ({self.min_sessions}), the sessions evaluated: lower "
                "TRADING_PROMOTION_MIN_EXPOSURE_SESSIONS or raise TRADING_PROMOTION_MIN_SESSIONS")
        if self.min_filled_orders < 1:
            raise ValueError(f"promotion min_filled_orders must be at least 1, got {self.min_filled_orders}")
        if not 0 <= self.max_rejected_share < 1:
            raise ValueError(f"promotion max_rejected_share lies in [0, 1), got {self.max_rejected_share}")


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
        **_activity_checks(evidence.activity, gates),
        "signal": evidence.signal_passed is not False,
    }
    rejections, reviews = [], []
    if not checks["time"]:
        reviews.append(f"only {evidence.sessions} of the {gates.min_sessions} sessions needed have been "
                       "traded on this model version's predictions at this stage's account")
    # Too few fills or held sessions is a rejection once the time is up (the account did not
    # trade), only a review before it; too many rejected orders is a rejection at any time.
    shortfall = _activity_shortfalls(evidence.activity, gates, checks)
    (rejections if checks["time"] else reviews).extend(shortfall)
    if not checks["rejections"]:
        activity = evidence.activity
        rejections.append(f"{activity.rejected_orders} of {activity.sent_orders} orders sent were "
                          f"rejected ({activity.rejected_share:.0%}), above the "
                          f"{gates.max_rejected_share:.0%} allowed")
    if not checks["signal"]:
        rejections.append("the model version did not beat its shuffled-label control out of sample "
                          "(signal gate): a model no better than noise is never promoted")
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
    activity = evidence.activity
    return PromotionResult(Decision.APPROVED, (
        f"{evidence.sessions} sessions, return {evidence.total_return:+.2%}, max drawdown "
        f"{-evidence.max_drawdown:.1%}, within the backtest's tolerance; {activity.filled_orders} "
        f"orders filled, positions held on {activity.exposure_sessions} sessions, "
        f"{activity.rejected_orders} of {activity.sent_orders} orders sent rejected; no breaks, no "
        f"risk violations, no severe drift; backtest Sharpe {evidence.expected_sharpe:.2f}",), checks)


def _activity_checks(activity: TradingActivity, gates: PromotionGates) -> dict[str, bool]:
    share = activity.rejected_share
    return {
        "fills": activity.filled_orders >= gates.min_filled_orders,
        "exposure": activity.exposure_sessions >= gates.min_exposure_sessions,
        # nothing sent is no evidence either way: the fills gate speaks for it
        "rejections": share is None or share <= gates.max_rejected_share,
    }


def _activity_shortfalls(activity: TradingActivity, gates: PromotionGates,
                         checks: dict[str, bool]) -> list[str]:
    reasons = []
    if not checks["fills"]:
        sent = ("no order was sent to the broker" if activity.sent_orders == 0
                else f"{activity.sent_orders} orders were sent")
        reasons.append(f"no evidence the strategy traded: {activity.filled_orders} orders filled, at "
                       f"least {gates.min_filled_orders} needed ({sent})")
    if not checks["exposure"]:
        reasons.append(f"positions were held on {activity.exposure_sessions} sessions, at least "
                       f"{gates.min_exposure_sessions} needed")
    return reasons
