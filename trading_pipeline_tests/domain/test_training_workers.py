"""Training fits its folds and its final model at once on a few threads (issue 16, speed): the
same result to the last bit whatever the number of workers, with each LightGBM on its own
single thread."""

import threading
import time

import polars as pl
import pytest

from trading_pipeline.domain.model import training
from trading_pipeline.domain.model.signal import SignalRules
from trading_pipeline.domain.model.training import TrainingOptions, train_model
from trading_pipeline_tests.domain.conftest import training_frames


@pytest.fixture(scope="module")
def frames():
    features, labels = training_frames(n_symbols=20, scored_sessions=180, seed=6)
    return features, labels, tuple(c for c in features.columns if c not in ("session", "symbol"))


def everything(result) -> dict:
    """What a training run gives, in comparable form: every prediction, metric and tree."""
    boosters = list(result.members or (result.model,))
    return {
        "oos": result.oos_predictions,
        "fold_metrics": result.fold_metrics,
        "importance": result.feature_importance,
        "trees": [b.model_to_string().split("end of trees")[0] for b in boosters],
        "baseline": (result.baseline_model[-1].coef_.tobytes(), result.baseline_model[-1].intercept_,
                     result.baseline_model[0].statistics_.tobytes()),
        "metrics": (result.metrics, result.baseline_metrics, result.control_metrics),
        "signal": result.signal,
        "params": (result.params, result.fold_params),
    }


def assert_same(one: dict, other: dict) -> None:
    for key in ("oos", "fold_metrics", "importance"):
        assert one[key].equals(other[key], null_equal=True), key
    for key in ("trees", "baseline", "metrics", "signal", "params"):
        assert one[key] == other[key], key


@pytest.mark.parametrize("workers", [2, 3])
def test_the_default_training_is_the_same_to_the_last_bit_on_several_workers(frames, workers):
    features, labels, columns = frames
    kwargs = {"n_folds": 3, "seed": 4, "params": {"n_estimators": 30}, "feature_columns": columns}
    alone = everything(train_model(features, labels, workers=1, **kwargs))
    assert_same(alone, everything(train_model(features, labels, workers=workers, **kwargs)))


def test_tuning_several_controls_an_ensemble_and_weights_are_the_same_on_two_workers(frames):
    features, labels, columns = frames
    grid = [{}, {"num_leaves": 3, "max_depth": 2}]
    kwargs = {"n_folds": 2, "seed": 9, "params": {"n_estimators": 15}, "feature_columns": columns,
              "param_grid": grid, "signal_rules": SignalRules(controls=2), "ensemble_seeds": 2,
              "sample_weight_halflife": 60}
    alone = train_model(features, labels, workers=1, **kwargs)
    assert len(alone.members) == 2 and alone.oos_predictions.select(pl.col("^control.*$")).width == 2
    assert_same(everything(alone), everything(train_model(features, labels, workers=2, **kwargs)))


def test_fits_run_on_the_pool_threads_each_lightgbm_on_one_thread(frames, monkeypatch):
    features, labels, columns = frames
    seen = []
    fit = training._train_members

    def recording(datasets, params):
        seen.append((threading.current_thread().name, params["num_threads"]))
        return fit(datasets, params)

    monkeypatch.setattr(training, "_train_members", recording)
    train_model(features, labels, n_folds=3, params={"n_estimators": 5}, feature_columns=columns, workers=2)
    assert len(seen) == 3 * 2 + 1  # each fold's model and control, and the final model
    assert {name for name, _ in seen} == {"training_0", "training_1"}
    assert {threads for _, threads in seen} == {1}


def test_an_error_in_one_fit_is_raised_and_nothing_waits_for_the_fits_not_started(frames, monkeypatch):
    features, labels, columns = frames
    started = []
    fit = training._fit_pair

    def failing(rows, *args, **kwargs):
        started.append(rows.height)
        if len(started) == 1:
            raise RuntimeError("the first fit failed")
        time.sleep(0.5)  # the others are slow: the queued ones are dropped meanwhile
        return fit(rows, *args, **kwargs)

    monkeypatch.setattr(training, "_fit_pair", failing)
    with pytest.raises(RuntimeError, match="the first fit failed"):
        train_model(features, labels, n_folds=4, params={"n_estimators": 5}, feature_columns=columns,
                    workers=2, control=False)
    # the final fit failed first; at most the two next ones were under way: four folds and the
    # final fit, taken in turn, would have started all five
    assert len(started) <= 3


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_a_worker_count_that_is_not_a_whole_number_from_one_is_refused_naming_the_setting(frames, workers):
    features, labels, columns = frames
    with pytest.raises(ValueError, match="TRADING_TRAINING_WORKERS"):
        train_model(features, labels, feature_columns=columns, workers=workers)
    with pytest.raises(ValueError, match="TRADING_TRAINING_WORKERS"):
        TrainingOptions(workers=workers)


def test_options_carry_the_worker_count():
    assert TrainingOptions(workers=2).workers == 2
    assert TrainingOptions().workers >= 1
