"""validate_bars: every bar frame is cast to BAR_SCHEMA or refused with problems named by row."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import BAR_SCHEMA, BarValidationError, validate_bars

MONDAY, TUESDAY, SATURDAY = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 9)


def good_rows() -> dict[str, list]:
    """Three valid bars, deliberately not in sorted order."""
    return {
        "session": [TUESDAY, MONDAY, MONDAY],
        "symbol": ["AAA", "BBB", "AAA"],
        "open": [10.0, 20.0, 9.5],
        "high": [11.0, 21.0, 10.5],
        "low": [9.0, 19.0, 9.0],
        "close": [10.5, 20.5, 10.0],
        "volume": [1000.0, 2000.0, 0.0],
    }


def refused(frame: pl.DataFrame, **kwargs) -> BarValidationError:
    with pytest.raises(BarValidationError) as caught:
        validate_bars(frame, "unit-test source", **kwargs)
    return caught.value


def test_a_valid_frame_is_cast_to_the_schema_and_sorted():
    got = validate_bars(pl.DataFrame(good_rows()), "unit-test source")
    assert got.schema == pl.Schema(BAR_SCHEMA)
    assert got.select("session", "symbol").rows() == [(MONDAY, "AAA"), (MONDAY, "BBB"), (TUESDAY, "AAA")]
    assert got["adj_close"].to_list() == got["close"].to_list() == [10.0, 20.5, 10.5]


def test_names_in_any_case_text_values_ints_and_extra_columns_are_accepted():
    rows = good_rows()
    raw = pl.DataFrame(
        {
            "Date": [d.isoformat() for d in rows["session"]],
            "SYMBOL": [f" {s} " for s in rows["symbol"]],
            "Open": [str(v) for v in rows["open"]],
            "HIGH": rows["high"],
            "low": rows["low"],
            "Close": rows["close"],
            "Volume": [1000, 2000, 0],  # integers
            "Adj_Close": [10.4, None, 9.9],  # one missing adjustment falls back to close
            "exchange": ["X", "X", "X"],
        }
    )
    got = validate_bars(raw, "unit-test source")
    assert got.columns == list(BAR_SCHEMA)
    assert got["symbol"].to_list() == ["AAA", "BBB", "AAA"]
    assert got["volume"].to_list() == [0.0, 2000.0, 1000.0]
    assert got["adj_close"].to_list() == [9.9, 20.5, 10.4]


def test_datetime_sessions_are_taken_as_their_date():
    rows = good_rows()
    rows["session"] = [datetime(d.year, d.month, d.day, 16, 0) for d in rows["session"]]
    got = validate_bars(pl.DataFrame(rows), "unit-test source")
    assert got["session"].to_list() == [MONDAY, MONDAY, TUESDAY]


def test_missing_columns_are_named_with_what_was_found():
    error = refused(pl.DataFrame(good_rows()).drop("close", "volume"))
    assert "unit-test source" in str(error)
    assert "missing columns 'close', 'volume'" in str(error)
    assert "'high'" in str(error)  # what was found
    error = refused(pl.DataFrame(good_rows()).drop("session"))
    assert "missing column 'date' (or 'session')" in str(error)


BREAKAGES = [
    ("open", 1, float("nan"), "open is NaN"),
    ("close", 1, None, "close is missing"),
    ("low", 1, 0.0, "low (0.0) is not a positive price"),
    ("high", 1, -21.0, "high (-21.0) is not a positive price"),
    ("close", 1, float("inf"), "close (inf) is not finite"),
    ("high", 1, 18.0, "high (18.0) is below low (19.0)"),
    ("open", 1, 22.0, "open (22.0) is outside [low, high] = [19.0, 21.0]"),
    ("close", 1, 18.5, "close (18.5) is outside [low, high] = [19.0, 21.0]"),
    ("volume", 1, -5.0, "volume (-5.0) is negative"),
    ("volume", 1, float("nan"), "volume is NaN"),
    ("symbol", 1, "", "symbol is missing"),
]


@pytest.mark.parametrize(("column", "row", "value", "problem"), BREAKAGES)
def test_each_broken_value_is_named_by_session_symbol_and_problem(column, row, value, problem):
    rows = good_rows()
    rows[column][row] = value
    error = refused(pl.DataFrame(rows))
    where = "session 2024-03-04 symbol " + (rows["symbol"][row] or "")
    assert f"{where}: {problem}" in str(error)
    assert error.total == 1 and len(error.problems) == 1


def test_duplicates_are_named_with_the_first_occurrence():
    rows = good_rows()
    rows["symbol"][1] = "AAA"  # BBB's row becomes a second (Monday, AAA)
    error = refused(pl.DataFrame(rows), row_numbers=[2, 3, 4])
    assert "line 4: duplicate bar for session 2024-03-04 symbol AAA (already on line 3)" in str(error)
    assert error.total == 1


@pytest.mark.parametrize(
    ("raw_date", "problem"),
    [
        ("2024-02-30", "date '2024-02-30' is not a YYYY-MM-DD date"),
        ("03/05/2024", "date '03/05/2024' is not a YYYY-MM-DD date"),
        ("2024-03-09", "date 2024-03-09 (Saturday) is not an XNYS trading session"),
        ("2024-03-29", "date 2024-03-29 (Friday) is not an XNYS trading session"),  # Good Friday
        ("2999-12-31", "date 2999-12-31 is outside the XNYS calendar"),  # before 2000 is fine: the calendar covers the data
        (None, "date is missing"),
    ],
)
def test_dates_must_parse_and_be_xnys_sessions(raw_date, problem):
    rows = good_rows()
    rows["session"] = [d.isoformat() for d in rows["session"]]
    rows["session"][0] = raw_date
    error = refused(pl.DataFrame(rows), row_numbers=[2, 3, 4])
    assert f"line 2: {problem}" in str(error)
    assert error.total == 1


def test_weekend_rows_are_an_error_even_with_good_prices():
    rows = good_rows()
    rows["session"][0] = SATURDAY
    error = refused(pl.DataFrame(rows))
    assert "session 2024-03-09 symbol AAA: date 2024-03-09 (Saturday) is not an XNYS" in str(error)
    assert "remove rows for days the exchange was closed" in str(error)


def test_up_to_ten_problems_are_listed_and_the_rest_counted():
    sessions = sessions_between(date(2024, 1, 2), date(2024, 3, 1))[:25]
    frame = pl.DataFrame(
        {
            "session": sessions,
            "symbol": ["AAA"] * 25,
            "open": [10.0] * 25,
            "high": [9.0] * 25,  # below low on every row
            "low": [9.5] * 25,
            "close": [9.5] * 25,
            "volume": [1.0] * 25,
        }
    )
    error = refused(frame, row_numbers=range(2, 27), row_word="row")
    assert error.total == 25 and len(error.problems) == 10
    assert error.problems[0] == "row 2: high (9.0) is below low (9.5)"
    assert "... and 15 more" in str(error)
    assert "row 12:" not in str(error)
    assert isinstance(error, ValueError)


def test_row_numbers_must_match_the_frame():
    with pytest.raises(ValueError, match="row_numbers has 2 entries for 3 rows"):
        validate_bars(pl.DataFrame(good_rows()), "unit-test source", row_numbers=[1, 2])


@st.composite
def valid_bar_frames(draw):
    sessions = sessions_between(date(2023, 1, 3), date(2023, 2, 28))
    chosen = draw(st.lists(st.sampled_from(sessions), min_size=1, max_size=8, unique=True))
    symbols = draw(st.lists(st.sampled_from(["AAA", "BBB", "CCC", "DDD"]), min_size=1, max_size=4, unique=True))
    price = st.floats(min_value=0.01, max_value=1e5, allow_nan=False)
    share = st.floats(min_value=0.0, max_value=1.0)
    rows = []
    for session in chosen:
        for symbol in symbols:
            low, width = draw(price), draw(st.floats(min_value=0.0, max_value=0.5))
            high = low * (1 + width)
            open_, close = (low + draw(share) * (high - low) for _ in range(2))
            rows.append((session, symbol, min(max(open_, low), high), high, low, min(max(close, low), high),
                         draw(st.floats(min_value=0, max_value=1e9))))
    return pl.DataFrame(rows, schema=list(BAR_SCHEMA)[:-1], orient="row").sample(
        fraction=1.0, shuffle=True, seed=draw(st.integers(0, 1000))
    )


@settings(max_examples=60, deadline=None)
@given(frame=valid_bar_frames(), data=st.data())
def test_valid_frames_pass_unchanged_and_one_broken_row_is_pinpointed(frame, data):
    got = validate_bars(frame, "generated")
    assert got.drop("adj_close").equals(frame.sort("session", "symbol"))
    row = data.draw(st.integers(0, frame.height - 1))
    session, symbol, low = frame["session"][row], frame["symbol"][row], frame["low"][row]
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(low / 2).otherwise(pl.col("high")).alias("high")
    )
    error = refused(broken)
    assert [p.split(":")[0] for p in error.problems] == [f"session {session} symbol {symbol}"]
    assert "is below low" in error.problems[0]
