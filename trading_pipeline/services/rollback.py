"""What a drift report asks of the champion: nothing, a rollback, or a human (an alert).

Loops are ruled out three ways: one decision per report (the caller keeps the report key), at
most one rollback per drift episode (an episode ends at the first report that is not severe),
and never onto a version that had a severe report itself, nor below the first version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Literal

from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.services.drift import DRIFT_TABLE
from trading_pipeline.storage.account_tables import ensure_account_column, own_rows
from trading_pipeline.services.modeling import rollback_champion
from trading_pipeline.storage.ledger import Ledger

Action = Literal["none", "rolled_back", "alert"]


@dataclass(frozen=True)
class RollbackDecision:
    report_key: str | None
    action: Action
    reason: str
    session: date | None = None
    moved: tuple[str, str] | None = None  # (from, to) when rolled back


def latest_report(ledger: Ledger, account: str | None = None) -> dict | None:
    """The newest drift report of `account` (each environment judges the scores it traded on)."""
    warehouse = ledger.warehouse
    if not ensure_account_column(warehouse, DRIFT_TABLE):
        return None
    own, params = own_rows(DRIFT_TABLE, account)
    rows = warehouse.query(f"select * from {DRIFT_TABLE} t where {own} order by session desc limit 1", params)
    return rows.row(0, named=True) if rows.height else None


def report_key(report: dict) -> str:
    return f"{report['session']}:{report['model_version']}:{report['severity']}"


def decide_on_latest_report(ledger: Ledger, registry: ModelRegistry, *, auto_rollback: bool,
                            handled_key: str | None, account: str | None = None) -> RollbackDecision:
    report = latest_report(ledger, account)
    if report is None:
        return RollbackDecision(None, "none", "no drift report yet")
    key = report_key(report)
    if key == handled_key:
        return RollbackDecision(key, "none", f"report {key} already handled")
    if report["severity"] != "severe":
        return RollbackDecision(key, "none", f"latest report ({key}) is {report['severity']}")
    if registry.champion_version() != report["model_version"]:
        return RollbackDecision(key, "none", f"report {key} is about a version that is no longer champion")
    session = report["session"]
    why = report.get("reasons") or f"{report['drifted_share']:.0%} of columns drifted"
    reason = f"severe drift on {session} for v{report['model_version']}: {why}"
    if not auto_rollback:
        return RollbackDecision(key, "alert", f"{reason}; auto-rollback is off (TRADING_AUTO_ROLLBACK): "
                                "review the drift report and move the champion alias by hand", session)
    earlier = rollback_in_episode(ledger, registry.model_name, session)
    if earlier is not None:
        return RollbackDecision(key, "alert", f"{reason}; drift persists after the rollback for the "
                                f"report of {earlier}: one rollback per episode, retrain or review", session)
    moved = rollback_champion(registry, ledger, reason, flagged_versions(ledger),
                              {"report_session": str(session), "report_key": key,
                               "drifted_share": report["drifted_share"]})
    if moved is None:
        return RollbackDecision(key, "alert", f"{reason}; no earlier version free of severe drift "
                                "to roll back to", session)
    return RollbackDecision(key, "rolled_back", reason, session, moved)


def flagged_versions(ledger: Ledger) -> set[str]:
    return set(ledger.warehouse.query(
        f"select distinct model_version from {DRIFT_TABLE} where severity = 'severe'")["model_version"])


def rollback_in_episode(ledger: Ledger, model_name: str, session: date) -> date | None:
    """The report session of a rollback made since the last report that was not severe."""
    calm = ledger.warehouse.scalar(
        f"select max(session) from {DRIFT_TABLE} where severity <> 'severe' and session < ?", [session])
    events = ledger.model_events(model_name)
    for row in events.filter(events["action"] == "rollback").iter_rows(named=True):
        reported = json.loads(row["metrics"] or "{}").get("report_session")
        if reported and (calm is None or date.fromisoformat(reported) > calm):
            return date.fromisoformat(reported)
    return None
