"""The features benchmark's row, as `runner` calls it: ours against the pandas reference, same
values. Figures are returned, never asserted: the machine may be shared."""

import polars as pl
import pytest

from trading_pipeline_tests.benchmarks import bench_features


@pytest.mark.slow
def test_the_runner_row_compares_with_the_pandas_reference_and_finds_the_same_values():
    row = bench_features.measure(symbols=30, years=0.5)
    assert row["check"] == "equal"
    assert row["reference"] == "pandas groupby-rolling"
    assert row["seconds"] > 0 and row["cpu_seconds"] > 0 and row["reference_seconds"] > 0
    assert row["peak_mb"] > 0 and "15 features (small)" in row["detail"]


def test_same_values_notices_a_different_value():
    bars = bench_features.synthetic_bars(5, 80)
    sample = pl.from_pandas(bench_features.pandas_reference(bars)).with_columns(pl.col("session").cast(pl.Date))
    changed = sample.with_columns(pl.col("ret_20") * (1 + 1e-6))
    assert bench_features.same_values(sample, sample)
    assert not bench_features.same_values(changed, sample)
