"""The Ridge baseline's imputer takes medians a column at a time (issue 16, memory): the same
medians, fills and baseline predictions as scikit-learn's SimpleImputer(strategy="median",
keep_empty_features=True), to the last bit, without its copies of the whole matrix."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.impute import SimpleImputer

from trading_pipeline.domain.model.imputation import ColumnMedianImputer

finite_or_nan = st.one_of(st.just(np.nan), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                          st.sampled_from([0.0, -0.0, 1.5, 1.5, 2.5]))  # ties and signed zeros


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=finite_or_nan))
def test_medians_and_fills_equal_simple_imputers_to_the_last_bit(matrix):
    reference = SimpleImputer(strategy="median", keep_empty_features=True).fit(matrix)
    imputer = ColumnMedianImputer().fit(matrix)
    assert imputer.statistics_.tobytes() == reference.statistics_.tobytes()
    assert imputer.transform(matrix).tobytes() == reference.transform(matrix).tobytes()


def test_a_column_without_any_value_is_filled_with_zero_as_simple_imputer_keeps_it():
    matrix = np.array([[np.nan, 1.0], [np.nan, 3.0], [np.nan, np.nan]])
    imputer = ColumnMedianImputer().fit(matrix)
    assert imputer.statistics_.tolist() == [0.0, 2.0]
    assert imputer.transform(matrix).tolist() == [[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]]


def test_copy_false_fills_in_place_and_copy_true_leaves_the_input_alone():
    matrix = np.asfortranarray([[1.0, np.nan], [np.nan, 4.0], [3.0, 6.0]])
    before = matrix.copy()
    filled = ColumnMedianImputer().fit(matrix).transform(matrix)
    assert np.array_equal(matrix, before, equal_nan=True) and not np.isnan(filled).any()
    in_place = ColumnMedianImputer(copy=False).fit(matrix).transform(matrix)
    assert in_place is matrix and matrix.tolist() == [[1.0, 5.0], [2.0, 4.0], [3.0, 6.0]]


def test_infinity_and_a_wrong_column_count_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="infinity"):
        ColumnMedianImputer().fit(np.array([[1.0], [np.inf]]))
    fitted = ColumnMedianImputer().fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.ones((3, 3)))


def test_fitting_takes_far_less_memory_than_simple_imputer():
    """SimpleImputer's np.ma.median holds several copies of the matrix at once; a column at a
    time holds about one column."""
    rng = np.random.default_rng(1)
    matrix = np.asfortranarray(rng.normal(size=(200_000, 10)))
    matrix[rng.random(matrix.shape) < 0.05] = np.nan
    peaks = {}
    for name, imputer in (("simple", SimpleImputer(strategy="median", keep_empty_features=True)),
                          ("column", ColumnMedianImputer())):
        tracemalloc.start()
        imputer.fit(matrix)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["simple"] > 2 * matrix.nbytes
    assert peaks["column"] < 0.3 * matrix.nbytes


def test_the_trained_baseline_equals_the_simple_imputer_pipeline_on_features_with_gaps():
    """Through `train_model`: every fold's baseline predictions and the final baseline equal a
    SimpleImputer -> StandardScaler -> Ridge pipeline fitted on the same rows, with a tenth of
    the feature values missing (the test market has none of its own)."""
    import polars as pl
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from trading_pipeline.domain.model.training import BASELINE_ALPHA, feature_matrix, train_model
    from trading_pipeline_tests.domain.conftest import training_frames

    features, labels = training_frames(n_symbols=20, scored_sessions=160, seed=4)
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    rng = np.random.default_rng(2)
    features = features.with_columns(
        pl.when(pl.Series(rng.random(features.height) < 0.1)).then(None).otherwise(pl.col(c)).alias(c)
        for c in columns)
    result = train_model(features, labels, n_folds=2, seed=1, params={"n_estimators": 10},
                         feature_columns=columns, control=False)
    rows = (features.join(labels, on=["session", "symbol"]).drop_nulls(["label", "forward_return"])
            .filter(~pl.all_horizontal(pl.col(c).is_null() for c in columns)).sort("session", "symbol"))
    assert np.isnan(feature_matrix(rows, columns)).mean() > 0.05

    def plain(train):
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                             Ridge(alpha=BASELINE_ALPHA)).fit(feature_matrix(train, columns), train["label"].to_numpy())

    oos = result.oos_predictions.sort("fold", "session", "symbol")
    for fold in result.folds:
        train = rows.filter(pl.col("session").is_in(fold.train_sessions))
        valid = rows.filter(pl.col("session").is_in(fold.validation_sessions))
        scored = oos.filter(pl.col("fold") == fold.index)["baseline_prediction"].to_numpy()
        assert scored.tobytes() == plain(train).predict(feature_matrix(valid, columns)).tobytes()
    x_all = feature_matrix(rows, columns)
    assert result.baseline_model.predict(x_all).tobytes() == plain(rows).predict(x_all).tobytes()
