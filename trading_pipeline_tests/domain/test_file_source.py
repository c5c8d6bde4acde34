"""FileBarSource: a folder of CSV/Parquet bars, validated on first use, errors named by file and line."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import (
    BAR_SCHEMA,
    BarValidationError,
    FileBarSource,
    MarketDataError,
    MarketDataSource,
    SyntheticMarket,
)

SESSIONS = sessions_between(date(2023, 1, 3), date(2023, 3, 31))
HEADER = "date,symbol,open,high,low,close,volume"
GOOD_LINES = [
    "2024-03-04,AAA,10.0,11.0,9.0,10.5,1000",
    "2024-03-05,AAA,10.5,11.5,10.0,11.0,1200",
    "2024-03-06,AAA,11.0,11.2,10.1,10.2,900",
]


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    """Real-looking bars to write out: the synthetic market's first quarter of 2023."""
    return SyntheticMarket(seed=11, universe_size=6, origin=date(2023, 1, 3)).bars(SESSIONS)


def as_file_columns(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.rename({"session": "date"}).with_columns(pl.col("date").dt.strftime("%Y-%m-%d"))


def write_csv(folder: Path, name: str, lines: list[str], header: str = HEADER) -> Path:
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def load_error(folder: Path) -> str:
    with pytest.raises(BarValidationError) as caught:
        FileBarSource(folder).bars(SESSIONS)
    return str(caught.value)


# ---------------------------------------------------------------- reading good folders


def test_one_csv_per_symbol_gives_back_exactly_the_bars_written(tmp_path, reference):
    for symbol, rows in reference.partition_by("symbol", as_dict=True).items():
        as_file_columns(rows).drop("adj_close").write_csv(tmp_path / f"{symbol[0]}.csv")
    source = FileBarSource(tmp_path)
    assert isinstance(source, MarketDataSource)
    got = source.bars(SESSIONS)
    assert got.schema == pl.Schema(BAR_SCHEMA)
    assert got.equals(reference)  # sorted by session then symbol, adj_close = close
    assert source.symbols() == sorted(reference["symbol"].unique().to_list())
    assert source.sessions() == SESSIONS


def test_csv_and_parquet_mix_with_any_case_extra_columns_and_adj_close(tmp_path, reference):
    symbols = sorted(reference["symbol"].unique().to_list())
    adjusted = reference.with_columns((pl.col("close") * 0.97).alias("adj_close"))
    many = adjusted.filter(pl.col("symbol").is_in(symbols[:4]))
    many.rename({"session": "Date"}).rename(str.upper).with_columns(pl.lit("NYSE").alias("exchange")).write_parquet(
        tmp_path / "bulk-export.parquet"
    )
    rest = as_file_columns(reference.filter(pl.col("symbol").is_in(symbols[4:]))).drop("adj_close")
    rest.with_columns(pl.lit("x").alias("note")).rename(str.title).write_csv(tmp_path / "rest.CSV")
    (tmp_path / "README.txt").write_text("not bars: ignored")

    got = FileBarSource(tmp_path).bars(SESSIONS)
    expected = pl.concat([many, reference.filter(pl.col("symbol").is_in(symbols[4:]))]).sort("session", "symbol")
    assert got.equals(expected)
    from_parquet = got.filter(pl.col("symbol") == symbols[0])
    assert (from_parquet["adj_close"] < from_parquet["close"]).all()


def test_bars_returns_only_the_sessions_asked_for(tmp_path, reference):
    as_file_columns(reference).write_csv(tmp_path / "all.csv")
    source = FileBarSource(tmp_path)
    asked = [SESSIONS[3], date(2023, 1, 7), date(2024, 6, 3), SESSIONS[10]]  # a Saturday, a session not in the files
    got = source.bars(asked)
    assert got["session"].unique().sort().to_list() == [SESSIONS[3], SESSIONS[10]]
    assert got.height == 2 * 6
    assert source.bars([]).schema == pl.Schema(BAR_SCHEMA) and source.bars([]).is_empty()
    assert source.bars([datetime(2023, 1, 5, 16, 0)]).equals(source.bars([date(2023, 1, 5)]))


def test_sectors_are_unknown_unless_a_sector_column_names_them(tmp_path):
    write_csv(tmp_path, "a.csv", [line + ",Energy" for line in GOOD_LINES], HEADER + ",Sector")
    write_csv(tmp_path, "b.csv", [line.replace("AAA", "BBB") for line in GOOD_LINES])
    sectors = FileBarSource(tmp_path).sectors()
    assert sectors.rows() == [("AAA", "Energy"), ("BBB", "unknown")]


def test_the_folder_is_read_once_on_first_use_and_then_cached(tmp_path, reference):
    missing = FileBarSource(tmp_path / "not-yet")  # nothing is read when the source is built
    as_file_columns(reference).write_csv(tmp_path / "all.csv")
    source = FileBarSource(tmp_path)
    first = source.bars(SESSIONS[:5])
    (tmp_path / "all.csv").unlink()
    assert source.bars(SESSIONS[:5]).equals(first)  # served from the cache
    with pytest.raises(MarketDataError):
        FileBarSource(tmp_path).bars(SESSIONS[:5])  # a new source reads the (now empty) folder
    with pytest.raises(MarketDataError, match="does not exist"):
        missing.symbols()


def test_blank_lines_do_not_shift_the_reported_line_numbers(tmp_path):
    write_csv(tmp_path, "gappy.csv", [GOOD_LINES[0], "", GOOD_LINES[1], "2024-03-06,AAA,11.0,10.0,10.5,10.2,900"])
    error = load_error(tmp_path)
    assert "gappy.csv line 5: high (10.0) is below low (10.5)" in error


# ---------------------------------------------------------------- bad folders and files


@pytest.mark.parametrize("make", ["missing", "empty", "a file", "only other files"])
def test_a_folder_without_bar_files_says_what_it_should_contain(tmp_path, make):
    folder = tmp_path / "bars"
    if make == "empty":
        folder.mkdir()
    elif make == "a file":
        folder.write_text("date,symbol\n")
    elif make == "only other files":
        folder.mkdir()
        (folder / "prices.xlsx").write_bytes(b"\x00")
    with pytest.raises(MarketDataError) as caught:
        FileBarSource(folder).bars(SESSIONS)
    message = str(caught.value)
    assert str(folder) in message
    assert "should contain *.csv and/or *.parquet files with the columns date" in message
    assert "symbol, open, high, low, close, volume" in message


BAD_CSV_LINES = [
    # (replacement for the second data line (line 3), the problem reported for line 3)
    ("2024-03-05,AAA,-10.5,11.5,10.0,11.0,1200", "open (-10.5) is not a positive price"),
    ("2024-03-05,AAA,10.5,11.5,10.0,NaN,1200", "close is NaN"),
    ("2024-03-05,AAA,10.5,11.5,10.0,,1200", "close is missing"),
    ("2024-03-05,AAA,10.5,9.5,10.0,10.0,1200", "high (9.5) is below low (10.0)"),
    ("2024-03-05,AAA,10.5,11.5,10.0,11.0,-3", "volume (-3.0) is negative"),
    ("2024-03-05,AAA,10.5,11.5,10.0,eleven,1200", "close 'eleven' is not a number"),
    ("05/03/2024,AAA,10.5,11.5,10.0,11.0,1200", "date '05/03/2024' is not a YYYY-MM-DD date"),
    ("2024-03-09,AAA,10.5,11.5,10.0,11.0,1200", "date 2024-03-09 (Saturday) is not an XNYS trading session"),
    ("2024-03-04,AAA,10.5,11.5,10.0,11.0,1200",
     "duplicate bar for session 2024-03-04 symbol AAA (already on aaa_prices.csv line 2)"),
]


@pytest.mark.parametrize(("bad_line", "problem"), BAD_CSV_LINES)
def test_a_bad_csv_line_is_named_by_file_line_and_problem(tmp_path, bad_line, problem):
    write_csv(tmp_path, "fine.csv", [line.replace("AAA", "ZZZ") for line in GOOD_LINES])
    write_csv(tmp_path, "aaa_prices.csv", [GOOD_LINES[0], bad_line, GOOD_LINES[2]])
    error = load_error(tmp_path)
    assert f"aaa_prices.csv line 3: {problem}" in error
    assert "(1 problem)" in error
    assert "fine.csv" not in error


def test_a_missing_column_is_named_with_the_file(tmp_path):
    write_csv(tmp_path, "no_close.csv", [",".join(line.split(",")[:5] + line.split(",")[6:]) for line in GOOD_LINES],
              "Date,Symbol,Open,High,Low,Volume")
    error = load_error(tmp_path)
    assert "no_close.csv" in error and "missing column 'close'" in error
    assert "['Date', 'Symbol', 'Open', 'High', 'Low', 'Volume']" in error


def test_parquet_problems_are_named_by_row(tmp_path, reference):
    bars = as_file_columns(reference).head(10).with_columns(
        pl.when(pl.int_range(pl.len()) == 6).then(-1.0).otherwise(pl.col("low")).alias("low")
    )
    bars.write_parquet(tmp_path / "export.parquet")
    assert "export.parquet row 7: low (-1.0) is not a positive price" in load_error(tmp_path)


def test_the_same_bar_in_two_files_names_both(tmp_path):
    write_csv(tmp_path, "2024-q1.csv", GOOD_LINES)
    write_csv(tmp_path, "march.csv", GOOD_LINES[2:] + [GOOD_LINES[2].replace("AAA", "BBB")])
    error = load_error(tmp_path)
    assert (
        "march.csv line 2: duplicate bar for session 2024-03-06 symbol AAA (already on 2024-q1.csv line 4)"
        in error
    )
    assert "(1 problem)" in error


def test_an_unreadable_file_is_named(tmp_path):
    write_csv(tmp_path, "good.csv", GOOD_LINES)
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    error = load_error(tmp_path)
    assert "broken.parquet: could not be read as Parquet" in error


def test_problems_in_several_files_are_reported_together_and_nothing_is_loaded(tmp_path):
    write_csv(tmp_path, "a.csv", [GOOD_LINES[0], "2024-03-05,AAA,10.5,9.0,10.0,11.0,1200"])
    write_csv(tmp_path, "b.csv", ["2024-03-10,BBB,10.0,11.0,9.0,10.5,1000"])
    write_csv(tmp_path, "c.csv", [line.replace("AAA", "CCC") for line in GOOD_LINES])
    source = FileBarSource(tmp_path)
    for _ in range(2):  # a failed load is not cached half-done
        with pytest.raises(BarValidationError) as caught:
            source.bars(SESSIONS)
        message = str(caught.value)
        assert "(2 problems)" in message
        assert "a.csv line 3: high (9.0) is below low (10.0)" in message
        assert "a.csv line 3: close (11.0) is outside" not in message  # one bad value, one problem
        assert "b.csv line 2: date 2024-03-10 (Sunday) is not an XNYS trading session" in message
        assert "nothing was loaded" in message
