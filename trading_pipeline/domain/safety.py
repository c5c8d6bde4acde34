"""The keys that must all be turned before an order leaves for a broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trading_pipeline.domain.orders import QUANTITY_EPSILON, OrderIntent, Side


@dataclass(frozen=True, slots=True)
class SubmissionKeys:
    trading_env: str  # local | paper | live
    live_enabled: bool  # the human key: TRADING_LIVE_ENABLED=true
    promotion_approved: bool  # an approved promotion on record for the model in use
    kill_switch_engaged: bool
    dry_run: bool
    risk_failures: tuple[str, ...] = ()  # limits the order path found broken just before sending
    human_approved: bool = False  # live: a person approved the model in use (approval_job)


@dataclass(frozen=True, slots=True)
class SubmissionDecision:
    send: bool
    reasons: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return "all keys turned" if self.send else "; ".join(self.reasons)


def may_submit(keys: SubmissionKeys, reduces_exposure: bool = False) -> SubmissionDecision:
    """Every reason not to send, or permission to send. Local and paper need only dry-run
    off; live needs every key at once. The kill switch and broken risk limits stop new
    entries but let through orders that only reduce exposure (exits, protective stops)."""
    reasons: list[str] = []
    if not reduces_exposure:
        if keys.kill_switch_engaged:
            reasons.append("the kill switch is engaged: no new entries (clear it with "
                           "clear_kill_switch_job)")
        reasons.extend(f"risk check failed: {failure}" for failure in keys.risk_failures)
    if keys.dry_run:
        reasons.append("dry-run is on (TRADING_DRY_RUN=false to send)")
    if keys.trading_env == "live":
        if not keys.live_enabled:
            reasons.append("live trading is not enabled (TRADING_LIVE_ENABLED=true)")
        if not keys.promotion_approved:
            reasons.append("no approved paper-to-live promotion is on record for the model in use")
        if not keys.human_approved:
            reasons.append("no person has approved the model in use for live: record a decision with "
                           "approval_job (strategy, model_version, decision approve, reason, name)")
    elif keys.trading_env not in ("local", "paper"):
        reasons.append(f"unknown TRADING_ENV {keys.trading_env!r}")
    return SubmissionDecision(send=not reasons, reasons=tuple(reasons))


def reduces_exposure(intent: OrderIntent, held: Mapping[str, float]) -> bool:
    """Whether an order only shrinks a position (an exit or a protective stop): such orders
    pass the kill switch and failed order-path checks."""
    position = held.get(intent.symbol, 0.0)
    if intent.side is Side.SELL:
        return position > 0 and intent.quantity <= position + QUANTITY_EPSILON
    return position < 0 and intent.quantity <= -position + QUANTITY_EPSILON
