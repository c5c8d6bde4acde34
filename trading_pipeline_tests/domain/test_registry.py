"""The registry against a real MLflow SQLite store and artifact folder in a temporary directory."""

import json
import os
from pathlib import Path

import polars as pl
import pytest

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import ModelNotFound, ModelRegistry, train_model
from trading_pipeline_tests.domain.conftest import make_bars

NAME = "test_ranker"


@pytest.fixture(scope="module")
def trained():
    bars = make_bars(n_symbols=12, n_sessions=MIN_HISTORY_SESSIONS + 160, seed=13)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    labels = forward_return_labels(bars)
    first = train_model(features, labels, n_folds=3, seed=0, params={"n_estimators": 40})
    second = train_model(features, labels, n_folds=3, seed=1, params={"n_estimators": 60})
    return features, first, second


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained):
    """Two registered versions; the working directory is a separate empty folder."""
    home = tmp_path_factory.mktemp("mlflow_home")
    workdir = tmp_path_factory.mktemp("cwd")
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        registry = ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", NAME, home / "mlartifacts")
        _, first, second = trained
        versions = (registry.register(first), registry.register(second))
        yield {"registry": registry, "home": home, "workdir": workdir, "versions": versions}
    finally:
        os.chdir(previous)


def test_versions_are_numbered_in_order(store):
    registry = store["registry"]
    assert store["versions"] == ("1", "2")
    assert registry.versions() == ["1", "2"]
    assert registry.previous_version("2") == "1"
    assert registry.previous_version("1") is None


def test_artifacts_stay_under_the_given_folder(store):
    home = store["home"]
    assert list(store["workdir"].iterdir()) == []  # no mlruns/ or mlflow.db in the cwd
    models = list((home / "mlartifacts" / NAME).rglob("model.lgb"))
    assert len(models) == 2
    assert len(list((home / "mlartifacts").rglob("feature_importance.csv"))) == 2


def test_run_records_params_metrics_per_fold_and_artifacts(store, trained):
    from mlflow import MlflowClient

    registry = store["registry"]
    _, first, _ = trained
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    version = client.get_model_version(NAME, "1")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["first_session"] == first.first_session.isoformat()
    assert run.data.params["last_session"] == first.last_session.isoformat()
    assert run.data.params["feature_columns"].split(",") == list(first.feature_columns)
    assert run.data.params["lgbm.n_estimators"] == "40"
    assert run.data.metrics["rank_ic"] == pytest.approx(first.metrics["rank_ic"])
    assert run.data.metrics["baseline_rank_ic"] == pytest.approx(first.baseline_metrics["rank_ic"])
    history = client.get_metric_history(version.run_id, "fold_rank_ic")
    expected = first.fold_metrics.filter(pl.col("model") == "lightgbm").sort("fold")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected["rank_ic"].to_list())
    artifact_dir = Path(client.download_artifacts(version.run_id, "features.json", str(store["home"])))
    assert json.loads(artifact_dir.read_text())["feature_columns"] == list(first.feature_columns)
    importance = pl.read_csv(client.download_artifacts(version.run_id, "feature_importance.csv",
                                                       str(store["home"])))
    assert importance["feature"].to_list() == first.feature_importance["feature"].to_list()


def test_logged_model_has_a_signature_and_pinned_requirements(store):
    from mlflow import MlflowClient
    from mlflow.models import Model

    client = MlflowClient(tracking_uri=store["registry"].tracking_uri)
    source = client.get_model_version(NAME, "2").source
    folder = Path(source.removeprefix("file://"))
    model = Model.load(str(folder / "MLmodel"))
    assert model.signature is not None
    assert model.signature.inputs.input_names()[:2] == ["ret_1", "ret_5"]
    requirements = (folder / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "scikit-learn==" in requirements


def test_registry_helpers_read_back_what_was_recorded(store, trained):
    registry = store["registry"]
    _, first, second = trained
    assert registry.training_window("2") == (second.first_session, second.last_session)
    assert registry.metrics("1")["rank_ic"] == pytest.approx(first.metrics["rank_ic"])
    assert not any(k.startswith("fold_") for k in registry.metrics("1"))


def test_alias_moves_and_rollback_restores_the_older_predictions(store, trained):
    registry = store["registry"]
    features, first, second = trained
    today = features.filter(pl.col("session") == features["session"].max())
    assert registry.champion_version() is None

    registry.set_alias("champion", "2", "beats v1 out of sample", actor="test-suite")
    assert registry.champion_version() == "2"
    newer = registry.load("champion").predict(today)
    assert newer["model_version"].unique().to_list() == ["2"]
    assert newer["score"].to_list() == second.predict(today)["score"].to_list()

    registry.set_alias("champion", "1", "severe drift: back to v1", actor="drift sensor")
    by_uri = registry.load(f"models:/{NAME}@champion")
    assert by_uri.version == "1" and by_uri.requested == f"models:/{NAME}@champion"
    older = by_uri.predict(today)
    assert older["model_version"].unique().to_list() == ["1"]
    assert older.equals(registry.load("1").predict(today))  # exactly the same numbers
    assert older["score"].to_list() == first.predict(today)["score"].to_list()
    assert older["score"].to_list() != newer["score"].to_list()
    assert older.columns == ["session", "symbol", "score", "model_version"]
    assert older.height == today.height


def test_alias_tags_say_who_and_why(store):
    from mlflow import MlflowClient

    registry = store["registry"]
    registry.set_alias("challenger", "2", "weekly retrain", actor="training job")
    tags = MlflowClient(tracking_uri=registry.tracking_uri).get_model_version(NAME, "2").tags
    assert tags["alias.challenger.reason"] == "weekly retrain"
    assert tags["alias.challenger.set_by"] == "training job"
    assert tags["alias.challenger.previous_version"] == "none"
    assert tags["alias.challenger.set_at"]


def test_bad_requests_say_what_is_wrong(store):
    registry = store["registry"]
    with pytest.raises(ModelNotFound, match="no version with alias 'nobody'"):
        registry.load("nobody")
    with pytest.raises(ModelNotFound, match="no version '9'"):
        registry.load("9")
    with pytest.raises(ModelNotFound, match="names model 'other'"):
        registry.load("models:/other@champion")
    with pytest.raises(ModelNotFound):
        registry.set_alias("champion", "9", "does not exist")
    with pytest.raises(ValueError, match="needs a reason"):
        registry.set_alias("champion", "1", "  ")
    with pytest.raises(ValueError, match="model name"):
        ModelRegistry("sqlite:///unused.db", "bad name'")


def test_empty_registry_has_no_versions(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'empty.db'}", "nothing_yet", tmp_path / "art")
    assert registry.versions() == []
    assert registry.champion_version() is None
    assert registry.previous_version("1") is None
