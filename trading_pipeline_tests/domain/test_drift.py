"""Drift with real Evidently on small frames (each report takes about a second)."""

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.drift import evaluate_drift, severity_of

COLUMNS = [f"f{i}" for i in range(6)] + ["score"]


def _frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({c: rng.normal(size=rows) for c in COLUMNS})


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return _frame(500, seed=1)


@pytest.fixture(scope="module")
def same(reference, tmp_path_factory):
    html = tmp_path_factory.mktemp("drift") / "reports" / "same.html"
    return evaluate_drift(reference, _frame(300, seed=2), COLUMNS,
                          warn_share=0.3, severe_share=0.5, html_path=html)


@pytest.fixture(scope="module")
def shifted(reference):
    scaled = [c for c in COLUMNS if c != "f5"]  # six of seven columns, prediction included
    current = _frame(300, seed=3).with_columns(pl.col(c) * 3 for c in scaled)
    return evaluate_drift(reference, current, COLUMNS, warn_share=0.3, severe_share=0.5, html_path=None)


def test_same_distribution_is_no_drift(same):
    assert same.severity == "none"
    assert same.drifted_count == 0 and same.drifted_share == 0.0
    assert same.prediction_drifted is False
    assert same.per_column["column"].to_list() == COLUMNS
    assert (same.reference_rows, same.current_rows) == (500, 300)


def test_scaled_distribution_is_severe(shifted):
    assert shifted.severity == "severe"
    assert shifted.drifted_count == 6
    assert shifted.drifted_share == pytest.approx(6 / 7)
    flagged = shifted.per_column.filter(pl.col("drifted"))["column"].to_list()
    assert sorted(flagged) == sorted(c for c in COLUMNS if c != "f5")
    assert shifted.prediction_drifted is True
    assert shifted.html_path is None


def test_per_column_table_agrees_with_the_thresholds(same, shifted):
    for result in (same, shifted):
        table = result.per_column
        assert table.columns == ["column", "method", "score", "threshold", "drifted"]
        assert int(table["drifted"].sum()) == result.drifted_count
        # small samples use the K-S test: drift means a p-value under the threshold
        assert set(table["method"]) == {"K-S p_value"}
        assert table["drifted"].to_list() == (table["score"] < table["threshold"]).to_list()


def test_html_report_is_written(same):
    assert same.html_path is not None and same.html_path.exists()
    assert same.html_path.stat().st_size > 10_000
    assert "f0" in same.html_path.read_text(encoding="utf-8", errors="ignore")


def test_prediction_drift_alone_is_a_warning_at_most(reference):
    # features: a subsample of the reference itself, so only the prediction moves
    current = reference.head(300).with_columns(pl.col("score") + 2)
    result = evaluate_drift(reference, current, COLUMNS[:2] + ["score"],
                            warn_share=0.3, severe_share=0.5, html_path=None)
    assert result.prediction_drifted is True
    assert result.drifted_count == 1 and result.severity == "warn"  # 1 of 3 columns
    without_score = result.per_column.filter(pl.col("column") != "score")
    assert not without_score["drifted"].any()


def test_method_and_threshold_can_be_chosen(reference):
    current = reference.head(300).with_columns(pl.col("f0") * 3)
    result = evaluate_drift(reference, current, ["f0", "f1"], warn_share=0.3, severe_share=0.5,
                            method="psi", threshold=0.2)
    assert result.per_column["method"].to_list() == ["psi", "psi"]
    assert result.per_column["threshold"].to_list() == [0.2, 0.2]
    assert result.per_column["drifted"].to_list() == [True, False]
    assert result.severity == "severe"  # 1 of 2 columns


def test_severity_thresholds():
    assert severity_of(0.0, 0.3, 0.5) == "none"
    assert severity_of(0.29, 0.3, 0.5) == "none"
    assert severity_of(0.3, 0.3, 0.5) == "warn"
    assert severity_of(0.5, 0.3, 0.5) == "severe"


def test_bad_inputs_are_named(reference):
    with pytest.raises(ValueError, match="lacks columns"):
        evaluate_drift(reference, reference.drop("f1"), COLUMNS, warn_share=0.3, severe_share=0.5)
    with pytest.raises(ValueError, match="warn_share <= severe_share"):
        evaluate_drift(reference, reference, COLUMNS, warn_share=0.6, severe_share=0.5)
    with pytest.raises(ValueError, match="no values in"):
        empty = reference.with_columns(pl.lit(None, pl.Float64).alias("f0"))
        evaluate_drift(reference, empty, COLUMNS, warn_share=0.3, severe_share=0.5)
    with pytest.raises(ValueError, match="numeric"):
        evaluate_drift(reference.with_columns(pl.lit("x").alias("f0")), reference, COLUMNS,
                       warn_share=0.3, severe_share=0.5)
