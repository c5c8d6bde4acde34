"""Performance decay on hand-made predictions and returns (no model, no Evidently)."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.decay import (
    DecayPolicy,
    last_complete_session,
    overall_severity,
    performance_decay,
)
from trading_pipeline.domain.drift import DriftResult, describe_drift

SESSIONS = sessions_between(date(2024, 1, 2), date(2024, 3, 28))  # 61 sessions
SYMBOLS = [f"S{i}" for i in range(8)]
HORIZON = 5
POLICY = DecayPolicy(window=20, min_sessions=10, min_rank_ic=-0.05)


def returns_frame(seed: int = 0) -> pl.DataFrame:
    """`session, symbol, forward_return` for every session: labels as if the future were known."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "session": [s for s in SESSIONS for _ in SYMBOLS],
        "symbol": SYMBOLS * len(SESSIONS),
        "forward_return": rng.normal(0, 0.02, len(SESSIONS) * len(SYMBOLS)),
    })


def predictions_from(labels: pl.DataFrame, sign: float, version: str = "3") -> pl.DataFrame:
    """A ranker that knows the return (sign +1) or its reverse (sign -1), for every session."""
    return labels.select("session", "symbol", (pl.col("forward_return") * sign).alias("score"),
                         pl.lit(version).alias("model_version"))


def decay(predictions, labels, as_of=SESSIONS[-1], version="3", policy=POLICY):
    return performance_decay(predictions, labels, as_of=as_of, model_version=version,
                             horizon=HORIZON, policy=policy)


def test_a_perfect_ranker_scores_one_and_a_reversed_one_minus_one():
    labels = returns_frame()
    perfect = decay(predictions_from(labels, +1.0), labels)
    reversed_ = decay(predictions_from(labels, -1.0), labels)
    assert perfect.rank_ic == pytest.approx(1.0) and not perfect.breached
    assert reversed_.rank_ic == pytest.approx(-1.0) and reversed_.breached
    assert perfect.sessions == reversed_.sessions == POLICY.window
    assert "below -0.050" in reversed_.describe() and "not below" in perfect.describe()


def test_only_sessions_whose_returns_are_known_count():
    labels = returns_frame()
    as_of = SESSIONS[40]
    cutoff = SESSIONS[40 - HORIZON]
    assert last_complete_session(as_of, HORIZON) == cutoff
    # perfect up to the cutoff, reversed after it: any look-ahead would pull the mean below 1
    predictions = predictions_from(labels, +1.0).with_columns(
        pl.when(pl.col("session") > cutoff).then(-pl.col("score")).otherwise(pl.col("score")).alias("score"))
    result = decay(predictions, labels, as_of=as_of)
    assert result.rank_ic == pytest.approx(1.0)
    assert result.last_complete_session == cutoff
    assert result.daily["session"].to_list() == SESSIONS[40 - HORIZON - POLICY.window + 1: 40 - HORIZON + 1]


def test_other_versions_predictions_are_ignored():
    labels = returns_frame()
    # v3 (perfect) on even sessions, v2 (reversed) on odd ones, as after a rollback and back
    v3 = predictions_from(labels, +1.0, "3").filter(pl.col("session").is_in(SESSIONS[0::2]))
    v2 = predictions_from(labels, -1.0, "2").filter(pl.col("session").is_in(SESSIONS[1::2]))
    both = pl.concat([v2, v3])
    as_v3, as_v2 = decay(both, labels, version="3"), decay(both, labels, version="2")
    assert as_v3.rank_ic == pytest.approx(1.0) and as_v2.rank_ic == pytest.approx(-1.0)
    assert as_v3.sessions + as_v2.sessions == POLICY.window
    assert as_v3.sessions == 10 and as_v3.judged


def test_too_few_sessions_of_a_new_champion_are_reported_not_breached():
    labels = returns_frame()
    as_of = SESSIONS[-1]
    # a champion whose first prediction was 12 sessions ago: 7 of its sessions have known returns
    recent = predictions_from(labels, -1.0).filter(pl.col("session") >= SESSIONS[-12])
    young = decay(recent, labels, as_of=as_of)
    assert young.sessions == 12 - HORIZON and young.rank_ic == pytest.approx(-1.0)
    assert not young.judged and not young.breached
    assert "too few to judge" in young.describe()
    # three sessions later it has 10 and is judged
    later = decay(predictions_from(labels, -1.0).filter(pl.col("session") >= SESSIONS[-15]), labels)
    assert later.sessions == 10 and later.breached


def test_no_prediction_with_a_known_return_is_no_figure():
    labels = returns_frame()
    brand_new = predictions_from(labels, 1.0).filter(pl.col("session") >= SESSIONS[-3])
    result = decay(brand_new, labels)
    assert result.rank_ic is None and result.sessions == 0 and not result.breached
    assert result.describe().startswith("no rank IC yet")


def test_the_mean_is_over_the_window_only():
    labels = returns_frame()
    # reversed long ago, perfect over the last 20 complete sessions: only the latter count
    cutoff_index = len(SESSIONS) - 1 - HORIZON
    predictions = predictions_from(labels, +1.0).with_columns(
        pl.when(pl.col("session") < SESSIONS[cutoff_index - POLICY.window + 1])
        .then(-pl.col("score")).otherwise(pl.col("score")).alias("score"))
    assert decay(predictions, labels).rank_ic == pytest.approx(1.0)
    wider = decay(predictions, labels, policy=DecayPolicy(window=40, min_sessions=10, min_rank_ic=-0.05))
    assert wider.sessions == 40 and wider.rank_ic == pytest.approx(0.0)


def test_a_breached_decay_makes_the_report_severe():
    labels = returns_frame()
    breached = decay(predictions_from(labels, -1.0), labels)
    healthy = decay(predictions_from(labels, +1.0), labels)
    assert overall_severity("none", breached) == "severe"
    assert overall_severity("warn", healthy) == "warn"
    assert overall_severity("none", healthy) == "none"


def test_bad_input_is_named():
    labels = returns_frame()
    with pytest.raises(ValueError, match="model_version"):
        decay(predictions_from(labels, 1.0).drop("model_version"), labels)
    with pytest.raises(ValueError, match="forward_return"):
        decay(predictions_from(labels, 1.0), labels.rename({"forward_return": "r"}))
    with pytest.raises(ValueError, match="TRADING_DECAY_MIN_SESSIONS"):
        DecayPolicy(window=10, min_sessions=11, min_rank_ic=0.0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        DecayPolicy(window=10, min_sessions=5, min_rank_ic=-2.0)


def test_drift_reasons_name_the_share_and_the_threshold_that_decided():
    def result(share: float, severity: str, prediction_drifted: bool) -> DriftResult:
        per_column = pl.DataFrame({"column": ["ret_1", "score"], "method": ["Wasserstein"] * 2,
                                   "score": [0.2, 1.4 if prediction_drifted else 0.3],
                                   "threshold": [1.0, 1.0], "drifted": [False, prediction_drifted]})
        return DriftResult(per_column, 1, share, severity, None, prediction_drifted,
                           float(per_column["score"][1]), 100, 20)

    assert describe_drift(result(0.62, "severe", False), 0.3, 0.5) == "62% of columns drifted (severe from 50%)"
    assert describe_drift(result(0.35, "warn", False), 0.3, 0.5) == \
        "35% of columns drifted (warn from 30%, severe from 50%)"
    assert describe_drift(result(0.5, "none", True), 0.6, 0.8).endswith(
        "the prediction among them (score 1.40, threshold 1.00)")
