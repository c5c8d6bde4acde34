"""Bars from a folder of CSV and/or Parquet files.

The folder holds `*.csv` and/or `*.parquet` files (any names, top level only; one file per
symbol or many symbols per file) with these columns, others ignored:

    date       YYYY-MM-DD, an XNYS trading session (`session` also accepted)
    symbol     ticker (`ticker` also accepted); without it the file name is the symbol
    open, high, low, close    positive prices, low <= open, close <= high
    volume     shares, not negative
    adj_close  optional: adjusted close; where absent or empty, close is used
    sector     optional: the symbol's sector; "unknown" where absent

Header names match in any case, with spaces, underscores or hyphens between words alike
(`Adj Close`, `adj_close`, `ADJ-CLOSE`, `AdjClose`). Two columns that mean the same thing are
refused. Symbols, from a column or a file name, must match the symbol pattern (a setting;
DEFAULT_SYMBOL_PATTERN) and never hold a path separator, quote, control character or `..`,
whatever the pattern allows: they end up in SQL parameters, file names and client order ids.

CSV files are UTF-8 (a byte-order mark is fine) with `\\n`, `\\r\\n` or (old Mac) `\\r` line
endings; NUL or undecodable bytes, a mix of lone `\\r` with other line endings, a header without
bars and a row with more fields than the header are refused with the file and line.

A row with a date and no values at all (Yahoo writes `null` in every column when a symbol did
not trade or the vendor lost the day) is a gap, not an error: the symbol has no bar that
session, and the gap is recorded (`gaps()`). A row with only some values missing is an error.

Errors name the file and the 1-based line (CSV: the header is line 1, the first bar line 2) or
row (Parquet: the first bar is row 1). Every date must be an XNYS session: rows for weekends or
market holidays are an error, not silently dropped, because they usually mean the data is from
another calendar or shifted. A (date, symbol) pair may appear only once across all files.

Loading is incremental: a `BarFileStore` keeps each file's validated bars with its size and
modification time, and a later load re-reads only the files that changed, appeared or went
away. Nothing is stored unless every file read is valid.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import polars as pl

from trading_pipeline.domain.calendar import cover, sessions_between
from trading_pipeline.domain.market.bars import (
    BAR_SCHEMA,
    MAX_REPORTED_PROBLEMS,
    BarValidationError,
    MarketDataError,
    as_date,
    check_parsed_bars,
    empty_bars,
    summarise_problems,
)
from trading_pipeline.domain.market.bar_checks import parse

DEFAULT_SYMBOL_PATTERN = r"^[A-Z][A-Z0-9.\-]{0,14}$"
MAX_SYMBOL_LENGTH = 32
# Refused whatever the pattern says: what could make a symbol a path, a quote or a command.
_NEVER_IN_SYMBOL = re.compile(r"[\x00-\x20\x7f/\\'\";`]|\.\.")
EXPECTED_CONTENT = (
    "It should contain *.csv and/or *.parquet files with the columns date (YYYY-MM-DD, XNYS "
    "sessions only), symbol, open, high, low, close, volume and optionally adj_close and sector "
    "(column names in any case); without a symbol column the file name is the symbol."
)
UNKNOWN_SECTOR = "unknown"
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "adj_close")
REQUIRED_COLUMNS = ("session", "open", "high", "low", "close", "volume")
# Header spellings, once lower-cased with runs of spaces, underscores and hyphens made "_".
_HEADER_NAMES = {
    "date": "session", "session": "session", "symbol": "symbol", "ticker": "symbol",
    "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
    "adj_close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close", "sector": "sector",
}
_NULL_TOKENS = ("", "null", "none", "n/a", "na")  # as written by Yahoo, pandas and spreadsheets
GAP_SCHEMA = {"file": pl.String, "line": pl.Int64, "session": pl.Date, "symbol": pl.String, "reason": pl.String}
# Stored bars carry where they came from, to name the earlier row of a duplicate.
SOURCE_ROW_SCHEMA = {**BAR_SCHEMA, "file": pl.String, "line": pl.Int64}
SECTOR_SCHEMA = {"file": pl.String, "symbol": pl.String, "sector": pl.String}
_FILE = "file"
_LINE = "line"
_LABEL_PREFIX = "__where__"  # "<file name> line " or "<file name> row "


def header_name(name: str) -> str | None:
    """The bar column a header spelling means (`Adj Close` -> adj_close), or None."""
    key = re.sub(r"[\s_\-]+", "_", name.strip().lower()).strip("_")
    return _HEADER_NAMES.get(key) or _HEADER_NAMES.get(key.replace("_", ""))


def symbol_problem(symbol: str, pattern: re.Pattern[str]) -> str | None:
    """Why `symbol` cannot be used as a symbol, or None when it can."""
    shown = repr(symbol) if len(symbol) <= 40 else f"{symbol[:20]!r}... ({len(symbol):,} characters)"
    if len(symbol) > MAX_SYMBOL_LENGTH or _NEVER_IN_SYMBOL.search(symbol):
        return (f"symbol {shown} is not a ticker: symbols hold no spaces, quotes, slashes, control "
                f"characters or '..', and at most {MAX_SYMBOL_LENGTH} characters")
    if not pattern.fullmatch(symbol):
        return f"symbol {shown} does not match the symbol pattern {pattern.pattern} (TRADING_SYMBOL_PATTERN)"
    return None


def compile_symbol_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise MarketDataError(f"the symbol pattern {pattern!r} is not a regular expression: {error}; "
                              f"fix TRADING_SYMBOL_PATTERN (default {DEFAULT_SYMBOL_PATTERN})") from None


@dataclass(frozen=True)
class FileStamp:
    """What tells a file changed without reading it."""

    name: str
    size: int
    modified_ns: int


@dataclass(frozen=True)
class FileBatch:
    """Validated content of the files read in one load, ready to store."""

    stamps: tuple[FileStamp, ...]
    bars: pl.DataFrame  # SOURCE_ROW_SCHEMA
    gaps: pl.DataFrame  # GAP_SCHEMA
    sectors: pl.DataFrame  # SECTOR_SCHEMA


@dataclass(frozen=True)
class LoadReport:
    """What a load did: how many files it read, kept, dropped, and what they held."""

    files: int
    files_read: int
    files_unchanged: int
    files_removed: int
    rows_read: int
    gaps_read: int
    seconds: float


class BarFileStore(Protocol):
    """Where a folder's validated bars are kept between loads (in memory, or the warehouse)."""

    def file_stamps(self, folder: str) -> dict[str, FileStamp]:
        """The stamps of the files stored for `folder` (empty for another folder)."""
        ...

    def stored_rows(self, symbols: Sequence[str], excluding_files: Sequence[str]) -> pl.DataFrame:
        """SOURCE_ROW_SCHEMA rows of `symbols` from stored files not in `excluding_files`."""
        ...

    def replace_files(self, folder: str, removed: Sequence[str], batch: FileBatch) -> None:
        """In one step: forget `removed`, the batch's files and any other folder; store the batch."""
        ...

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame: ...

    def sessions(self) -> list[date]: ...

    def symbols(self) -> list[str]: ...

    def sectors(self) -> pl.DataFrame: ...

    def gaps(self) -> pl.DataFrame: ...


