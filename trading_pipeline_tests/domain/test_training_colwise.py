"""LightGBM builds its histograms a feature at a time (`force_col_wise`, issue 16: less CPU on
the training's few dense columns) and grows the same trees as row-wise: predictions equal to the
last bit at several sizes, for the default stumps and a deeper tuning candidate, with weights and
with missing values."""

import lightgbm as lgb
import numpy as np
import pytest

from trading_pipeline.domain.model.training import DEFAULT_LGBM_PARAMS, PARAM_GRID, feature_matrix, recency_weights
from trading_pipeline_tests.domain.conftest import training_frames

ROW_WISE = {"force_col_wise": False, "force_row_wise": True}


def test_the_default_builds_histograms_column_wise():
    assert DEFAULT_LGBM_PARAMS["force_col_wise"] is True
    assert not DEFAULT_LGBM_PARAMS.get("force_row_wise")


@pytest.mark.parametrize(("symbols", "sessions"), [(10, 80), (40, 200), (120, 300)])
@pytest.mark.parametrize("change", [PARAM_GRID[0], PARAM_GRID[2]], ids=["stumps", "deeper"])
def test_column_wise_grows_the_same_trees_as_row_wise(symbols, sessions, change):
    features, labels = training_frames(n_symbols=symbols, scored_sessions=sessions, seed=symbols)
    rows = features.join(labels, on=["session", "symbol"]).drop_nulls("label").sort("session", "symbol")
    columns = [c for c in features.columns if c not in ("session", "symbol")]
    matrix = feature_matrix(rows, columns)
    matrix[np.random.default_rng(symbols).random(matrix.shape) < 0.05] = np.nan
    weights = recency_weights(rows["session"], 50)
    params = {**DEFAULT_LGBM_PARAMS, **change, "n_estimators": 60, "min_child_samples": 20, "random_state": 5}
    models = [lgb.LGBMRegressor(**{**params, **wise}).fit(matrix, rows["label"].to_numpy(), sample_weight=weights)
              for wise in ({}, ROW_WISE)]
    column_wise, row_wise = (m.booster_.predict(matrix) for m in models)
    assert column_wise.tobytes() == row_wise.tobytes()
    assert np.unique(column_wise).size > 10  # the trees split: something to differ
