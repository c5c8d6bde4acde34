"""Paper-to-live promotion gates: a decision with every reason listed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True, slots=True)
class PromotionEvidence:
    sessions: int
    total_return: float
    max_drawdown: float  # fraction, <= 0
    reconciliation_breaks: int
    risk_events: int
    severe_drift_sessions: int


@dataclass(frozen=True, slots=True)
class PromotionGates:
    min_sessions: int = 20
    max_drawdown: float = 0.15  # as a positive fraction
    min_total_return: float = 0.0


@dataclass(frozen=True, slots=True)
class PromotionResult:
    decision: Decision
    reasons: tuple[str, ...]


def evaluate_promotion(evidence: PromotionEvidence, gates: PromotionGates) -> PromotionResult:
    if evidence.sessions < gates.min_sessions:
        return PromotionResult(
            Decision.NEEDS_REVIEW,
            (f"only {evidence.sessions} of {gates.min_sessions} paper sessions on record",),
        )
    failures: list[str] = []
    if evidence.reconciliation_breaks:
        failures.append(f"{evidence.reconciliation_breaks} reconciliation breaks in the window")
    if evidence.risk_events:
        failures.append(f"{evidence.risk_events} risk violations in the window")
    if evidence.severe_drift_sessions:
        failures.append(f"severe drift on {evidence.severe_drift_sessions} sessions")
    if -evidence.max_drawdown > gates.max_drawdown:
        failures.append(
            f"max drawdown {-evidence.max_drawdown:.1%} exceeds {gates.max_drawdown:.1%}"
        )
    if evidence.total_return < gates.min_total_return:
        failures.append(
            f"return {evidence.total_return:.2%} is below {gates.min_total_return:.2%}"
        )
    if failures:
        return PromotionResult(Decision.REJECTED, tuple(failures))
    return PromotionResult(
        Decision.APPROVED,
        (
            f"{evidence.sessions} sessions, return {evidence.total_return:.2%}, "
            f"max drawdown {-evidence.max_drawdown:.1%}, no breaks, no risk violations, no severe drift",
        ),
    )