class MemoryBarFileStore:
    """A BarFileStore for the life of one process."""

    def __init__(self) -> None:
        self._folder: str | None = None
        self._stamps: dict[str, FileStamp] = {}
        self._bars = pl.DataFrame(schema=SOURCE_ROW_SCHEMA)
        self._gaps = pl.DataFrame(schema=GAP_SCHEMA)
        self._sectors = pl.DataFrame(schema=SECTOR_SCHEMA)

    def file_stamps(self, folder: str) -> dict[str, FileStamp]:
        return dict(self._stamps) if folder == self._folder else {}

    def stored_rows(self, symbols: Sequence[str], excluding_files: Sequence[str]) -> pl.DataFrame:
        return self._bars.filter(pl.col("symbol").is_in(list(symbols)) & ~pl.col(_FILE).is_in(list(excluding_files)))

    def replace_files(self, folder: str, removed: Sequence[str], batch: FileBatch) -> None:
        if folder != self._folder:
            self.__init__()
            self._folder = folder
        gone = [*removed, *(s.name for s in batch.stamps)]
        keep = ~pl.col(_FILE).is_in(gone)
        self._bars = pl.concat([self._bars.filter(keep), batch.bars]).sort("session", "symbol")
        self._gaps = pl.concat([self._gaps.filter(keep), batch.gaps])
        self._sectors = pl.concat([self._sectors.filter(keep), batch.sectors])
        for name in gone:
            self._stamps.pop(name, None)
        self._stamps.update({s.name: s for s in batch.stamps})

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        return self._bars.filter(pl.col("session").is_in(list(sessions))).select(list(BAR_SCHEMA))

    def sessions(self) -> list[date]:
        return self._bars["session"].unique().sort().to_list()

    def symbols(self) -> list[str]:
        return self._bars["symbol"].unique().sort().to_list()

    def sectors(self) -> pl.DataFrame:
        return sector_table(self.symbols(), self._sectors)

    def gaps(self) -> pl.DataFrame:
        return self._gaps.sort("session", "symbol")


