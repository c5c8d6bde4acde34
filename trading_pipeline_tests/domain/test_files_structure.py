"""The file source reads files as real vendors write them, and refuses, naming file and line,
what it cannot read unambiguously: headers, bytes, line endings, symbols, gaps."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from trading_pipeline.domain.market import BarValidationError, FileBarSource, MarketDataError
from trading_pipeline.domain.market.files import DEFAULT_SYMBOL_PATTERN, header_name

ROWS = ["2024-03-04,10.0,11.0,9.0,10.5,10.4,1000", "2024-03-05,10.5,11.5,10.0,11.0,10.9,1200"]
YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refusal(folder: Path, **kwargs) -> str:
    with pytest.raises(BarValidationError) as caught:
        FileBarSource(folder, **kwargs).load()
    return str(caught.value)


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize("spelling", ["Adj Close", "adj_close", "Adj_Close", "ADJ CLOSE", "adjclose", "Adj-Close",
                                      " adj  close ", "Adjusted Close"])
def test_every_usual_spelling_of_the_adjusted_close_is_read(tmp_path, spelling):
    write(tmp_path, "AAA.csv", "\n".join([YAHOO_HEADER.replace("Adj Close", spelling), *ROWS]) + "\n")
    bars = FileBarSource(tmp_path).bars([date(2024, 3, 4), date(2024, 3, 5)])
    assert bars["adj_close"].to_list() == [10.4, 10.9]  # not silently replaced by close
    assert bars["symbol"].to_list() == ["AAA", "AAA"]  # no symbol column: the file name


def test_header_spellings_map_to_columns():
    assert {header_name(n) for n in ("Date", "DATE", "session")} == {"session"}
    assert {header_name(n) for n in ("Symbol", "TICKER")} == {"symbol"}
    assert header_name("Close") == "close" and header_name("Adj Close") == "adj_close"
    assert header_name("Exchange") is None


@pytest.mark.parametrize("header", [YAHOO_HEADER + ",Close", YAHOO_HEADER + ",close", YAHOO_HEADER + ",adj_close"])
def test_two_columns_that_mean_the_same_are_refused(tmp_path, header):
    write(tmp_path, "AAA.csv", "\n".join([header, *(r + ",10.0" for r in ROWS)]) + "\n")
    message = refusal(tmp_path)
    assert "AAA.csv line 1: columns" in message and "keep one of them" in message


def test_a_header_only_file_is_refused_not_dropped(tmp_path):
    write(tmp_path, "AAA.csv", "\n".join([YAHOO_HEADER, *ROWS]) + "\n")
    write(tmp_path, "BBB.csv", YAHOO_HEADER + "\n\n")
    assert "BBB.csv line 1: has a header and no bars" in refusal(tmp_path)


def test_an_empty_file_is_refused(tmp_path):
    write(tmp_path, "AAA.csv", "")
    assert "AAA.csv: is empty" in refusal(tmp_path)


def test_a_row_with_more_fields_than_the_header_is_named(tmp_path):
    write(tmp_path, "AAA.csv", "\n".join([YAHOO_HEADER, ROWS[0], ROWS[1] + ",7"]) + "\n")
    assert "AAA.csv line 3: has 8 fields where the header has 7" in refusal(tmp_path)


# ---------------------------------------------------------------- bytes and line endings


def test_nul_bytes_are_refused_with_their_line(tmp_path):
    write(tmp_path, "AAA.csv", ("\n".join([YAHOO_HEADER, ROWS[0], "2024-03-05,10.5,11.5,10.0,11\x00.0,10.9,1200"])
                                + "\n").encode())
    assert "AAA.csv line 3: holds a NUL byte" in refusal(tmp_path)


def test_utf16_is_named(tmp_path):
    write(tmp_path, "AAA.csv", "\n".join([YAHOO_HEADER, *ROWS]).encode("utf-16"))
    assert "AAA.csv line 1: is UTF-16 text: save it as UTF-8" in refusal(tmp_path)


def test_undecodable_bytes_are_refused_with_their_line(tmp_path):
    text = "\n".join([YAHOO_HEADER + ",Name", ROWS[0] + ",Acme", ROWS[1] + ",Soci\xe9t\xe9"]) + "\n"
    write(tmp_path, "AAA.csv", text.encode("latin-1"))
    assert "AAA.csv line 3: byte 0xe9 is not UTF-8 text" in refusal(tmp_path)


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["crlf", "cr-only"])
def test_windows_and_classic_mac_line_endings_read_the_same_bars(tmp_path, ending):
    write(tmp_path, "AAA.csv", ("\ufeff" + ending.join([YAHOO_HEADER, *ROWS]) + ending).encode())
    bars = FileBarSource(tmp_path).bars([date(2024, 3, 4), date(2024, 3, 5)])
    assert bars.select("close", "volume").rows() == [(10.5, 1000.0), (11.0, 1200.0)]


def test_a_lone_carriage_return_among_newlines_is_ambiguous_and_refused(tmp_path):
    write(tmp_path, "AAA.csv", YAHOO_HEADER + "\n" + ROWS[0] + "\r" + ROWS[1] + "\n")
    assert "AAA.csv line 2: ends with a lone carriage return" in refusal(tmp_path)


# ---------------------------------------------------------------- symbols

HOSTILE = ["../../etc/passwd", "A" * 10_000, "X'); DROP TABLE bars;--", "AA\x00PL", "aapl", "A B", "1ABC"]


@pytest.mark.parametrize("symbol", HOSTILE, ids=["path", "long", "sql", "nul", "lower", "space", "digit"])
def test_a_symbol_column_value_outside_the_pattern_is_refused(tmp_path, symbol):
    pl.DataFrame({"date": ["2024-03-04", "2024-03-04"], "symbol": ["GOOD", symbol], "open": [1.0, 1.0],
                  "high": [1.0, 1.0], "low": [1.0, 1.0], "close": [1.0, 1.0], "volume": [1.0, 1.0]}
                 ).write_parquet(tmp_path / "bulk.parquet")
    message = refusal(tmp_path)
    assert "bulk.parquet row 2: symbol" in message
    assert "GOOD" not in message
    assert len(message) < 2_000  # a 10,000-character symbol is shown cut short


@pytest.mark.parametrize("stem", ["lower", "A B", "X'); DROP TABLE bars;--", "A" * 40])
def test_a_file_name_used_as_symbol_is_checked_too(tmp_path, stem):
    write(tmp_path, f"{stem}.csv", "\n".join([YAHOO_HEADER, *ROWS]) + "\n")
    message = refusal(tmp_path)
    assert "there is no symbol column, so the file name is the symbol" in message
    assert "rename the file or add a symbol column" in message


def test_the_symbol_pattern_is_a_setting(tmp_path):
    write(tmp_path, "bulk.csv", "date,symbol,open,high,low,close,volume\n2024-03-04,btc-usd,1,1,1,1,1\n")
    assert "does not match the symbol pattern" in refusal(tmp_path)
    bars = FileBarSource(tmp_path, symbol_pattern=r"^[a-z]+-[a-z]+$").bars([date(2024, 3, 4)])
    assert bars["symbol"].to_list() == ["btc-usd"]
    # ... but no pattern lets a path or a quote through
    write(tmp_path, "bulk.csv", "date,symbol,open,high,low,close,volume\n2024-03-04,../x,1,1,1,1,1\n")
    assert "is not a ticker" in refusal(tmp_path, symbol_pattern=r"^.*$")
    with pytest.raises(MarketDataError, match="TRADING_SYMBOL_PATTERN"):
        FileBarSource(tmp_path, symbol_pattern="([")
    assert DEFAULT_SYMBOL_PATTERN == r"^[A-Z][A-Z0-9.\-]{0,14}$"


# ---------------------------------------------------------------- gaps and real files


def trim_as_published(source: Path, folder: Path, first: date, last: date) -> Path:
    """Copy source's header and the bytes of its rows dated first..last, untouched, into folder."""
    header, *rows = source.read_bytes().splitlines(keepends=True)
    kept = [row for row in rows if first.isoformat().encode() <= row[:10] <= last.isoformat().encode()]
    folder.mkdir(exist_ok=True)
    (folder / source.name).write_bytes(b"".join([header, *kept]))
    return folder


