"""Walk-forward splits with purging and an embargo, and cross-sectional prediction metrics.

A label of session t covers the return from t to t+horizon. A training session therefore
ends `horizon + embargo` sessions before its fold's first validation session: no training
label overlaps a validation label, and the embargo adds a margin for serial correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

METRIC_NAMES = ("ic", "rank_ic", "ic_ir", "hit_rate", "top_minus_bottom")


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    train_sessions: tuple[date, ...]
    validation_sessions: tuple[date, ...]

    @property
    def train_start(self) -> date:
        return self.train_sessions[0]

    @property
    def train_end(self) -> date:
        return self.train_sessions[-1]

    @property
    def validation_start(self) -> date:
        return self.validation_sessions[0]

    @property
    def validation_end(self) -> date:
        return self.validation_sessions[-1]


def walk_forward_splits(
    sessions: Sequence[date], n_folds: int, horizon: int, embargo: int, min_train: int
) -> list[Fold]:
    """Expanding-window folds over the sorted distinct `sessions`.

    The first fold trains on `min_train` sessions; the sessions after the first gap are cut
    into `n_folds` consecutive validation blocks of near-equal length (earlier blocks take the
    remainder). Each fold trains on every session up to `horizon + embargo` sessions before its
    validation block: validation start index minus train end index is `horizon + embargo + 1`.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    if horizon < 0 or embargo < 0:
        raise ValueError(f"horizon and embargo must not be negative, got {horizon} and {embargo}")
    if min_train < 1:
        raise ValueError(f"min_train must be at least 1 session, got {min_train}")
    ordered = sorted(set(sessions))
    gap = horizon + embargo
    first_validation = min_train + gap
    available = len(ordered) - first_validation
    if available < n_folds:
        raise ValueError(
            f"{len(ordered)} sessions cannot make {n_folds} walk-forward folds: they need "
            f"min_train ({min_train}) + horizon ({horizon}) + embargo ({embargo}) + at least one "
            f"validation session per fold = {first_validation + n_folds}; "
            "give more sessions or fewer folds, or lower min_train"
        )
    base, extra = divmod(available, n_folds)
    folds: list[Fold] = []
    start = first_validation
    for index in range(n_folds):
        stop = start + base + (1 if index < extra else 0)
        folds.append(
            Fold(
                index=index,
                train_sessions=tuple(ordered[: start - gap]),
                validation_sessions=tuple(ordered[start:stop]),
            )
        )
        start = stop
    return folds


def daily_information_coefficients(
    frame: pl.DataFrame, prediction: str = "prediction"
) -> pl.DataFrame:
    """`session, ic, rank_ic, count` per session: Pearson and Spearman correlation of the
    prediction with forward_return. Sessions with under 2 rows or a constant column get NaN."""
    _require(frame, prediction)
    rows = frame.drop_nulls([prediction, "forward_return"])
    return (
        rows.group_by("session")
        .agg(
            pl.corr(prediction, "forward_return", method="pearson").alias("ic"),
            pl.corr(prediction, "forward_return", method="spearman").alias("rank_ic"),
            pl.len().alias("count"),
        )
        .with_columns(
            pl.when(pl.col("count") >= 2).then(pl.col(c)).otherwise(float("nan")).alias(c)
            for c in ("ic", "rank_ic")
        )
        .sort("session")
    )


def hit_rate(frame: pl.DataFrame, prediction: str = "prediction") -> float:
    """Share of rows whose prediction is on the same side of its session's median prediction as
    the forward return is of its session's median forward return. Rows on a median are left out."""
    _require(frame, prediction)
    rows = frame.drop_nulls([prediction, "forward_return"]).with_columns(
        (pl.col(prediction) - pl.col(prediction).median().over("session")).sign().alias("_p"),
        (pl.col("forward_return") - pl.col("forward_return").median().over("session"))
        .sign()
        .alias("_r"),
    ).filter((pl.col("_p") != 0) & (pl.col("_r") != 0))
    if rows.height == 0:
        return float("nan")
    return float((rows["_p"] == rows["_r"]).mean())


def top_minus_bottom(frame: pl.DataFrame, prediction: str = "prediction", buckets: int = 5) -> float:
    """Mean over sessions of (mean forward return of the top prediction bucket) minus (that of
    the bottom bucket). Buckets split each session's rows by prediction order into `buckets`
    near-equal groups; sessions with fewer rows than buckets are skipped."""
    _require(frame, prediction)
    rows = frame.drop_nulls([prediction, "forward_return"]).with_columns(
        pl.col(prediction).rank(method="ordinal").over("session").alias("_order"),
        pl.len().over("session").alias("_n"),
    ).filter(pl.col("_n") >= buckets)
    if rows.height == 0:
        return float("nan")
    rows = rows.with_columns(((pl.col("_order") - 1) * buckets // pl.col("_n")).alias("_bucket"))
    spread = (
        rows.group_by("session")
        .agg(
            pl.col("forward_return").filter(pl.col("_bucket") == buckets - 1).mean().alias("top"),
            pl.col("forward_return").filter(pl.col("_bucket") == 0).mean().alias("bottom"),
        )
        .select((pl.col("top") - pl.col("bottom")).alias("spread"))
    )
    return float(spread["spread"].mean())


def prediction_metrics(frame: pl.DataFrame, prediction: str = "prediction") -> dict[str, float]:
    """ic, rank_ic (means of the daily values), ic_ir (mean over sample std of daily rank IC),
    hit_rate, top_minus_bottom and n_sessions for a frame of `session, <prediction>,
    forward_return`. NaN where a figure cannot be computed."""
    daily = daily_information_coefficients(frame, prediction).filter(
        pl.col("rank_ic").is_not_nan() & pl.col("ic").is_not_nan()
    )
    rank_ic = daily["rank_ic"]
    mean_rank_ic = float(rank_ic.mean()) if daily.height else math.nan
    std_rank_ic = float(rank_ic.std()) if daily.height >= 2 else math.nan
    ic_ir = mean_rank_ic / std_rank_ic if std_rank_ic and math.isfinite(std_rank_ic) else math.nan
    return {
        "ic": float(daily["ic"].mean()) if daily.height else math.nan,
        "rank_ic": mean_rank_ic,
        "ic_ir": ic_ir,
        "hit_rate": hit_rate(frame, prediction),
        "top_minus_bottom": top_minus_bottom(frame, prediction),
        "n_sessions": float(daily.height),
    }


def _require(frame: pl.DataFrame, prediction: str) -> None:
    missing = [c for c in ("session", prediction, "forward_return") if c not in frame.columns]
    if missing:
        raise ValueError(f"metrics need columns {missing}; got {frame.columns}")