def sector_table(symbols: Sequence[str], sectors: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol; the first sector the files (by name) give for it, else "unknown"."""
    known = sectors.sort(_FILE, maintain_order=True).unique("symbol", keep="first", maintain_order=True)
    return (
        pl.DataFrame({"symbol": sorted(symbols)}, schema={"symbol": pl.String})
        .join(known.select("symbol", "sector"), on="symbol", how="left")
        .with_columns(pl.col("sector").fill_null(UNKNOWN_SECTOR))
    )


class FileBarSource:
    """A MarketDataSource over a folder of bar files; see the module docstring for the format.

    The folder is checked for changes on first use (then the answer holds for the life of the
    instance, a run); `refresh()` checks again."""

    def __init__(self, path: str | Path, *, symbol_pattern: str = DEFAULT_SYMBOL_PATTERN,
                 store: BarFileStore | None = None):
        self.path = Path(path)
        self.symbol_pattern = compile_symbol_pattern(symbol_pattern)
        self._store = store if store is not None else MemoryBarFileStore()
        self._report: LoadReport | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileBarSource({str(self.path)!r})"

    def load(self) -> LoadReport:
        """Bring the store up to date with the folder (once per instance)."""
        with self._lock:
            if self._report is None:
                self._report = _refresh(self.path, self.symbol_pattern, self._store)
            return self._report

    def refresh(self) -> LoadReport:
        with self._lock:
            self._report = None
        return self.load()

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        wanted = sorted({as_date(s) for s in sessions})
        if not wanted:
            return empty_bars()
        self.load()
        return self._store.bars(wanted)

    def symbols(self) -> list[str]:
        self.load()
        return self._store.symbols()

    def sectors(self) -> pl.DataFrame:
        self.load()
        return self._store.sectors()

    def sessions(self) -> list[date]:
        """The sessions that have at least one bar, oldest first."""
        self.load()
        return self._store.sessions()

    def gaps(self) -> pl.DataFrame:
        """GAP_SCHEMA: rows with a date and no values (a symbol without a bar that session)."""
        self.load()
        return self._store.gaps()


# ---------------------------------------------------------------- loading


def _refresh(folder: Path, pattern: re.Pattern[str], store: BarFileStore) -> LoadReport:
    started = time.perf_counter()
    current = _bar_files(folder)
    key = str(folder.resolve())
    stored = store.file_stamps(key)
    changed = [stamp for stamp in current.values() if stored.get(stamp.name) != stamp]
    removed = sorted(set(stored) - set(current))
    if changed or removed:
        batch = _read_files(folder, changed, pattern, store, excluding=[*removed, *(s.name for s in changed)])
        store.replace_files(key, removed, batch)
        rows, gaps = batch.bars.height, batch.gaps.height
    else:
        rows = gaps = 0
    return LoadReport(files=len(current), files_read=len(changed), files_unchanged=len(current) - len(changed),
                      files_removed=len(removed), rows_read=rows, gaps_read=gaps,
                      seconds=time.perf_counter() - started)


def _bar_files(folder: Path) -> dict[str, FileStamp]:
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MarketDataError(f"market data folder {folder} {what}. {EXPECTED_CONTENT}")
    stamps = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in (".csv", ".parquet") and not entry.name.startswith(".") and entry.is_file():
                stat = entry.stat()
                stamps[entry.name] = FileStamp(entry.name, stat.st_size, stat.st_mtime_ns)
    if not stamps:
        raise MarketDataError(f"market data folder {folder} has no bar files. {EXPECTED_CONTENT}")
    return dict(sorted(stamps.items()))


class _FileProblem(Exception):
    """A file that cannot be read as bars at all; `where` is "line N", "row N" or ""."""

    def __init__(self, where: str, what: str):
        super().__init__(what)
        self.where, self.what = where, what


@dataclass(frozen=True)
class _RawFile:
    frame: pl.DataFrame  # canonical column names, values as stored (CSV: all text)
    numbers: pl.Series  # each row's 1-based line (CSV) or row (Parquet) number
    row_word: str


def _read_files(folder: Path, stamps: Sequence[FileStamp], pattern: re.Pattern[str], store: BarFileStore,
                excluding: Sequence[str]) -> FileBatch:
    """Read, parse and validate `stamps`' files; raise BarValidationError naming every problem."""
    if not stamps:  # files only went away
        return FileBatch((), pl.DataFrame(schema=SOURCE_ROW_SCHEMA), pl.DataFrame(schema=GAP_SCHEMA),
                         pl.DataFrame(schema=SECTOR_SCHEMA))
    problems: list[str] = []
    parsed: list[pl.DataFrame] = []
    gaps: list[pl.DataFrame] = []
    sectors: list[pl.DataFrame] = []
    for stamp in stamps:
        try:
            raw = _read(folder / stamp.name)
        except _FileProblem as problem:
            problems.append(f"{stamp.name}{' ' + problem.where if problem.where else ''}: {problem.what}")
            continue
        frame = _with_symbol(raw.frame, stamp.name, pattern, problems)
        if frame is None:
            continue
        frame = frame.with_columns(raw.numbers.alias(_LINE), pl.lit(stamp.name, dtype=pl.String).alias(_FILE))
        bars, file_gaps = _split_gaps(frame)
        gaps.append(file_gaps)
        labelled = parse(bars.drop("sector", strict=False)).with_columns(
            pl.lit(f"{stamp.name} {raw.row_word} ", dtype=pl.String).alias(_LABEL_PREFIX))
        parsed.append(labelled)
        if "sector" in frame.columns:
            sectors.append(_sectors_of(frame))
    if problems:
        raise BarValidationError(str(folder), problems[:MAX_REPORTED_PROBLEMS], len(problems),
                                 summarise_problems(problems))
    new = pl.concat(parsed, how="diagonal_relaxed")
    # Bars already stored for these symbols from other files: only to find duplicates.
    context = store.stored_rows(new["symbol"].drop_nulls().unique().to_list(), excluding)
    context = parse(context).with_columns(
        pl.concat_str(pl.col(_FILE), pl.lit(" line ")).alias(_LABEL_PREFIX))
    label = pl.format("{}{}", pl.col(_LABEL_PREFIX), pl.col(_LINE))
    checked = check_parsed_bars(pl.concat([context, new], how="diagonal_relaxed"), str(folder), label,
                                keep=(_FILE, _LINE))
    fresh = {s.name for s in stamps}
    return FileBatch(
        stamps=tuple(stamps),
        bars=checked.filter(pl.col(_FILE).is_in(list(fresh))).select(list(SOURCE_ROW_SCHEMA)),
        gaps=pl.concat(gaps).select(list(GAP_SCHEMA)) if gaps else pl.DataFrame(schema=GAP_SCHEMA),
        sectors=pl.concat(sectors) if sectors else pl.DataFrame(schema=SECTOR_SCHEMA),
    )


def _read(file: Path) -> _RawFile:
    if file.suffix.lower() == ".csv":
        return _read_csv(file)
    return _read_parquet(file)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_csv(file: Path) -> _RawFile:
    try:
        data = file.read_bytes()
    except OSError as error:
        raise _FileProblem("", f"could not be read: {error.strerror or error}") from None
    data = _checked_text(data)
    header_end = data.find(b"\n")
    header_line = (data if header_end < 0 else data[:header_end]).decode("utf-8").rstrip("\r")
    names = next(csv.reader([header_line]), [])
    columns = _canonical(names, "line 1")
    if header_end < 0 or not data[header_end + 1:].strip():
        raise _FileProblem("line 1", "has a header and no bars: add its bars or remove the file")
    try:
        positions = sorted(columns.values())  # polars returns selected columns in file order
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, columns=positions)
    except pl.exceptions.PolarsError as error:
        raise _FileProblem(*_csv_failure(data, len(names), error)) from None
    by_position = {position: column for column, position in columns.items()}
    frame.columns = [by_position[p] for p in positions]
    # The header is line 1, so the first bar is line 2.
    numbers = pl.int_range(frame.height, dtype=pl.Int64, eager=True) + 2
    # A blank line reads as a row of nulls: skip it but keep the other lines' numbers.
    filled = frame.select(~pl.all_horizontal(pl.all().is_null())).to_series()
    frame, numbers = frame.filter(filled), numbers.filter(filled)
    if frame.is_empty():
        raise _FileProblem("line 1", "has a header and no bars: add its bars or remove the file")
    return _RawFile(frame, numbers, "line")


