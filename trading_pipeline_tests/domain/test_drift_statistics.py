"""The drift statistics computed on the frames are Evidently's own, column by column: same
method, score, threshold and decision (Evidently runs here as the reference)."""

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain import drift

COLUMNS = ["normal", "skewed", "integers", "gappy", "score"]


def _frame(rows: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    gappy = np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows))
    return pl.DataFrame({
        "normal": rng.normal(size=rows) * scale + shift,
        "skewed": rng.exponential(size=rows) + shift,
        "integers": rng.integers(0, 15, rows).astype(float),  # few values: PSI's bucket branch
        "gappy": pl.Series(gappy).fill_nan(None),
        "score": rng.normal(size=rows) * scale + shift,
    })


def _evidently_table(reference, current, columns, method, threshold) -> pl.DataFrame:
    ref, cur = drift._checked_frames(reference, current, columns)
    snapshot = drift._evidently_snapshot(ref, cur, columns, 0.5, method, threshold)
    return drift._read_snapshot(snapshot.dict(), columns)[0]


@pytest.mark.parametrize(("reference_rows", "method", "threshold", "expected_method"), [
    (500, None, None, "K-S p_value"),  # Evidently's choice for small references
    (3000, None, None, "Wasserstein distance (normed)"),  # and above 1,000 rows
    (3000, "wasserstein", 0.3, "wasserstein"),  # the daily report's setting
    (800, "ks", None, "ks"),
    (800, "psi", 0.05, "psi"),
])
@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_the_statistics_are_evidentlys(reference_rows, method, threshold, expected_method, shift):
    reference = _frame(reference_rows, seed=1)
    current = _frame(400, seed=2, scale=1.3, shift=shift)
    ours = drift.evaluate_drift(reference, current, COLUMNS, warn_share=0.3, severe_share=0.5,
                                method=method, threshold=threshold)
    theirs = _evidently_table(reference, current, COLUMNS, method, threshold)
    assert ours.per_column["method"].to_list() == [expected_method] * len(COLUMNS)
    assert ours.per_column.drop("score").equals(theirs.drop("score"))
    np.testing.assert_allclose(ours.per_column["score"].to_numpy(), theirs["score"].to_numpy(),
                               rtol=1e-12, atol=0)
    assert ours.drifted_count == int(theirs["drifted"].sum())


def test_a_shift_is_seen_and_the_same_data_is_not():
    reference = _frame(3000, seed=1)
    calm = drift.evaluate_drift(reference, _frame(400, seed=2), COLUMNS, warn_share=0.3,
                                severe_share=0.5, method="wasserstein", threshold=0.3)
    shifted = drift.evaluate_drift(reference, _frame(400, seed=2, scale=3.0, shift=1.0), COLUMNS,
                                   warn_share=0.3, severe_share=0.5, method="wasserstein", threshold=0.3)
    assert calm.severity == "none" and calm.drifted_count == 0
    assert shifted.severity == "severe" and shifted.prediction_drifted is True


def test_columns_with_few_values_are_left_to_evidently():
    # five values or fewer: Evidently picks chi-square / z / Jensen-Shannon, not reproduced here
    rng = np.random.default_rng(4)
    reference = pl.DataFrame({"flag": rng.integers(0, 3, 500).astype(float), "x": rng.normal(size=500)})
    current = pl.DataFrame({"flag": rng.integers(0, 3, 300).astype(float), "x": rng.normal(size=300)})
    result = drift.evaluate_drift(reference, current, ["flag", "x"], warn_share=0.3, severe_share=0.5)
    theirs = _evidently_table(reference, current, ["flag", "x"], None, None)
    assert result.per_column.equals(theirs)
    assert result.per_column["method"][1] == "K-S p_value"


def test_a_column_without_finite_values_is_named():
    reference = _frame(500, seed=1)
    current = _frame(300, seed=2).with_columns(pl.lit(float("inf")).alias("skewed"))
    with pytest.raises(ValueError, match="no finite values in 'skewed'"):
        drift.evaluate_drift(reference, current, COLUMNS, warn_share=0.3, severe_share=0.5)
