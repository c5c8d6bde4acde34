"""Training builds its matrices and fold rows with fewer copies (issue 16, memory) and gives the
same models to the last bit as the plain way: each fold's rows selected by session, the feature
matrix cast and null-filled, LightGBM's scikit-learn estimator and the Ridge pipeline fitted on
copies (training itself calls `lgb.train` on binned rows, which a fold's control reuses)."""

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model.signal import SignalRules
from trading_pipeline.domain.model.training import (
    BASELINE_ALPHA,
    DEFAULT_LGBM_PARAMS,
    feature_matrix,
    train_model,
)
from trading_pipeline_tests.domain.conftest import make_bars


def plain_matrix(frame: pl.DataFrame, columns) -> np.ndarray:
    return frame.select(pl.col(c).cast(pl.Float64).fill_null(float("nan")) for c in columns).to_numpy()


def plain_ridge():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                         Ridge(alpha=BASELINE_ALPHA))


@pytest.fixture(scope="module")
def trained():
    bars = make_bars(n_symbols=25, n_sessions=MIN_HISTORY_SESSIONS + 200, seed=5)
    features = compute_features(bars)
    first = features["session"].unique().sort()[MIN_HISTORY_SESSIONS]
    features = features.filter(pl.col("session") >= first)
    labels = forward_return_labels(bars, horizon=5)
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    params = {"n_estimators": 40}
    result = train_model(features, labels, n_folds=3, horizon=5, embargo=5, seed=3, params=params,
                         feature_columns=columns)
    rows = (features.join(labels, on=["session", "symbol"]).drop_nulls(["label", "forward_return"])
            .filter(~pl.all_horizontal(pl.col(c).is_null() for c in columns)).sort("session", "symbol"))
    return result, rows, columns, {**DEFAULT_LGBM_PARAMS, **params, "random_state": 3}


def test_every_fold_and_the_final_fit_equal_the_plain_way_to_the_last_bit(trained):
    result, rows, columns, params = trained
    oos = result.oos_predictions.sort("fold", "session", "symbol")
    for fold in result.folds:
        train = rows.filter(pl.col("session").is_in(fold.train_sessions))
        valid = rows.filter(pl.col("session").is_in(fold.validation_sessions))
        x_train, x_valid = plain_matrix(train, columns), plain_matrix(valid, columns)
        scored = oos.filter(pl.col("fold") == fold.index)
        assert scored.select("session", "symbol").equals(valid.select("session", "symbol"))
        model = lgb.LGBMRegressor(**params).fit(x_train, train["label"].to_numpy(), feature_name=list(columns))
        assert np.array_equal(scored["prediction"].to_numpy(), model.booster_.predict(x_valid))
        ridge = plain_ridge().fit(x_train, train["label"].to_numpy())
        assert np.array_equal(scored["baseline_prediction"].to_numpy(), ridge.predict(x_valid))
    x_all = plain_matrix(rows, columns)
    final = lgb.LGBMRegressor(**params).fit(x_all, rows["label"].to_numpy(), feature_name=list(columns))
    assert np.array_equal(result.model.predict(x_all), final.booster_.predict(x_all))
    ridge = plain_ridge().fit(x_all, rows["label"].to_numpy())
    assert np.array_equal(result.baseline_model.predict(x_all), ridge.predict(x_all))


def test_the_fitted_baseline_leaves_what_it_scores_untouched(trained):
    """The baseline may be fitted in place on its own matrix, but it must copy when it predicts:
    the same matrix is scored by LightGBM too, and a caller's frame must not change."""
    result, rows, columns, _ = trained
    matrix = feature_matrix(rows, columns)
    matrix[::7, 2] = np.nan  # something for the imputer to fill
    before = matrix.copy()
    result.baseline_model.predict(matrix)
    assert np.array_equal(matrix, before, equal_nan=True)
    assert result.baseline_model.get_params()["columnmedianimputer__copy"] is True
    assert result.baseline_model.get_params()["standardscaler__copy"] is True
    assert result.baseline_model.get_params()["ridge__copy_X"] is True


def test_the_feature_matrix_turns_nulls_and_other_types_into_float64_nan():
    frame = pl.DataFrame({"a": [1.0, None, 3.0], "b": pl.Series([None, 2, 3], dtype=pl.Int32),
                          "c": pl.Series([0.5, 1.5, None], dtype=pl.Float32)})
    matrix = feature_matrix(frame, ("c", "a", "b"))
    assert matrix.dtype == np.float64 and matrix.shape == (3, 3)
    assert np.array_equal(matrix, plain_matrix(frame, ("c", "a", "b")), equal_nan=True)
    assert np.isnan(matrix[2, 0]) and np.isnan(matrix[1, 1]) and np.isnan(matrix[0, 2])
    assert matrix.flags.writeable


def test_the_control_on_the_models_binned_rows_equals_a_fresh_fit_where_bins_come_from_a_sample():
    """Over 200,000 rows LightGBM places its bins from a sample of rows drawn with the model's
    seed. A fold's first control reuses the model's binned rows with its shuffled label (same
    rows, same seed): its trees must be a fresh fit's, to the last bit."""
    from trading_pipeline.domain.model.training import shuffle_within_sessions

    bars = make_bars(n_symbols=600, n_sessions=MIN_HISTORY_SESSIONS + 760, seed=8)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    labels = forward_return_labels(bars, horizon=5)
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    params = {"n_estimators": 8}
    result = train_model(features, labels, n_folds=2, seed=3, params=params, feature_columns=columns,
                         signal_rules=SignalRules(random_scorers=0))
    rows = (features.join(labels, on=["session", "symbol"]).drop_nulls(["label", "forward_return"])
            .filter(~pl.all_horizontal(pl.col(c).is_null() for c in columns)).sort("session", "symbol"))
    plain = {**DEFAULT_LGBM_PARAMS, **params, "random_state": 3}
    oos = result.oos_predictions.sort("fold", "session", "symbol")
    for fold in result.folds:
        train = rows.filter(pl.col("session").is_between(fold.train_start, fold.train_end))
        assert train.height > 200_000  # LightGBM's bin_construct_sample_cnt: the bins are a sample's
        valid = rows.filter(pl.col("session").is_between(fold.validation_start, fold.validation_end))
        shuffled = shuffle_within_sessions(train, 3 + 7919 * (fold.index + 1))
        control = lgb.LGBMRegressor(**plain).fit(plain_matrix(train, columns), shuffled.to_numpy(),
                                                 feature_name=list(columns))
        scored = oos.filter(pl.col("fold") == fold.index)
        assert np.array_equal(scored["control_prediction"].to_numpy(),
                              control.booster_.predict(plain_matrix(valid, columns)))