def _checked_text(data: bytes) -> bytes:
    """`data` as UTF-8 text with `\\n` or `\\r\\n` line endings, or a _FileProblem saying where not."""
    if not data.strip():
        raise _FileProblem("", "is empty: it needs a header line and at least one bar")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _FileProblem("line 1", "is UTF-16 text: save it as UTF-8 (or plain ASCII) CSV")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _FileProblem(f"line {_line_of(data, nul)}",
                           "holds a NUL byte: the file is binary, UTF-16 or damaged; save it as UTF-8 CSV")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _FileProblem(f"line {_line_of(data, error.start)}",
                           f"byte 0x{data[error.start]:02x} is not UTF-8 text: save the file as UTF-8") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\r" in data:
        if b"\n" not in data:
            return data.replace(b"\r", b"\n")  # classic Mac line endings: one kind, unambiguous
        lone = re.search(rb"\r(?!\n)", data)
        if lone:
            raise _FileProblem(
                f"line {_line_of(data, lone.start())}",
                "ends with a lone carriage return (\\r) while other lines end with \\n: the line "
                "breaks are ambiguous; save the file with one kind of line ending")
    return data


def _csv_failure(data: bytes, width: int, error: Exception) -> tuple[str, str]:
    """Where a CSV polars refused goes wrong: the first line with a field count unlike the header's."""
    text = data.decode("utf-8").splitlines()
    for number, fields in enumerate(csv.reader(text), start=1):
        if fields and len(fields) != width:
            return f"line {number}", f"has {len(fields)} fields where the header has {width}"
    return "", f"could not be read as CSV: {str(error).splitlines()[0]}"