def test_stocknet_files_load_as_published_with_their_null_rows_as_gaps(tmp_path, stocknet_dir):
    # AAPL: plain Yahoo-style; PTR and REX: the real null row of 2016-06-29; BRK-A: a hyphen;
    # GMRE: a late starter (first row 2016-06-30)
    folder = tmp_path / "stocknet"
    for symbol in ("AAPL", "BRK-A", "GMRE", "PTR", "REX"):
        trim_as_published(stocknet_dir / f"{symbol}.csv", folder, date(2016, 6, 1), date(2016, 8, 31))
    source = FileBarSource(folder)
    assert source.symbols() == ["AAPL", "BRK-A", "GMRE", "PTR", "REX"]
    gaps = source.gaps()
    assert gaps.select("file", "line", "session", "symbol").rows() == [
        ("PTR.csv", 22, date(2016, 6, 29), "PTR"), ("REX.csv", 22, date(2016, 6, 29), "REX")]
    that_day = source.bars([date(2016, 6, 29)])
    assert that_day["symbol"].to_list() == ["AAPL", "BRK-A"]  # GMRE starts the next day
    aapl = source.bars([date(2016, 6, 1)]).row(0, named=True)
    assert (aapl["open"], aapl["close"], aapl["adj_close"]) == (99.019997, 98.459999, 96.232025)  # as written


