"""Drift of recent features and predictions against the champion's training reference, and
the decay of the champion's realised rank IC; one `drift_reports` row per account and session."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from html import escape
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.decay import (
    PREDICTION_COLUMNS,
    DecayPolicy,
    DecayResult,
    decay_window,
    overall_severity,
    performance_decay,
)
from trading_pipeline.domain.drift import (
    PREDICTION_COLUMN,
    DriftResult,
    Severity,
    describe_drift,
    evaluate_drift,
    write_evidently_html,
)
from trading_pipeline.domain.factors import feature_set_for
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.services import modeling
from trading_pipeline.storage import account_tables, market_store
from trading_pipeline.storage.warehouse import Warehouse

REFERENCE_SESSIONS = 250
DRIFT_TABLE = "drift_reports"
PREDICTIONS_TABLE = "predictions"
# One row per session. `severity` is what the rollback sensor acts on: the data drift's
# (`data_severity`), raised to severe by a breached decay.
DRIFT_ROW_SCHEMA: dict[str, pl.DataType] = {
    "session": pl.Date(), "model_version": pl.String(), "severity": pl.String(),
    "data_severity": pl.String(), "drifted_share": pl.Float64(), "drifted_count": pl.Int64(),
    "prediction_drift_score": pl.Float64(), "prediction_drifted": pl.Boolean(),
    "decay_rank_ic": pl.Float64(), "decay_sessions": pl.Int64(), "decay_breached": pl.Boolean(),
    "reasons": pl.String(), "html_path": pl.String(),
}
_SQL_TYPES = {pl.Date(): "date", pl.String(): "varchar", pl.Float64(): "double",
              pl.Int64(): "bigint", pl.Boolean(): "boolean"}
def drift_columns(feature_columns: tuple[str, ...]) -> tuple[str, ...]:
    """A model's columns to judge: its features but the cross-sectional ranks (uniform every
    session by construction: they cannot drift and would only dilute the drifted share), and
    its score."""
    return (*(c for c in feature_columns if not c.startswith("rank_")), "score")


DRIFT_COLUMNS = drift_columns(FEATURE_COLUMNS)  # the default (small) set's
# Normalised Wasserstein distance: how far a column's distribution moved, in reference
# standard deviations. Calibrated on the synthetic market (50 symbols, 20-session window,
# 2024): without a regime shift the per-column median is 0.09-0.50 (max 1.35); after the
# shift 1.1-3.6. Evidently's default of 0.1 flagged 50-75 % of columns on quiet days.
DRIFT_METHOD = "wasserstein"
# Decay threshold (TRADING_DECAY_MIN_RANK_IC = -0.15): on the calm synthetic market (50 symbols,
# champion trained through 2023-12-29, 250 sessions, 9 seeds) the 20-session mean rank IC of a
# working model fell to -0.128 at worst; 0.8 % of 2,124 judged sessions were below -0.10 and
# 6.6 % below -0.05 (median about +0.04). -0.05 would have false-alarmed on 21 of seed 7's first
# 60 sessions. Data drift catches the regime shift first
# (14 sessions after it); the decay is the backstop for a model that has turned clearly wrong.


def _scored_features(warehouse: Warehouse, model, first: date, last: date) -> pl.DataFrame:
    """The model's own features (the set it was trained on, whatever TRADING_FEATURE_SET says
    now) of `first`..`last`, with its scores."""
    chosen = feature_set_for(model.feature_columns)
    lookback = sessions_back(first, max(MIN_HISTORY_SESSIONS, chosen.lookback) + 1)[0]
    bars = market_store.read_bars_through(warehouse, last, lookback)
    columns = list(model.feature_columns)
    features = (compute_features(bars, chosen.name).filter(pl.col("session").is_between(first, last))
                .drop_nulls(columns))
    scores = model.predict(features.select("session", "symbol", *columns))
    return features.join(scores.select("session", "symbol", "score"), on=["session", "symbol"])


@dataclass(frozen=True)
class DriftReport:
    model_version: str
    severity: Severity  # the data drift's, or severe when the decay is breached
    reasons: str  # what made the severity, for a human
    drift: DriftResult
    decay: DecayResult
    row: pl.DataFrame  # as written to DRIFT_TABLE


def champion_decay(warehouse: Warehouse, model_version: str, session: date, *,
                   horizon: int, policy: DecayPolicy, training_end: date | None = None,
                   account: str | None = None) -> DecayResult:
    """The decay figure of `model_version` on `session` from `account`'s stored predictions and
    bars; with `training_end`, only its scores of later sessions count."""
    window = decay_window(session, horizon, policy.window)
    predictions = modeling.read_predictions(warehouse, account, window[0], window[-1])
    if predictions.is_empty():
        predictions = pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String,
                                           "score": pl.Float64, "model_version": pl.String})
    # Bars through `session` only: returns after it are unknown on the day, whatever is stored.
    bars = market_store.read_bars_through(warehouse, session, window[0])
    labels = forward_return_labels(bars, horizon)
    return performance_decay(predictions.select(PREDICTION_COLUMNS), labels, as_of=session,
                             model_version=model_version, horizon=horizon, policy=policy,
                             training_end=training_end)


def drift_for_session(warehouse: Warehouse, registry: ModelRegistry, session: date, *,
                      window: int, warn_share: float, severe_share: float,
                      column_threshold: float, html_path: Path | None,
                      decay: DecayPolicy, horizon: int,
                      model_version: str | None = None, account: str | None = None) -> DriftReport:
    """Data and prediction drift of the last `window` sessions against the training reference
    of the version that scored `session`, and that version's performance decay over
    `horizon`-session returns; writes the session's row to DRIFT_TABLE. The version: the given
    one, else the one recorded on the session's predictions, else the point-in-time choice
    (the champion, unless its labels end on or after `session`). `html_path` None skips the
    HTML report. `account`: whose predictions are judged and whose row is written (paper and
    live keep their own)."""
    version = (model_version or modeling.version_used(warehouse, session, account)
               or modeling.model_for_session(warehouse, registry, session).version)
    model = registry.load(version)
    _, trained_through = registry.training_window(model.version)
    reference_sessions = sessions_back(trained_through, REFERENCE_SESSIONS)
    reference = _scored_features(warehouse, model, reference_sessions[0], trained_through)
    recent = sessions_back(session, window)
    current = _scored_features(warehouse, model, recent[0], session)
    columns = drift_columns(model.feature_columns)
    result = evaluate_drift(reference, current, columns, warn_share=warn_share,
                            severe_share=severe_share, html_path=None,
                            method=DRIFT_METHOD, threshold=column_threshold)
    decayed = champion_decay(warehouse, model.version, session, horizon=horizon, policy=decay,
                             training_end=registry.training_end(model.version), account=account)
    severity = overall_severity(result.severity, decayed)
    reasons = f"{describe_drift(result, warn_share, severe_share)}; {decayed.describe()}"
    if html_path is not None:
        result = replace(result, html_path=_write_html(
            html_path, reference, current, columns, result, severity, reasons, severe_share, column_threshold))
    row = pl.DataFrame({
        "session": [session], "model_version": [model.version], "severity": [severity],
        "data_severity": [result.severity], "drifted_share": [result.drifted_share],
        "drifted_count": [result.drifted_count],
        "prediction_drift_score": [result.prediction_drift_score],
        "prediction_drifted": [result.prediction_drifted],
        "decay_rank_ic": [decayed.rank_ic], "decay_sessions": [decayed.sessions],
        "decay_breached": [decayed.breached], "reasons": [reasons],
        "html_path": [str(html_path) if html_path is not None else None],
    }, schema=DRIFT_ROW_SCHEMA)
    add_missing_drift_columns(warehouse)
    account_tables.write_account_session(warehouse, DRIFT_TABLE, account, session, row)
    return DriftReport(model.version, severity, reasons, result, decayed, row)


NO_MODEL = "no model in use"


def no_model_in_use(warehouse: Warehouse, session: date, account: str | None = None) -> str | None:
    """When no version scored `account`'s `session` (hold cash, see `modeling.record_unscored`):
    write the session's row saying so (severity none: nothing to judge, nothing to roll back)
    and return its reasons; None when a version scored it (judge that one)."""
    nothing = modeling.unscored(warehouse, session, account)
    if nothing is None:
        return None
    reasons = f"{NO_MODEL}: {nothing.reason}. Next: {nothing.next_step}"
    row = pl.DataFrame({"session": [session], "severity": ["none"], "reasons": [reasons]}).with_columns(
        *(pl.lit(None, dtype).alias(column) for column, dtype in DRIFT_ROW_SCHEMA.items()
          if column not in ("session", "severity", "reasons"))).select(
        [pl.col(column).cast(dtype) for column, dtype in DRIFT_ROW_SCHEMA.items()])
    add_missing_drift_columns(warehouse)
    account_tables.write_account_session(warehouse, DRIFT_TABLE, account, session, row)
    return reasons


def _write_html(path: Path, reference: pl.DataFrame, current: pl.DataFrame, columns: tuple[str, ...],
                result: DriftResult,
                severity: Severity, reasons: str, severe_share: float, column_threshold: float) -> Path:
    """Evidently's HTML (a distribution plot per column) when the data drifted, where someone will
    look; on a calm day the per-column table alone: Evidently's report costs 10 s or more at
    500 symbols and says nothing the table does not."""
    path = Path(path)
    if result.severity != "none":
        return write_evidently_html(reference, current, columns, path, severe_share=severe_share,
                                    method=DRIFT_METHOD, threshold=column_threshold)
    header = "".join(f"<th>{escape(c)}</th>" for c in result.per_column.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in result.per_column.iter_rows())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title></head><body>"
        f"<h1>Drift: {escape(severity)}</h1><p>{escape(reasons)}</p>"
        f"<p>{result.current_rows} recent rows against {result.reference_rows} reference rows. "
        "No column's data drift reached the warning level, so Evidently's full report (a "
        "distribution plot per column) was not rendered; it is on drift days.</p>"
        f"<table border='1'><tr>{header}</tr>{body}</table></body></html>", encoding="utf-8")
    return path


def summary_table(report: DriftReport, *, warn_share: float, severe_share: float) -> pl.DataFrame:
    """`figure, value, rule` rows for a human: each figure and the threshold it is judged by."""
    drift, decay = report.drift, report.decay
    prediction = drift.per_column.filter(pl.col("column") == PREDICTION_COLUMN)
    decay_value = ("none yet" if decay.rank_ic is None
                   else f"{decay.rank_ic:.3f} over {decay.sessions} sessions")
    decay_status = ("breached" if decay.breached else "not breached" if decay.judged
                    else "too few sessions to judge")
    return pl.DataFrame({
        "figure": ["severity", "data drift", "prediction drift", "rank IC (decay)"],
        "value": [
            report.severity,
            f"{drift.severity}: {drift.drifted_count} of {drift.per_column.height} columns "
            f"({drift.drifted_share:.0%})",
            f"{prediction['score'][0]:.3f} ({'drifted' if prediction['drifted'][0] else 'not drifted'})",
            f"{decay_value} ({decay_status})",
        ],
        "rule": [
            "severe if the data drift is severe or the decay is breached",
            f"warn from {warn_share:.0%} of columns, severe from {severe_share:.0%}",
            f"{prediction['method'][0]}, threshold {prediction['threshold'][0]:.3f}",
            f"breached below {decay.policy.min_rank_ic:.3f} with at least "
            f"{decay.policy.min_sessions} of {decay.policy.window} sessions",
        ],
    })


def add_missing_drift_columns(warehouse: Warehouse) -> None:
    """A `drift_reports` table made by an earlier version lacks the newer columns: add them
    (null in old rows) so the new row can be written. Nothing to do on a new warehouse."""
    if not warehouse.table_exists(DRIFT_TABLE):
        return
    for column, dtype in DRIFT_ROW_SCHEMA.items():
        warehouse.execute(
            f"alter table {DRIFT_TABLE} add column if not exists {column} {_SQL_TYPES[dtype]}")
