"""A person approves: the human decision on a promotion, recorded beside the sensor's.

The promotion sensor judges a model version's track record and records approved, rejected or
needs_review. Going live with a version also needs a person: `record_decision` (run by
approval_job) records who approved or rejected which version and why. Live orders wait for it
(`live_approval`, one of the keys in `domain/safety.py`). A person can settle a needs_review
either way, and can reject an approved version; a version the sensor rejected cannot be
approved by hand: the cause has to go and the sensor has to decide again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from trading_pipeline.domain.promotion import STAGES, Decision
from trading_pipeline.storage import approval_store
from trading_pipeline.storage.ledger import Ledger

APPROVE, REJECT = "approve", "reject"
RECORDED = {APPROVE: "approved", REJECT: "rejected"}


class ApprovalRefused(ValueError):
    """The decision cannot be recorded as asked (a bad form, or an approval of a version the
    promotion sensor rejected)."""


@dataclass(frozen=True)
class HumanDecision:
    strategy: str
    model_version: str
    stage_to: str
    decision: str  # approved | rejected
    operator: str
    reason: str
    recorded_at: datetime
    sensor_decision: str | None  # what the sensor had decided for that version, when recorded
    in_force: str  # what the decision means for the live path, in words


def sensor_decision(ledger: Ledger, strategy: str, model_version: str, stage_to: str) -> dict | None:
    """The promotion sensor's newest decision for that version and stage, or None."""
    rows = ledger.warehouse.query(
        """select * from promotion_decisions where strategy = ? and model_version = ? and stage_to = ?
           order by recorded_at desc limit 1""", [strategy, model_version, stage_to])
    return rows.row(0, named=True) if rows.height else None


def record_decision(ledger: Ledger, *, strategy: str, model_version: str, decision: str, reason: str,
                    operator: str, stage_to: str = "live", run_id: str | None = None) -> HumanDecision:
    """Record a person's approval or rejection of `model_version` for `stage_to`."""
    wanted = decision.strip().lower()
    problems = []
    if wanted not in RECORDED:
        problems.append(f"decision must be 'approve' or 'reject', got {decision!r}")
    if stage_to not in STAGES[1:]:
        problems.append(f"stage_to must be one of {', '.join(STAGES[1:])}, got {stage_to!r}")
    problems += [f"{name} is empty: say {what}" for name, value, what in (
        ("strategy", strategy, "which strategy (TRADING_STRATEGY, e.g. daily_ml)"),
        ("model_version", model_version, "which model version (the sensor's promotion_model_version)"),
        ("reason", reason, "why (it is recorded)"), ("operator", operator, "who decides (it is recorded)"))
        if not str(value).strip()]
    if problems:
        raise ApprovalRefused("approval not recorded: " + "; ".join(problems))
    strategy, model_version = strategy.strip(), str(model_version).strip()
    sensor = sensor_decision(ledger, strategy, model_version, stage_to)
    if wanted == APPROVE:
        if sensor is None:
            raise ApprovalRefused(
                f"approval not recorded: the promotion sensor has no decision on record for {strategy} "
                f"v{model_version} to {stage_to}. A person approves what the sensor has evaluated: let "
                "paper_to_live_promotion_sensor evaluate the version's sessions first (check the model "
                "version on the `performance` asset's promotion_model_version)")
        if sensor["decision"] == str(Decision.REJECTED):
            raise ApprovalRefused(
                f"approval not recorded: the promotion sensor rejected {strategy} v{model_version} for "
                f"{stage_to} on {sensor['recorded_at']:%Y-%m-%d} ({_reasons(sensor)}). A rejection is not "
                "overruled by hand: remove its cause and let the sensor decide again")
    recorded_at = approval_store.record_approval(
        ledger.warehouse, strategy=strategy, model_version=model_version, stage_to=stage_to,
        decision=RECORDED[wanted], reason=reason.strip(), operator=operator.strip(), run_id=run_id,
        sensor_decision=sensor["decision"] if sensor else None,
        sensor_recorded_at=sensor["recorded_at"] if sensor else None)
    return HumanDecision(strategy, model_version, stage_to, RECORDED[wanted], operator.strip(), reason.strip(),
                         recorded_at, sensor["decision"] if sensor else None,
                         _in_force(wanted, stage_to, model_version))


def _reasons(sensor: dict) -> str:
    return "; ".join(json.loads(sensor["reasons"])) or "no reason recorded"


def _in_force(wanted: str, stage_to: str, model_version: str) -> str:
    if wanted == REJECT:
        return (f"rejected: v{model_version} does not trade {stage_to}; nothing else changes (the champion, "
                "the kill switch and the other keys stay as they are)")
    if stage_to == "live":
        return (f"approved: live orders of v{model_version} may be sent once the other keys are turned "
                "(TRADING_LIVE_ENABLED=true, dry-run off, kill switch released)")
    return f"approved for {stage_to}"


def live_approval(ledger: Ledger, strategy: str, model_version: str | None) -> tuple[bool, bool]:
    """(promotion approved, human approved) for `model_version` going live. The promotion counts
    when the sensor approved it, or asked for a review that a person has approved; the human key
    is a person's newest decision for that version being an approval."""
    if model_version is None:
        return False, False
    human = approval_store.latest_approval(ledger.warehouse, strategy, model_version, "live")
    human_approved = human is not None and human["decision"] == RECORDED[APPROVE]
    sensor = sensor_decision(ledger, strategy, model_version, "live")
    decided = sensor["decision"] if sensor else None
    promotion_approved = decided == str(Decision.APPROVED) or (
        decided == str(Decision.NEEDS_REVIEW) and human_approved)
    return promotion_approved, human_approved


def waiting_for_person(ledger: Ledger, strategy: str, model_version: str | None, stage_to: str,
                       sensor: Decision) -> str | None:
    """What a person still has to decide after the sensor's `sensor` decision; None: nothing."""
    if model_version is None or sensor is Decision.REJECTED:
        return None
    if sensor is Decision.APPROVED and stage_to != "live":
        return None  # paper needs no approval: pointing the strategy at the account is the decision
    human = approval_store.latest_approval(ledger.warehouse, strategy, model_version, stage_to)
    if human is not None:
        return None
    return (f"a person's decision on v{model_version} for {stage_to}: run approval_job with strategy "
            f"{strategy}, model_version {model_version}, decision approve or reject, a reason and your name"
            + ("; live orders stay not_sent until an approval is recorded" if stage_to == "live" else ""))