def _canonical(names: Sequence[str], where: str) -> dict[str, int]:
    """Bar column -> its position, refusing two columns that mean the same column."""
    found: dict[str, int] = {}
    for position, name in enumerate(names):
        column = header_name(name)
        if column is None:
            continue
        if column in found:
            first = names[found[column]]
            raise _FileProblem(where, f"columns {first!r} and {name!r} both mean {column}: keep one of them")
        found[column] = position
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        shown = ", ".join("'date'" if c == "session" else f"'{c}'" for c in missing)
        raise _FileProblem(where, f"missing column{'s' * (len(missing) > 1)} {shown}; found {list(names)}")
    return found


def _read_parquet(file: Path) -> _RawFile:
    try:
        scan = pl.scan_parquet(file)
        names = scan.collect_schema().names()
        columns = _canonical(names, "")
        frame = scan.select(pl.col(names[i]).alias(c) for c, i in columns.items()).collect()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _FileProblem("", f"could not be read as Parquet: {str(error).splitlines()[0]}") from None
    if frame.is_empty():
        raise _FileProblem("", "has no rows: add its bars or remove the file")
    return _RawFile(frame, pl.int_range(frame.height, dtype=pl.Int64, eager=True) + 1, "row")


def _with_symbol(frame: pl.DataFrame, file: str, pattern: re.Pattern[str], problems: list[str]) -> pl.DataFrame | None:
    """`frame` with a checked symbol column: its own, or the file name's. Problems go to `problems`."""
    if "symbol" not in frame.columns:
        symbol = Path(file).stem
        problem = symbol_problem(symbol, pattern)
        if problem:
            problems.append(f"{file}: there is no symbol column, so the file name is the symbol, and {problem}: "
                            "rename the file or add a symbol column")
            return None
        return frame.with_columns(pl.lit(symbol, dtype=pl.String).alias("symbol"))
    symbols = frame["symbol"].cast(pl.String).str.strip_chars()
    bad = {s: p for s in symbols.drop_nulls().unique().to_list() if (p := symbol_problem(s, pattern))}
    if not bad:
        return frame.with_columns(symbols)
    row_word = "line" if file.lower().endswith(".csv") else "row"
    first = 2 if row_word == "line" else 1
    where = symbols.is_in(list(bad)).arg_true()
    for index in where.head(MAX_REPORTED_PROBLEMS * 10).to_list():
        problems.append(f"{file} {row_word} {index + first}: {bad[symbols[index]]}")
    return None


