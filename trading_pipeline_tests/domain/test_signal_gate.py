"""The signal gate: a model trained on shuffled labels is refused; one with real signal passes."""

import math

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.model.signal import SignalRules, newey_west_t_stat, signal_test
from trading_pipeline.domain.model.training import train_model
from trading_pipeline.domain.promotion import (
    Decision,
    PromotionEvidence,
    PromotionGates,
    TradingActivity,
    evaluate_promotion,
)
from trading_pipeline_tests.domain.conftest import training_frames


def test_newey_west_without_lags_is_the_plain_t_statistic():
    values = np.random.default_rng(3).normal(0.01, 0.1, 200)
    plain = values.mean() / (values.std(ddof=0) / math.sqrt(values.size))
    assert newey_west_t_stat(values, 0) == pytest.approx(plain)
    # positively autocorrelated values: lags widen the error, so the statistic shrinks
    smooth = np.convolve(values, np.ones(5) / 5, mode="valid") + 0.01
    assert newey_west_t_stat(smooth, 5) < newey_west_t_stat(smooth, 0)


@pytest.fixture(scope="module")
def market():
    return training_frames(n_symbols=30, scored_sessions=300)


def _shuffled(labels: pl.DataFrame, seed: int) -> pl.DataFrame:
    known = labels.filter(pl.col("label").is_not_null())
    return known.with_columns(pl.Series("label", np.random.default_rng(seed).permutation(known["label"].to_numpy())))


def test_a_model_with_real_signal_passes_the_gate(market):
    features, labels = market
    result = train_model(features, labels, n_folds=3, seed=1)
    assert result.signal.passed, result.signal.reason
    assert result.signal.rank_ic > result.signal.control_rank_ic
    assert result.control_metrics["rank_ic"] == pytest.approx(result.signal.control_rank_ic, abs=0.02)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_noise_model_never_passes_the_gate(market, seed):
    features, labels = market
    result = train_model(features, _shuffled(labels, seed), n_folds=3, seed=seed)
    assert not result.signal.passed, result.signal.reason
    assert "no better than noise" in result.signal.reason


def test_too_few_sessions_prove_nothing():
    frame = pl.DataFrame({"session": [1, 1, 1, 2, 2, 2], "forward_return": [0.1, 0.2, 0.3] * 2,
                          "prediction": [1.0, 2.0, 3.0] * 2, "control_prediction": [3.0, 1.0, 2.0] * 2})
    verdict = signal_test(frame, rules=SignalRules(min_sessions=20))
    assert not verdict.passed and "at least 20 sessions" in verdict.reason


def test_a_version_that_failed_the_gate_is_never_promoted():
    evidence = PromotionEvidence(sessions=30, total_return=0.05, max_drawdown=-0.01, reconciliation_breaks=0,
                                 risk_events=0, severe_drift_sessions=0, expected_sharpe=1.2,
                                 activity=TradingActivity(40, 30, 40, 0), signal_passed=True)
    assert evaluate_promotion(evidence, PromotionGates()).decision is Decision.APPROVED
    from dataclasses import replace
    refused = evaluate_promotion(replace(evidence, signal_passed=False), PromotionGates())
    assert refused.decision is Decision.REJECTED and not refused.checks["signal"]
    assert any("shuffled-label control" in reason for reason in refused.reasons)