def test_only_a_row_with_no_values_is_a_gap(tmp_path):
    write(tmp_path, "AAA.csv", "\n".join([YAHOO_HEADER, ROWS[0], "2024-03-05,null,null,null,null,null,null",
                                          "2024-03-06,,,,,,"]) + "\n")
    write(tmp_path, "BBB.csv", "\n".join([YAHOO_HEADER, ROWS[0], "2024-03-05,10.5,null,10.0,11.0,10.9,1200"]) + "\n")
    write(tmp_path, "CCC.csv", "\n".join([YAHOO_HEADER, "2024-03-09,null,null,null,null,null,null"]) + "\n")
    message = refusal(tmp_path)
    assert "BBB.csv line 3: high 'null' is not a number" in message
    assert "CCC.csv line 2: date 2024-03-09 (Saturday) is not an XNYS trading session" in message
    assert "AAA.csv" not in message
    (tmp_path / "BBB.csv").unlink()
    (tmp_path / "CCC.csv").unlink()
    source = FileBarSource(tmp_path)
    assert source.gaps()["session"].to_list() == [date(2024, 3, 5), date(2024, 3, 6)]
    assert source.sessions() == [date(2024, 3, 4)]


def test_rows_before_2000_load(tmp_path):
    write(tmp_path, "IBM.csv", "\n".join([YAHOO_HEADER, "1999-11-18,10,11,9,10.5,10.4,1000",
                                          "1999-11-19,10,11,9,10.5,10.4,1000"]) + "\n")
    assert FileBarSource(tmp_path).sessions() == [date(1999, 11, 18), date(1999, 11, 19)]


def test_the_summary_says_how_many_files_and_rows_each_problem_touches(tmp_path):
    for number in range(12):
        rows = [f"2024-03-{day:02d},10,9,11,10,10,100" for day in (4, 5, 6)]  # high below low, 3 rows
        write(tmp_path, f"S{number}.csv", "\n".join([YAHOO_HEADER, *rows, "2024-03-09,10,11,9,10,10,100"]) + "\n")
    message = refusal(tmp_path)
    assert "(48 problems)" in message
    assert "* 36 rows in 12 files: high (<n>) is below low (<n>) (first: S0.csv line 2:" in message
    assert "* 12 rows in 12 files: date <date> is not an XNYS trading session" in message