def _split_gaps(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with a session date and no values at all are gaps; the rest are bars to check.
    A valueless row on a day the exchange was closed stays a bar, to be refused as one."""
    schema = frame.schema
    empty = pl.all_horizontal(
        (pl.col(c).is_null() | pl.col(c).str.strip_chars().str.to_lowercase().is_in(_NULL_TOKENS))
        if schema[c] == pl.String else pl.col(c).is_null()
        for c in VALUE_COLUMNS if c in frame.columns
    )
    day = (pl.col("session").str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d", strict=False)
           if schema["session"] == pl.String else pl.col("session").cast(pl.Date, strict=False))
    days = frame.select(pl.when(empty).then(day)).to_series().drop_nulls()
    if days.is_empty():
        return frame, pl.DataFrame(schema=GAP_SCHEMA)
    cover(days.min())
    is_gap = frame.select((empty & day.is_in(sessions_between(days.min(), days.max()))).fill_null(False)).to_series()
    gaps = frame.filter(is_gap).select(
        pl.col(_FILE), pl.col(_LINE), day.alias("session"), pl.col("symbol").cast(pl.String),
        pl.lit("no values (a null row): the symbol has no bar that session", dtype=pl.String).alias("reason"),
    )
    return frame.filter(~is_gap), gaps


def _sectors_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col(_FILE),
        pl.col("symbol").cast(pl.String).str.strip_chars(),
        pl.col("sector").cast(pl.String).str.strip_chars(),
    ).filter(pl.col("sector").is_not_null() & (pl.col("sector") != "")).unique("symbol", keep="first",
                                                                              maintain_order=True)

