"""Bars from a folder of CSV and/or Parquet files.

The folder holds `*.csv` and/or `*.parquet` files (any names, top level only; one file per
symbol or many symbols per file) with these columns, names in any case, others ignored:

    date       YYYY-MM-DD, an XNYS trading session
    symbol     ticker
    open, high, low, close    positive prices, low <= open, close <= high
    volume     shares, not negative
    adj_close  optional: adjusted close; where absent or empty, close is used
    sector     optional: the symbol's sector; "unknown" where absent

Every file is read and validated on first use (then cached for the life of the instance), and
nothing is returned unless everything is valid. Errors name the file and the 1-based line
(CSV: the header is line 1, the first bar line 2) or row (Parquet: the first bar is row 1).
Rule: every date must be an XNYS session. Rows for weekends or market holidays are an error,
not silently dropped, because they usually mean the data is from another calendar or shifted.
A (date, symbol) pair may appear only once across all files.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.domain.market.bars import (
    MAX_REPORTED_PROBLEMS,
    BarValidationError,
    MarketDataError,
    as_date,
    check_parsed_bars,
    empty_bars,
    parse_bar_columns,
)

EXPECTED_CONTENT = (
    "It should contain *.csv and/or *.parquet files with the columns date (YYYY-MM-DD, XNYS "
    "sessions only), symbol, open, high, low, close, volume and optionally adj_close and sector "
    "(column names in any case)."
)
_READ_COLUMNS = {"date", "session", "symbol", "open", "high", "low", "close", "volume", "adj_close", "sector"}
_FILE = "__file__"  # "<file name> line " or "<file name> row "
_ROW_NUMBER = "__row_number__"
UNKNOWN_SECTOR = "unknown"


class FileBarSource:
    """A MarketDataSource over a folder of bar files; see the module docstring for the format."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._bars: pl.DataFrame | None = None
        self._sectors: pl.DataFrame | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileBarSource({str(self.path)!r})"

    def load(self) -> pl.DataFrame:
        """Every bar in the folder, validated (read once; later calls use the cache)."""
        with self._lock:
            if self._bars is None:
                self._bars, self._sectors = _load_folder(self.path)
            return self._bars

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        wanted = sorted({as_date(s) for s in sessions})
        if not wanted:
            return empty_bars()
        return self.load().filter(pl.col("session").is_in(wanted))

    def symbols(self) -> list[str]:
        return self.load()["symbol"].unique().sort().to_list()

    def sectors(self) -> pl.DataFrame:
        self.load()
        return self._sectors

    def sessions(self) -> list[date]:
        """The sessions that have at least one bar, oldest first."""
        return self.load()["session"].unique().sort().to_list()


def _load_folder(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse every file, then check all rows at once (one pass, and duplicates across files)."""
    problems: list[str] = []
    parsed: list[pl.DataFrame] = []
    sectors: list[pl.DataFrame] = []
    for file in _bar_files(folder):
        try:
            raw, row_numbers, row_word = _read(file)
            bars = parse_bar_columns(raw, str(file))
        except BarValidationError as error:  # unreadable, or a column is missing
            problems += [f"{file.name} {problem}" for problem in error.problems]
            continue
        where = pl.lit(f"{file.name} {row_word} ", dtype=pl.String).alias(_FILE)
        parsed.append(bars.with_columns(where, row_numbers.alias(_ROW_NUMBER)))
        sectors.append(_sectors_of(raw))
    if problems:
        raise BarValidationError(str(folder), problems[:MAX_REPORTED_PROBLEMS], len(problems))
    label = pl.format("{}{}", pl.col(_FILE), pl.col(_ROW_NUMBER))
    bars = check_parsed_bars(pl.concat(parsed), str(folder), label)
    return bars, _sector_table(bars, sectors)


def _bar_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MarketDataError(f"market data folder {folder} {what}. {EXPECTED_CONTENT}")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (".csv", ".parquet") and not p.name.startswith(".")
    )
    if not files:
        raise MarketDataError(f"market data folder {folder} has no bar files. {EXPECTED_CONTENT}")
    return files


def _read(file: Path) -> tuple[pl.DataFrame, pl.Series, str]:
    """The file's bar columns as stored (CSV: all text), each row's 1-based number, and the
    word for a row ("line" or "row"). A file that cannot be read is a BarValidationError."""
    is_csv = file.suffix.lower() == ".csv"
    kind = "CSV" if is_csv else "Parquet"
    try:
        # Scanning reads only the columns we use: bar files often carry many more.
        scan = pl.scan_csv(file, infer_schema=False) if is_csv else pl.scan_parquet(file)
        wanted = [name for name in scan.collect_schema().names() if name.strip().lower() in _READ_COLUMNS]
        frame = scan.select(wanted).collect()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise BarValidationError(str(file), [f"could not be read as {kind}: {error}"]) from error
    # CSV: the header is line 1, so the first bar is line 2; Parquet rows count from 1.
    numbers = pl.int_range(frame.height, dtype=pl.Int64, eager=True) + (2 if is_csv else 1)
    if is_csv and frame.width:
        # A blank line reads as a row of nulls: skip it but keep the other lines' numbers.
        filled = ~pl.all_horizontal(pl.all().is_null())
        keep = frame.select(filled).to_series()
        frame, numbers = frame.filter(keep), numbers.filter(keep)
    return frame, numbers, "line" if is_csv else "row"


def _sectors_of(raw: pl.DataFrame) -> pl.DataFrame:
    names = {name.strip().lower(): name for name in raw.columns}
    if "sector" not in names:
        return pl.DataFrame(schema={"symbol": pl.String, "sector": pl.String})
    return raw.select(
        pl.col(names["symbol"]).cast(pl.String).str.strip_chars().alias("symbol"),
        pl.col(names["sector"]).cast(pl.String).str.strip_chars().alias("sector"),
    ).filter(pl.col("sector").is_not_null() & (pl.col("sector") != ""))


def _sector_table(bars: pl.DataFrame, sectors: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per symbol; the first sector the files give for it, else "unknown"."""
    known = pl.concat(sectors).unique("symbol", keep="first", maintain_order=True)
    symbols = bars.select(pl.col("symbol").unique().sort())
    return symbols.join(known, on="symbol", how="left").with_columns(
        pl.col("sector").fill_null(UNKNOWN_SECTOR)
    )
