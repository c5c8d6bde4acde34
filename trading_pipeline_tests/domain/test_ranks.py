"""Ranks within sessions (domain/ranks.py) against polars' own rank over the session."""

import math
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.domain import ranks
from trading_pipeline.domain.ranks import average_ranks, session_bounds, session_percentile_ranks

_session_values = st.lists(  # one session's values: few distinct ones (ties), nulls, any length
    st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 0.25, 2.0]),
              st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)), max_size=12)


def _frame(sessions: list[list[float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"session": [day for day, values in enumerate(sessions) for _ in values],
         "value": [value for values in sessions for value in values]},
        schema={"session": pl.Int64, "value": pl.Float64})


@settings(max_examples=300, deadline=None)
@given(sessions=st.lists(_session_values, min_size=1, max_size=8), chunk=st.sampled_from([1, 7, 1 << 18]))
def test_percentile_ranks_equal_polars_rank_over_the_session_bit_for_bit(sessions, chunk):
    frame = _frame(sessions)
    value = pl.col("value")
    count, rank = value.count().over("session"), value.rank(method="average").over("session")
    expected = frame.select(pl.when(value.is_null()).then(None).when(count > 1).then((rank - 1) / (count - 1))
                            .otherwise(0.5)).to_series()
    with mock.patch.object(ranks, "_RANK_CHUNK", chunk):  # several sessions a chunk, or one
        assert session_percentile_ranks(frame["value"], frame["session"]).equals(expected, check_names=False)


@settings(max_examples=200, deadline=None)
@given(sessions=st.lists(_session_values, min_size=1, max_size=8), chunk=st.sampled_from([1, 7, 1 << 18]))
def test_average_ranks_equal_polars_rank_over_the_session_bit_for_bit(sessions, chunk):
    frame = _frame(sessions)
    expected = frame.select(pl.col("value").rank(method="average").over("session")).to_series()
    with mock.patch.object(ranks, "_RANK_CHUNK", chunk):
        got = average_ranks(frame["value"].to_numpy(), session_bounds(frame["session"]))
    assert pl.Series("value", got, nan_to_null=True).equals(expected.cast(pl.Float64))


def test_rows_out_of_session_order_and_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="session order"):
        session_percentile_ranks(pl.Series("value", [1.0, 2.0, 3.0]), pl.Series([2, 1, 2]))
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="value holds NaN or infinite values: make them null"):
            session_percentile_ranks(pl.Series("value", [1.0, bad]), pl.Series([1, 1]))
    with pytest.raises(ValueError, match="finite values"):
        average_ranks(np.array([1.0, -np.inf]), np.array([0, 2]))
