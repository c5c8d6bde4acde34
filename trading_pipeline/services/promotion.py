"""Gather the paper track record and evaluate the promotion gates."""

from __future__ import annotations

from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.promotion import (
    PromotionEvidence,
    PromotionGates,
    PromotionResult,
    evaluate_promotion,
)
from trading_pipeline.storage.ledger import Ledger

STAGE_AFTER = {"local": "paper", "paper": "live"}


def gather_evidence(ledger: Ledger, sessions: int) -> PromotionEvidence:
    warehouse = ledger.warehouse
    # ledger tables always exist (created with the warehouse); asset tables may not yet
    window = warehouse.query("select session, equity from ledger_account order by session").tail(sessions)
    if window.is_empty():
        return PromotionEvidence(0, 0.0, 0.0, 0, 0, 0)
    first, last = window["session"][0], window["session"][-1]
    curve = perf.equity_curve(window, float(window["equity"][0]))
    stats = perf.summary(curve, float(window["equity"][0]))

    def count(table: str, where: str) -> int:
        if not warehouse.table_exists(table):
            return 0
        return int(warehouse.scalar(f"select count(*) from {table} where {where}", [first, last]))

    return PromotionEvidence(
        sessions=window.height,
        total_return=stats["total_return"],
        max_drawdown=stats["max_drawdown"],
        reconciliation_breaks=count("reconciliation_breaks", "session between ? and ?"),
        risk_events=count("risk_events", "session between ? and ?"),
        severe_drift_sessions=count("drift_reports", "severity = 'severe' and session between ? and ?"),
    )


def evaluate_and_record(ledger: Ledger, strategy: str, model_version: str | None,
                        gates: PromotionGates, stage_from: str,
                        last_key: str | None) -> tuple[str, PromotionResult] | None:
    """Decide once per new session on record; None when nothing new happened."""
    evidence = gather_evidence(ledger, gates.min_sessions)
    last_session = ledger.warehouse.scalar("select max(session) from ledger_account")
    key = f"{last_session}:{evidence.sessions}:{model_version}"
    if key == last_key:
        return None
    result = evaluate_promotion(evidence, gates)
    ledger.record_promotion(strategy, model_version, stage_from, STAGE_AFTER.get(stage_from, "live"),
                            str(result.decision), result.reasons, evidence.sessions)
    return key, result
