"""Gather the track record of the current stage and evaluate the promotion gates."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.orders import OrderStatus
from trading_pipeline.domain.promotion import (
    Decision,
    PromotionEvidence,
    PromotionGates,
    PromotionResult,
    TradingActivity,
    evaluate_promotion,
    next_stage,
)
from trading_pipeline.services import backtest
from trading_pipeline.services.monitor import MONITOR_TABLE
from trading_pipeline.storage.account_tables import PER_ACCOUNT_TABLES, ensure_account_column, own_rows
from trading_pipeline.storage.ledger import Ledger


ACCOUNT_KEYED = ("reconciliation_breaks",)  # trading tables written per account (services/trading.py)
NO_MODEL_IN_USE = ("no model version in use (no champion): nothing to promote until training_job makes "
                   "one; with TRADING_WITHOUT_SIGNAL=hold_cash the account holds cash meanwhile")


@dataclass(frozen=True)
class PromotionOutcome:
    key: str
    stage_from: str
    stage_to: str
    model_version: str | None
    result: PromotionResult
    waiting_for: str | None  # what a human still has to do before the next stage trades


def version_track_record(ledger: Ledger, venue: str, model_version: str) -> pl.DataFrame:
    """session, equity of the account at `venue` over `model_version`'s current tenure: the
    newest unbroken run of sessions whose predictions that version made. An approval is for a
    version, so it rests on that version's own sessions, never on a predecessor's."""
    warehouse = ledger.warehouse
    if not ensure_account_column(warehouse, "predictions"):
        return pl.DataFrame(schema={"session": pl.Date, "equity": pl.Float64})
    own, params = own_rows("predictions", venue)  # the versions this account traded on
    days = warehouse.query(
        f"""select a.session, a.equity, p.model_version
           from ledger_account a
           left join (select session, any_value(model_version) model_version
                      from predictions t where {own} group by session) p using (session)
           where a.broker = ? order by a.session""", [*params, venue])
    other = days.with_row_index().filter(pl.col("model_version").fill_null("") != model_version)
    since = int(other["index"].max()) + 1 if other.height else 0
    return days.slice(since).select("session", "equity")


def gather_evidence(ledger: Ledger, venue: str, sessions: int, model_version: str | None) -> PromotionEvidence:
    """The last `sessions` sessions of `model_version`'s tenure at `venue` (fewer when the tenure
    is shorter) and what happened in them."""
    warehouse = ledger.warehouse
    if model_version is None:
        return PromotionEvidence(0, 0.0, 0.0, 0, 0, 0)
    # the gate's verdict stands whatever the track record: a noise version is refused from day one
    signal_passed = signal_gate_passed(ledger, model_version)
    window = version_track_record(ledger, venue, model_version).tail(sessions)
    if window.is_empty():
        return PromotionEvidence(0, 0.0, 0.0, 0, 0, 0, signal_passed=signal_passed)
    first, last = window["session"][0], window["session"][-1]
    curve = perf.equity_curve(window, float(window["equity"][0]))
    stats = perf.summary(curve, float(window["equity"][0]))

    def count(table: str, where: str) -> int:
        """Rows of `venue`'s account only: another environment's record is not this one's."""
        if not warehouse.table_exists(table):  # asset tables appear with their first run
            return 0
        if table in PER_ACCOUNT_TABLES:
            ensure_account_column(warehouse, table)
            own, params = own_rows(table, venue)
        elif table in ACCOUNT_KEYED:
            own, params = "t.account = ?", [venue]
        else:  # risk_events carry no account yet
            own, params = "true", []
        return int(warehouse.scalar(f"select count(*) from {table} t where {where} and {own}",
                                    [first, last, *params]))

    breached = ()
    if ensure_account_column(warehouse, MONITOR_TABLE):
        # the latest session's checks cover the whole track record
        own, params = own_rows(MONITOR_TABLE, venue)
        breached = tuple(warehouse.query(
            f"select detail from {MONITOR_TABLE} t where breached and {own} and session = "
            f"(select max(session) from {MONITOR_TABLE} t where session <= ? and {own}) "
            "order by \"check\"", [*params, last, *params])["detail"])
    try:
        expected_sharpe = float(backtest.expectation(warehouse, model_version)["sharpe"])
    except backtest.ExpectationNotFound:
        expected_sharpe = None
    return PromotionEvidence(
        signal_passed=signal_passed,
        activity=trading_activity(ledger, venue, first, last),
        sessions=window.height,
        total_return=stats["total_return"],
        max_drawdown=stats["max_drawdown"],
        reconciliation_breaks=count("reconciliation_breaks", "session between ? and ?"),
        risk_events=count("risk_events", "session between ? and ?"),
        severe_drift_sessions=count("drift_reports", "severity = 'severe' and session between ? and ?"),
        monitor_breaches=breached,
        expected_sharpe=expected_sharpe,
    )


