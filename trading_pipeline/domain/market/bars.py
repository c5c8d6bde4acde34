"""The bar frame every market data source returns, and the one validator that guards it.

A bar frame has exactly `BAR_SCHEMA`: one row per (session, symbol), sorted by session then
symbol, where every session is an XNYS trading session. `adj_close` equals `close` where a
source has no adjusted prices.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import polars as pl

from trading_pipeline.domain.calendar import cover
from trading_pipeline.domain.market.bar_checks import canonical_columns, parse, raw, sort_and_check

BAR_SCHEMA: dict[str, pl.DataType] = {
    "session": pl.Date(),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "adj_close": pl.Float64(),
}
MAX_REPORTED_PROBLEMS = 10
# Problems read to summarise them by kind; beyond this the summary counts a sample.
MAX_SUMMARISED_PROBLEMS = 200_000


@runtime_checkable
class MarketDataSource(Protocol):
    """Where bars come from: the synthetic market, a folder of files, a broker feed."""

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        """BAR_SCHEMA rows for these sessions; a session without data has no rows."""
        ...

    def symbols(self) -> list[str]:
        """Every symbol the source knows, sorted."""
        ...

    def sectors(self) -> pl.DataFrame:
        """Columns symbol, sector (String); sector is "unknown" where the source has none."""
        ...


class MarketDataError(ValueError):
    """Market data that cannot be used: a missing folder, unreadable or invalid files."""


class BarValidationError(MarketDataError):
    """Bars that break the bar rules. `problems` lists the first ones as "where: what";
    `summary` says, per kind of problem, how many rows and files it touches."""

    def __init__(self, source: str, problems: Sequence[str], total: int | None = None,
                 summary: Sequence[str] = ()):
        self.source = source
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        self.summary = list(summary)
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = self.total - len(shown)
        lines = [f"invalid bars in {source} ({self.total} problem{'s' * (self.total != 1)}):"]
        if self.summary and self.total > 1:
            lines += ["  by kind of problem:", *(f"  * {line}" for line in self.summary), "  first problems:"]
        lines += [f"  - {problem}" for problem in shown]
        if more > 0:
            lines.append(f"  ... and {more} more")
        lines.append("Fix the data (or remove the rows) and load it again; nothing was loaded.")
        super().__init__("\n".join(lines))


# A problem reads "<where>: <what>"; <where> is "<file> line N" or "<file> row N" for files.
_FILE_WHERE = re.compile(r"^(?P<file>.+) (?:line|row) \d+$")
_VALUES = (
    (re.compile(r" \(already on .*$"), ""),  # which earlier row a duplicate repeats
    (re.compile(r"'[^']*'"), "'…'"),
    (re.compile(r"\d{4}-\d{2}-\d{2}( \([A-Z][a-z]+day\))?"), "<date>"),
    (re.compile(r"symbol \S+"), "symbol <symbol>"),
    (re.compile(r"-?\d[\d.,e+-]*"), "<n>"),
)


def problem_kind(what: str) -> str:
    """A problem's text with its values masked, so problems of one kind group together."""
    for pattern, mask in _VALUES:
        what = pattern.sub(mask, what)
    return what


def summarise_problems(problems: Sequence[str], limit: int = MAX_REPORTED_PROBLEMS) -> list[str]:
    """One line per kind of problem (most rows first): how many rows and files it touches and
    where it first occurs."""
    kinds: dict[str, tuple[int, set[str], str]] = {}
    for problem in problems:
        where, _, what = problem.partition(": ")
        in_file = _FILE_WHERE.match(where)
        file = in_file["file"] if in_file else where if where.lower().endswith((".csv", ".parquet")) else None
        rows, files, first = kinds.get(problem_kind(what), (0, set(), problem))
        if file:
            files.add(file)
        kinds[problem_kind(what)] = (rows + 1, files, first)
    ranked = sorted(kinds.items(), key=lambda item: -item[1][0])
    lines = []
    for kind, (rows, files, first) in ranked[:limit]:
        in_files = f" in {len(files):,} file{'s' * (len(files) != 1)}" if files else ""
        lines.append(f"{rows:,} row{'s' * (rows != 1)}{in_files}: {kind} (first: {first})")
    if len(ranked) > limit:
        lines.append(f"... and {len(ranked) - limit} more kinds")
    return lines


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def as_date(value: date) -> date:
    """A session given as a date, datetime or pandas Timestamp, as a plain date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"sessions must be dates, got {value!r} ({type(value).__name__})")


def validate_bars(
    frame: pl.DataFrame,
    source: str,
    *,
    row_numbers: Sequence[int] | pl.Series | None = None,
    row_word: str = "line",
) -> pl.DataFrame:
    """Return `frame` cast to BAR_SCHEMA and sorted, or raise BarValidationError.

    Column names are matched case-insensitively; `date` is accepted for `session`; extra
    columns are dropped; a missing or empty `adj_close` becomes `close`. Text columns are
    parsed (dates as YYYY-MM-DD). Problems are named by row: with `row_numbers` (one per row,
    e.g. a file's 1-based line numbers) a row is "<row_word> <number>", otherwise it is named
    by its session and symbol. Every session must be an XNYS session.
    """
    parsed = parse_bar_columns(frame, source)
    if row_numbers is None:
        label = pl.format(
            "session {} symbol {}",
            pl.col("session").cast(pl.String).fill_null(pl.col(raw("session"))).fill_null("?"),
            pl.col("symbol").fill_null("?"),
        )
    else:
        numbers = pl.Series("__row_number__", row_numbers, dtype=pl.Int64)
        if numbers.len() != frame.height:
            raise ValueError(f"row_numbers has {numbers.len()} entries for {frame.height} rows")
        parsed = parsed.with_columns(numbers)
        label = pl.format(f"{row_word} {{}}", pl.col("__row_number__"))
    return check_parsed_bars(parsed, source, label)


def parse_bar_columns(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """The bar columns of `frame` under canonical names and types (unparseable values null),
    for `check_parsed_bars`; raises BarValidationError if a required column is missing."""
    canonical, missing = canonical_columns(frame)
    if missing:
        names = ", ".join("'date' (or 'session')" if c == "session" else f"'{c}'" for c in missing)
        raise BarValidationError(
            source, [f"missing column{'s' * (len(missing) > 1)} {names}; found {frame.columns}"]
        )
    return parse(canonical)


def check_parsed_bars(parsed: pl.DataFrame, source: str, label: pl.Expr, keep: Sequence[str] = ()) -> pl.DataFrame:
    """Parsed bars (possibly several inputs stacked) as a BAR_SCHEMA frame (plus the `keep`
    columns), or BarValidationError naming each bad row with `label` (an expression over the
    parsed frame's columns)."""
    first_day = parsed["session"].min()
    if first_day is not None:
        cover(first_day)  # the calendar reaches back as far as the data does
    ordered, found, total = sort_and_check(parsed, label, MAX_SUMMARISED_PROBLEMS)
    if total:
        raise BarValidationError(source, found[:MAX_REPORTED_PROBLEMS], total, summarise_problems(found))
    close = pl.col("close")
    return ordered.select(
        *(c for c in BAR_SCHEMA if c != "adj_close"), pl.col("adj_close").fill_null(close), *keep
    )
