"""Data and prediction drift of recent rows against a reference window.

The per-column statistics are Evidently's (same tests, same thresholds, same auto choice:
Kolmogorov-Smirnov p-value for up to 1,000 reference rows, normed Wasserstein distance above
that, PSI on request), computed here directly on the frames with scipy/numpy: Evidently spends
about 10 s on 500 symbols to compute each column three times and build its plots. Evidently
itself runs only for what it adds: the HTML report (`write_evidently_html`, or `html_path`),
and the tests it picks for columns with five values or fewer, which are not reproduced here.
It takes seconds to import, so it is imported inside those paths only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
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


# Evidently's numerical tests this module computes itself: (label when auto-chosen, default
# threshold, drifted when). Scores and decisions are those of
# evidently.legacy.calculations.stattests (checked against Evidently in the drift tests).
_DIRECT_TESTS: dict[str, tuple[str, float]] = {
    "wasserstein": ("Wasserstein distance (normed)", 0.1),
    "ks": ("K-S p_value", 0.05),
    "psi": ("PSI", 0.1),
}
_AUTO_SMALL_REFERENCE = 1000  # Evidently: K-S up to this many reference rows, Wasserstein above
_AUTO_FEW_VALUES = 5  # Evidently picks chi-square, z or Jensen-Shannon at or below: not reproduced


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
    `method` and `threshold` override Evidently's choice for every column (e.g. "psi", 0.2).
    `html_path`: also write Evidently's HTML report there (seconds to minutes on large frames)."""
    if not 0 < warn_share <= severe_share <= 1:
        raise ValueError(
            f"need 0 < warn_share <= severe_share <= 1, got {warn_share} and {severe_share}"
        )
    columns = list(columns)
    ref, cur = _checked_frames(reference, current, columns)
    rows = _direct_statistics(ref, cur, columns, method, threshold)
    if rows is None:  # a test this module does not compute: let Evidently do all of it
        snapshot = _evidently_snapshot(ref, cur, columns, severe_share, method, threshold)
        per_column, count, share = _read_snapshot(snapshot.dict(), columns)
    else:
        per_column = pl.DataFrame(rows, schema=PER_COLUMN_SCHEMA, orient="row")
        count = int(per_column["drifted"].sum())
        share = count / len(columns)
        snapshot = None
    if html_path is not None:
        html_path = write_evidently_html(ref, cur, columns, Path(html_path), severe_share=severe_share,
                                         method=method, threshold=threshold, snapshot=snapshot)

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


PER_COLUMN_SCHEMA = {"column": pl.String, "method": pl.String, "score": pl.Float64,
                     "threshold": pl.Float64, "drifted": pl.Boolean}


def write_evidently_html(reference: pl.DataFrame, current: pl.DataFrame, columns: Sequence[str],
                         path: Path, *, severe_share: float, method: str | None = None,
                         threshold: float | None = None, snapshot=None) -> Path:
    """Evidently's HTML report of the same comparison (distribution plots per column)."""
    columns = list(columns)
    if snapshot is None:
        ref, cur = _checked_frames(reference, current, columns)
        snapshot = _evidently_snapshot(ref, cur, columns, severe_share, method, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def _evidently_snapshot(ref: pl.DataFrame, cur: pl.DataFrame, columns: list[str], severe_share: float,
                        method: str | None, threshold: float | None):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    preset = DataDriftPreset(columns=columns, drift_share=severe_share,
                             num_method=method, num_threshold=threshold)
    return Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(cur.to_pandas(), data_definition=definition),
        reference_data=Dataset.from_pandas(ref.to_pandas(), data_definition=definition),
    )


def _direct_statistics(ref: pl.DataFrame, cur: pl.DataFrame, columns: list[str], method: str | None,
                       threshold: float | None) -> list[tuple] | None:
    """(column, method, score, threshold, drifted) per column as Evidently computes them, or
    None when a column needs a test not reproduced here."""
    if method is not None and method not in _DIRECT_TESTS:
        return None
    rows = []
    for column in columns:
        reference_values = _finite(ref[column])
        current_values = _finite(cur[column])
        for name, values in (("reference", reference_values), ("current", current_values)):
            if values.size == 0:
                raise ValueError(f"the {name} frame has no finite values in {column!r}: drop rows "
                                 "without enough history before measuring drift")
        chosen, label = method, method
        if chosen is None:
            distinct = np.unique(np.concatenate([reference_values, current_values])).size
            if distinct <= _AUTO_FEW_VALUES:
                return None
            chosen = "ks" if reference_values.size <= _AUTO_SMALL_REFERENCE else "wasserstein"
            label = _DIRECT_TESTS[chosen][0]
        limit = _DIRECT_TESTS[chosen][1] if threshold is None else float(threshold)
        score, drifted = _STATISTICS[chosen](reference_values, current_values, limit)
        rows.append((column, label, float(score), limit, bool(drifted)))
    return rows


def _finite(series: pl.Series) -> np.ndarray:
    values = series.to_numpy().astype(np.float64, copy=False)
    return values[np.isfinite(values)]


def _wasserstein_normed(reference: np.ndarray, current: np.ndarray, threshold: float) -> tuple[float, bool]:
    from scipy import stats

    value = stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001)
    return value, value >= threshold


def _ks_p_value(reference: np.ndarray, current: np.ndarray, threshold: float) -> tuple[float, bool]:
    from scipy import stats

    p_value = stats.ks_2samp(reference, current)[1]
    return p_value, p_value <= threshold


def _psi(reference: np.ndarray, current: np.ndarray, threshold: float) -> tuple[float, bool]:
    if np.unique(reference).size > 20:
        bins = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        reference_share = np.histogram(reference, bins)[0] / reference.size
        current_share = np.histogram(current, bins)[0] / current.size
    else:  # few distinct values: one bucket each, as Evidently does
        keys = np.unique(np.concatenate([reference, current]))
        reference_share = np.array([(reference == k).sum() for k in keys]) / reference.size
        current_share = np.array([(current == k).sum() for k in keys]) / current.size
    reference_share, current_share = _no_zero_buckets(reference_share), _no_zero_buckets(current_share)
    value = np.sum((reference_share - current_share) * np.log(reference_share / current_share))
    return value, value >= threshold


def _no_zero_buckets(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares != 0].min()
    return np.where(shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, shares)


_STATISTICS = {"wasserstein": _wasserstein_normed, "ks": _ks_p_value, "psi": _psi}


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
    table = pl.DataFrame([rows[c] for c in columns], schema=PER_COLUMN_SCHEMA)
    return table, count, share