def signal_gate_passed(ledger: Ledger, model_version: str) -> bool | None:
    """The signal gate's verdict recorded when `model_version` was registered; None when the
    version was trained before the gate existed."""
    warehouse = ledger.warehouse
    if not warehouse.table_exists("model_events"):
        return None
    recorded = warehouse.scalar(
        "select json_extract(metrics, '$.signal_passed') from model_events where version = ? "
        "and action = 'registered' order by recorded_at desc limit 1", [model_version])
    return None if recorded is None else float(recorded) > 0


# Statuses a broker gives an order it received; intents never sent (dry run, held back, a
# crash before the send, an unknown outcome) are not evidence of trading either way.
SENT_STATUSES = tuple(str(status) for status in OrderStatus)
POSITION_EPSILON = 1e-9


def trading_activity(ledger: Ledger, venue: str, first, last) -> TradingActivity:
    """What the account at `venue` did on the sessions `first`..`last`, read from the ledger:
    orders of those sessions that got a fill, sessions whose close found a position held,
    orders the broker answered and those it rejected."""
    warehouse = ledger.warehouse

    def scalar(table: str, sql: str, params: list) -> int:
        if not warehouse.table_exists(table):
            return 0
        return int(warehouse.scalar(sql, params) or 0)

    placeholders = ", ".join("?" for _ in SENT_STATUSES)
    orders = ("from ledger_orders where broker = ? and session between ? and ? "
              f"and status in ({placeholders})")
    return TradingActivity(
        filled_orders=scalar("ledger_fills", """
            select count(distinct f.client_order_id) from ledger_fills f
            join ledger_orders o using (client_order_id)
            where f.broker = ? and o.session between ? and ?""", [venue, first, last]),
        exposure_sessions=scalar("ledger_positions", """
            select count(distinct session) from ledger_positions
            where broker = ? and session between ? and ? and abs(quantity) > ?""",
            [venue, first, last, POSITION_EPSILON]),
        sent_orders=scalar("ledger_orders", f"select count(*) {orders}",
                           [venue, first, last, *SENT_STATUSES]),
        rejected_orders=scalar("ledger_orders", f"select count(*) {orders} and status = 'rejected'",
                               [venue, first, last, *SENT_STATUSES]),
    )


def evaluate_and_record(ledger: Ledger, strategy: str, venue: str, model_version: str | None,
                        gates: PromotionGates, stage_from: str, live_enabled: bool,
                        last_key: str | None) -> PromotionOutcome | None:
    """Decide once per new session on record at `venue` (the account of `stage_from`); None
    when nothing new happened."""
    stage_to = next_stage(stage_from)
    evidence = gather_evidence(ledger, venue, gates.min_sessions, model_version)
    last_session = ledger.warehouse.scalar("select max(session) from ledger_account where broker = ?",
                                           [venue])
    key = f"{last_session}:{evidence.sessions}:{model_version}"
    if key == last_key:
        return None
    result = (evaluate_promotion(evidence, gates) if model_version is not None else
              PromotionResult(Decision.REJECTED, (NO_MODEL_IN_USE,), {"model": False}))
    waiting_for = None
    if result.decision is Decision.APPROVED:
        waiting_for = _human_step(stage_to, live_enabled)
    reasons = result.reasons + ((f"waiting for a human: {waiting_for}",) if waiting_for else ())
    ledger.record_promotion(strategy, model_version, stage_from, stage_to, str(result.decision),
                            reasons, evidence.sessions)
    return PromotionOutcome(key, stage_from, stage_to, model_version,
                            PromotionResult(result.decision, reasons, result.checks), waiting_for)


def _human_step(stage_to: str, live_enabled: bool) -> str:
    if stage_to == "paper":
        return ("point the strategy at the broker's paper account: TRADING_ENV=paper and "
                "TRADING_BROKER=alpaca or ibkr with their paper credentials")
    if not live_enabled:
        return ("live orders also need the human key TRADING_LIVE_ENABLED=true with TRADING_ENV=live; "
                "until then nothing is sent live")
    return "TRADING_ENV=live; orders are sent once dry-run is off (TRADING_DRY_RUN=false)"
