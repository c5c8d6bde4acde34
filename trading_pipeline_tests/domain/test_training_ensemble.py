"""The seed ensemble: its scores are the mean of its members' within-session ranks, its control
is built the same way, and it goes through the MLflow registry and back unchanged."""

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import rankdata

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import ModelRegistry, feature_matrix, train_model
from trading_pipeline.domain.model.training import TrainingOptions, ensemble_scores
from trading_pipeline_tests.domain.conftest import make_bars, training_frames

SEEDS = 3


def by_hand(member_scores: list[np.ndarray], sessions: np.ndarray) -> np.ndarray:
    """Each member's rank within its session (ties averaged) scaled to (-0.5, 0.5), averaged."""
    out = np.zeros(len(sessions))
    for scores in member_scores:
        for session in np.unique(sessions):
            rows = sessions == session
            out[rows] += (rankdata(scores[rows]) - 0.5) / rows.sum() - 0.5
    return out / len(member_scores)


def test_ensemble_scores_by_hand():
    sessions = pl.Series(["a", "a", "a", "b", "b"])
    first = np.array([3.0, 1.0, 2.0, 10.0, -1.0])
    second = np.array([0.1, 0.1, 0.5, 0.0, 7.0])  # a tie in session a
    # session a: first ranks 3, 1, 2 -> 1/3, -1/3, 0; second ranks 1.5, 1.5, 3 -> -1/6, -1/6, 1/3
    # session b: first ranks 2, 1 -> 1/4, -1/4; second ranks 1, 2 -> -1/4, 1/4
    expected = np.array([(1 / 3 - 1 / 6) / 2, (-1 / 3 - 1 / 6) / 2, (0 + 1 / 3) / 2, 0.0, 0.0])
    assert ensemble_scores([first, second], sessions) == pytest.approx(expected)
    assert ensemble_scores([first, second], sessions) == pytest.approx(
        by_hand([first, second], sessions.to_numpy()))


@pytest.fixture(scope="module")
def training_data():
    bars = make_bars(n_symbols=12, n_sessions=MIN_HISTORY_SESSIONS + 160, seed=13)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    return features, forward_return_labels(bars)


@pytest.fixture(scope="module")
def ensemble(training_data):
    features, labels = training_data
    return train_model(features, labels, n_folds=2, seed=4, params={"n_estimators": 30},
                       ensemble_seeds=SEEDS)


def test_ensemble_scores_are_the_mean_of_its_members_ranks(ensemble, training_data):
    features, _ = training_data
    assert [m.params["random_state"] for m in ensemble.members] == [4, 5, 6]
    assert ensemble.model is ensemble.members[0]
    matrix = feature_matrix(features, ensemble.feature_columns)
    raw = [m.predict(matrix) for m in ensemble.members]
    assert not np.allclose(raw[0], raw[1])  # the seeds do make different models
    scores = ensemble.predict(features)
    assert scores["score"].to_numpy() == pytest.approx(by_hand(raw, features["session"].to_numpy()))
    # the out-of-sample scores and the control are ensembles too: ranks within (-0.5, 0.5)
    for column in ("prediction", "control_prediction"):
        values = ensemble.oos_predictions[column]
        assert values.min() > -0.5 and values.max() < 0.5
    assert ensemble.signal is not None and ensemble.signal.sessions > 0
    # importance sums the members'
    gains = sum(m.feature_importance(importance_type="gain") for m in ensemble.members)
    assert ensemble.feature_importance["gain"].sum() == pytest.approx(float(gains.sum()))


def test_one_seed_is_the_single_model_as_before(training_data):
    features, labels = training_data
    single = train_model(features, labels, n_folds=2, seed=4, params={"n_estimators": 30})
    one = train_model(features, labels, n_folds=2, seed=4, params={"n_estimators": 30}, ensemble_seeds=1)
    assert single.members == () and one.members == ()
    assert one.oos_predictions.equals(single.oos_predictions)
    raw = single.model.predict(feature_matrix(features, single.feature_columns))
    assert single.predict(features)["score"].to_numpy() == pytest.approx(raw)  # raw, not ranks


@pytest.mark.parametrize("seeds", [0, -2, 1.5, True])
def test_a_bad_number_of_seeds_is_refused_with_what_to_give(seeds, training_data):
    features, labels = training_data
    with pytest.raises(ValueError, match="whole number of seeds, at least 1"):
        TrainingOptions(ensemble_seeds=seeds)
    with pytest.raises(ValueError, match="whole number of seeds, at least 1"):
        train_model(features, labels, n_folds=2, ensemble_seeds=seeds)


def test_ensemble_round_trips_through_the_registry(ensemble, training_data, tmp_path):
    features, _ = training_data
    previous = Path.cwd()
    os.chdir(tmp_path)  # MLflow must write only under the folders it is given
    try:
        registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "ensemble_ranker",
                                 tmp_path / "artifacts")
        version = registry.register(ensemble)
        loaded = registry.load(version)
    finally:
        os.chdir(previous)
    assert len(loaded.members) == SEEDS
    again = loaded.predict(features)
    assert again["score"].to_list() == ensemble.predict(features)["score"].to_list()
    assert set(again["model_version"]) == {version}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    run = client.get_run(client.get_model_version("ensemble_ranker", version).run_id)
    assert run.data.params["ensemble_seeds"] == str(SEEDS)


@pytest.fixture(scope="module")
def gate_market():
    return training_frames(n_symbols=30, scored_sessions=300)


def test_the_gate_tells_an_ensemble_with_signal_from_a_noise_ensemble(gate_market):
    features, labels = gate_market
    real = train_model(features, labels, n_folds=3, seed=1, ensemble_seeds=SEEDS)
    assert real.signal.passed, real.signal.reason
    known = labels.filter(pl.col("label").is_not_null())
    noise_labels = known.with_columns(
        pl.Series("label", np.random.default_rng(12).permutation(known["label"].to_numpy())))
    noise = train_model(features, noise_labels, n_folds=3, seed=12, ensemble_seeds=SEEDS)
    assert not noise.signal.passed, noise.signal.reason
    assert "no better than noise" in noise.signal.reason
