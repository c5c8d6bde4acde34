"""Data and prediction drift of recent rows against a reference window (Evidently).

Evidently picks a test per column from the data (Kolmogorov-Smirnov p-value for up to 1,000
reference rows, normed Wasserstein distance above that) and says per column whether it
drifted; the share of drifted columns sets the severity. Evidently takes seconds to import,
so it is imported inside `evaluate_drift` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

PREDICTION_COLUMN = "score"
Severity = Literal["none", "warn", "severe"]


@dataclass(frozen=True)
class DriftResult:
    per_column: pl.DataFrame  # column, method, score, threshold, drifted
    drifted_count: int
    drifted_share: float
    severity: Severity
    html_path: Path | None
    prediction_drifted: bool | None  # None when no `score` column was evaluated
    prediction_drift_score: float | None
    reference_rows: int
    current_rows: int


def severity_of(drifted_share: float, warn_share: float, severe_share: float) -> Severity:
    if drifted_share >= severe_share:
        return "severe"
    if drifted_share >= warn_share:
        return "warn"
    return "none"


def describe_drift(result: DriftResult, warn_share: float, severe_share: float) -> str:
    """One clause for a human: the drifted share against the threshold that set the severity,
    and whether the prediction itself drifted."""
    share = f"{result.drifted_share:.0%} of columns drifted"
    if result.severity == "severe":
        sentence = f"{share} (severe from {severe_share:.0%})"
    elif result.severity == "warn":
        sentence = f"{share} (warn from {warn_share:.0%}, severe from {severe_share:.0%})"
    else:
        sentence = f"{share} (warn from {warn_share:.0%})"
    if result.prediction_drifted:
        threshold = result.per_column.filter(pl.col("column") == PREDICTION_COLUMN)["threshold"][0]
        sentence += (f", the prediction among them (score {result.prediction_drift_score:.2f}, "
                     f"threshold {threshold:.2f})")
    return sentence


def _checked_frames(reference: pl.DataFrame, current: pl.DataFrame,
                    columns: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    if not columns:
        raise ValueError("evaluate_drift needs at least one column to compare")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns repeat a name: {list(columns)}")
    frames = []
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} frame lacks columns {missing}")
        not_numeric = [c for c in columns if not frame.schema[c].is_numeric()]
        if not_numeric:
            raise ValueError(f"drift is measured on numeric columns; {not_numeric} are not")
        selected = frame.select(pl.col(c).cast(pl.Float64).fill_nan(None) for c in columns)
        empty = [c for c in columns if selected[c].null_count() == selected.height]
        if empty:
            raise ValueError(
                f"the {name} frame has no values in {empty}: drop rows without enough history "
                "before measuring drift, and pass enough rows"
            )
        frames.append(selected)
    return frames[0], frames[1]


def evaluate_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: Sequence[str],
    *,
    warn_share: float,
    severe_share: float,
    html_path: Path | None = None,
    method: str | None = None,
    threshold: float | None = None,
) -> DriftResult:
    """Per-column drift of `current` against `reference` over `columns`, the drifted share and
    its severity: "severe" from `severe_share` up, "warn" from `warn_share` up, else "none".
    A `score` column among `columns` is the prediction: its drift is also reported alone.
    `method` and `threshold` override Evidently's choice for every column (e.g. "psi", 0.2)."""
    if not 0 < warn_share <= severe_share <= 1:
        raise ValueError(
            f"need 0 < warn_share <= severe_share <= 1, got {warn_share} and {severe_share}"
        )
    columns = list(columns)
    ref, cur = _checked_frames(reference, current, columns)

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    preset = DataDriftPreset(columns=columns, drift_share=severe_share,
                             num_method=method, num_threshold=threshold)
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(cur.to_pandas(), data_definition=definition),
        reference_data=Dataset.from_pandas(ref.to_pandas(), data_definition=definition),
    )
    per_column, count, share = _read_snapshot(snapshot.dict(), columns)
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))

    prediction = per_column.filter(pl.col("column") == PREDICTION_COLUMN)
    return DriftResult(
        per_column=per_column,
        drifted_count=count,
        drifted_share=share,
        severity=severity_of(share, warn_share, severe_share),
        html_path=html_path,
        prediction_drifted=bool(prediction["drifted"][0]) if prediction.height else None,
        prediction_drift_score=float(prediction["score"][0]) if prediction.height else None,
        reference_rows=ref.height,
        current_rows=cur.height,
    )


def _read_snapshot(result: dict[str, Any], columns: list[str]) -> tuple[pl.DataFrame, int, float]:
    """Per-column rows, drifted count and share from an Evidently snapshot's dict."""
    status_of_metric = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in result.get("tests", [])
        if test["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
    }
    rows, count, share = {}, None, None
    for metric in result["metrics"]:
        kind = metric["config"]["type"]
        if kind.endswith(":ValueDrift"):
            config = metric["config"]
            status = status_of_metric.get(metric["id"])
            if status is None:
                raise RuntimeError(f"Evidently returned no drift test for column {config['column']!r}")
            rows[config["column"]] = {
                "column": config["column"],
                "method": config["method"],
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
                "drifted": status != "SUCCESS",
            }
        elif kind.endswith(":DriftedColumnsCount"):
            count, share = int(metric["value"]["count"]), float(metric["value"]["share"])
    absent = [c for c in columns if c not in rows]
    if absent or count is None or share is None:
        raise RuntimeError(f"Evidently's report lacks drift results for {absent or 'the share'}")
    table = pl.DataFrame([rows[c] for c in columns], schema={
        "column": pl.String, "method": pl.String, "score": pl.Float64,
        "threshold": pl.Float64, "drifted": pl.Boolean,
    })
    return table, count, share
