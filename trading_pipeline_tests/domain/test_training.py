"""Walk-forward splits, prediction metrics (against scipy and numpy by hand) and training."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr

from trading_pipeline.domain.features import FEATURE_COLUMNS
from trading_pipeline.domain.model import (
    TrainingDataError,
    daily_information_coefficients,
    hit_rate,
    prediction_metrics,
    top_minus_bottom,
    train_model,
    walk_forward_splits,
)
from trading_pipeline_tests.domain.conftest import training_frames

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(400)]


# -- walk-forward splits -------------------------------------------------------------------

def test_splits_by_hand():
    sessions = DAYS[:20]
    folds = walk_forward_splits(sessions, n_folds=2, horizon=2, embargo=1, min_train=6)
    # first validation starts at index 6 + 3 = 9; 11 sessions left -> blocks of 6 and 5
    assert [f.validation_sessions for f in folds] == [tuple(DAYS[9:15]), tuple(DAYS[15:20])]
    assert folds[0].train_sessions == tuple(DAYS[:6])
    assert folds[1].train_sessions == tuple(DAYS[:12])  # 15 - 3


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 120), n_folds=st.integers(1, 6), horizon=st.integers(0, 10),
       embargo=st.integers(0, 10), min_train=st.integers(1, 60), shuffle_seed=st.integers(0, 9))
def test_splits_never_let_a_training_label_reach_validation(n, n_folds, horizon, embargo,
                                                            min_train, shuffle_seed):
    sessions = DAYS[:n]
    shuffled = list(np.random.default_rng(shuffle_seed).permutation(np.array(sessions, dtype=object)))
    if n < min_train + horizon + embargo + n_folds:
        with pytest.raises(ValueError, match="cannot make"):
            walk_forward_splits(shuffled, n_folds, horizon, embargo, min_train)
        return
    folds = walk_forward_splits(shuffled, n_folds, horizon, embargo, min_train)
    index = {s: i for i, s in enumerate(sessions)}
    assert len(folds) == n_folds
    assert len(folds[0].train_sessions) == min_train
    validation = [s for f in folds for s in f.validation_sessions]
    assert validation == sessions[min_train + horizon + embargo:]  # contiguous, disjoint, to the end
    sizes = [len(f.validation_sessions) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in folds:
        assert fold.train_sessions == tuple(sessions[: len(fold.train_sessions)])  # expanding
        gap = index[fold.validation_start] - index[fold.train_end]
        assert gap == horizon + embargo + 1
        assert not set(fold.train_sessions) & set(validation[validation.index(fold.validation_start):])


# -- metrics -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scored() -> pl.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for day in DAYS[:6]:
        n = 10
        fwd = rng.normal(size=n)
        pred = 0.5 * fwd + rng.normal(size=n)
        rows += [{"session": day, "symbol": f"S{i}", "prediction": pred[i], "forward_return": fwd[i]}
                 for i in range(n)]
    return pl.DataFrame(rows)


def test_daily_ic_matches_scipy(scored):
    daily = daily_information_coefficients(scored)
    for row in daily.iter_rows(named=True):
        day = scored.filter(pl.col("session") == row["session"])
        assert row["ic"] == pytest.approx(pearsonr(day["prediction"], day["forward_return"])[0])
        assert row["rank_ic"] == pytest.approx(spearmanr(day["prediction"], day["forward_return"])[0])


def test_summary_metrics_by_hand(scored):
    metrics = prediction_metrics(scored)
    ics, rank_ics, hits, spreads = [], [], [], []
    for day in DAYS[:6]:
        d = scored.filter(pl.col("session") == day)
        p, r = d["prediction"].to_numpy(), d["forward_return"].to_numpy()
        ics.append(pearsonr(p, r)[0])
        rank_ics.append(spearmanr(p, r)[0])
        hits += list(np.sign(p - np.median(p)) == np.sign(r - np.median(r)))
        order = np.argsort(p)  # 10 names: bottom quintile = lowest 2, top = highest 2
        spreads.append(r[order[-2:]].mean() - r[order[:2]].mean())
    assert metrics["ic"] == pytest.approx(np.mean(ics))
    assert metrics["rank_ic"] == pytest.approx(np.mean(rank_ics))
    assert metrics["ic_ir"] == pytest.approx(np.mean(rank_ics) / np.std(rank_ics, ddof=1))
    assert metrics["hit_rate"] == pytest.approx(np.mean(hits))
    assert metrics["top_minus_bottom"] == pytest.approx(np.mean(spreads))
    assert metrics["n_sessions"] == 6


def test_hit_rate_and_spread_on_a_perfect_and_an_inverted_signal():
    frame = pl.DataFrame({"session": [DAYS[0]] * 5, "forward_return": [0.05, -0.02, 0.01, 0.03, -0.04]})
    perfect = frame.with_columns(pl.col("forward_return").alias("prediction"))
    inverted = frame.with_columns((-pl.col("forward_return")).alias("prediction"))
    assert hit_rate(perfect) == 1.0 and hit_rate(inverted) == 0.0
    # 5 names: the top bucket is the best name (0.05), the bottom the worst (-0.04)
    assert top_minus_bottom(perfect) == pytest.approx(0.09)
    assert top_minus_bottom(inverted) == pytest.approx(-0.09)


def test_constant_predictions_give_nan_not_an_error():
    frame = pl.DataFrame({"session": [DAYS[0]] * 4, "prediction": [1.0] * 4,
                          "forward_return": [0.1, 0.2, 0.3, 0.4]})
    metrics = prediction_metrics(frame)
    assert np.isnan(metrics["rank_ic"]) and metrics["n_sessions"] == 0


# -- training ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def training_data():
    return training_frames(n_symbols=20, scored_sessions=240)


@pytest.fixture(scope="module")
def result(training_data):
    features, labels = training_data
    return train_model(features, labels, n_folds=3, horizon=5, embargo=5, seed=1)


def test_out_of_sample_predictions_come_only_from_purged_folds(result, training_data):
    features, labels = training_data
    labelled = labels.drop_nulls("label").join(features.select("session", "symbol"), on=["session", "symbol"])
    sessions = labelled["session"].unique().sort().to_list()
    index = {s: i for i, s in enumerate(sessions)}
    assert len(result.folds) == 3
    assert result.first_session == sessions[0] and result.last_session == sessions[-1]
    for fold in result.folds:
        assert index[fold.validation_start] - index[fold.train_end] == 5 + 5 + 1
        oos = result.oos_predictions.filter(pl.col("fold") == fold.index)
        assert set(oos["session"]) == set(fold.validation_sessions)
    assert result.oos_predictions.height == labelled.filter(
        pl.col("session") >= result.folds[0].validation_start).height


def test_both_models_learn_the_planted_signal(result):
    # The synthetic drift makes past returns informative: an honest model ranks above chance.
    assert result.metrics["rank_ic"] > 0.05
    assert result.baseline_metrics["rank_ic"] > 0.05
    assert result.metrics["hit_rate"] > 0.5


def test_fold_metrics_and_importance(result):
    folds = result.fold_metrics
    assert folds.height == 2 * 3
    assert sorted(set(folds["model"])) == ["baseline", "lightgbm"]
    for row in folds.filter(pl.col("model") == "lightgbm").iter_rows(named=True):
        rows = result.oos_predictions.filter(pl.col("fold") == row["fold"])
        assert row["rank_ic"] == pytest.approx(prediction_metrics(rows)["rank_ic"])
        assert row["validation_rows"] == rows.height
    assert sorted(result.feature_importance["feature"]) == sorted(FEATURE_COLUMNS)
    assert result.feature_importance["gain"].sum() > 0
    assert result.params["deterministic"] is True and result.params["random_state"] == 1


def test_training_is_deterministic_given_the_seed(result, training_data):
    features, labels = training_data
    again = train_model(features, labels, n_folds=3, horizon=5, embargo=5, seed=1)
    assert again.oos_predictions.equals(result.oos_predictions)
    assert again.predict(features).equals(result.predict(features))
    assert again.predict_baseline(features).equals(result.predict_baseline(features))
    other_seed = train_model(features, labels, n_folds=3, horizon=5, embargo=5, seed=2)
    assert not other_seed.predict(features).equals(result.predict(features))
    assert not result.predict_baseline(features).equals(result.predict(features))


def test_params_override_the_defaults(training_data):
    features, labels = training_data
    small = train_model(features, labels, params={"n_estimators": 3}, n_folds=2)
    assert small.params["n_estimators"] == 3
    assert small.model.num_trees() == 3


def test_too_little_history_is_a_clear_error(training_data):
    features, labels = training_data
    few = features.filter(pl.col("session") <= features["session"].unique().sort()[12])
    with pytest.raises(ValueError, match="cannot make 4 walk-forward folds"):
        train_model(few, labels)


def test_missing_feature_or_no_overlap_is_refused(training_data):
    features, labels = training_data
    with pytest.raises(TrainingDataError, match="ret_5"):
        train_model(features.drop("ret_5"), labels)
    with pytest.raises(TrainingDataError, match="no row has both features and a non-null label"):
        train_model(features, labels.with_columns(pl.lit(None, pl.Float64).alias("label")))
