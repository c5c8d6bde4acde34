"""Parsing raw bar frames and finding what is wrong with their rows (behind `validate_bars`).

Checks run in two passes so valid data stays cheap at millions of rows: first only the
conditions over every row, then the messages for the (usually few) rows that have a problem.
Frames from several files can be parsed one by one and checked once, together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.calendar import known_range, sessions_between

PRICE_COLUMNS = ("open", "high", "low", "close")
NUMBER_COLUMNS = (*PRICE_COLUMNS, "volume", "adj_close")
REQUIRED_COLUMNS = ("session", "symbol", *PRICE_COLUMNS, "volume")
DATE_FORMAT = "%Y-%m-%d"

# Helper columns; the double underscores keep them clear of user columns.
INPUT_ORDER = "__input_order__"
LABEL = "__label__"
FIRST_LABEL = "__first_label__"  # the label of the first row with the same session and symbol


def raw(name: str) -> str:
    """The column holding `name` as written, where the input was text (else null)."""
    return f"__raw_{name}__"


def canonical_columns(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The bar columns under their canonical names (any case; `date` for `session`; extras
    dropped), and the names of the required columns that are missing."""
    lowered: dict[str, str] = {}
    for name in frame.columns:
        key = name.strip().lower()
        lowered.setdefault("session" if key == "date" else key, name)  # the first of a clash wins
    present = frame.select(pl.col(lowered[c]).alias(c) for c in (*REQUIRED_COLUMNS, "adj_close") if c in lowered)
    return present, [c for c in REQUIRED_COLUMNS if c not in lowered]


def parse(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast canonical columns to the bar types. A text value that does not parse becomes null;
    its text stays in the raw column so the problem can quote it. Other columns pass through."""
    if "adj_close" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("adj_close"))
    if not isinstance(frame.schema["session"], (pl.String, pl.Date, pl.Datetime)):
        frame = frame.with_columns(pl.col("session").cast(pl.String))  # e.g. 20240304: parsed as text
    schema = frame.schema
    return frame.with_columns(
        *(
            (pl.col(c) if schema[c] == pl.String else pl.lit(None, dtype=pl.String)).alias(raw(c))
            for c in ("session", *NUMBER_COLUMNS)
        ),
        _session(schema["session"]),
        pl.col("symbol").cast(pl.String).str.strip_chars(),
        *(_number(schema[c], c) for c in NUMBER_COLUMNS),
    )


def _session(dtype: pl.DataType) -> pl.Expr:
    session = pl.col("session")
    if dtype == pl.String:
        return session.str.strip_chars().str.strptime(pl.Date, DATE_FORMAT, strict=False)
    if isinstance(dtype, pl.Datetime):
        return session.dt.date()
    return session


def _number(dtype: pl.DataType, name: str) -> pl.Expr:
    column = pl.col(name)
    if dtype == pl.String:
        column = column.str.strip_chars()
    return column.cast(pl.Float64, strict=False)


def sort_and_check(parsed: pl.DataFrame, label: pl.Expr, limit: int) -> tuple[pl.DataFrame, list[str], int]:
    """`parsed` sorted by session and symbol; its first `limit` problems in input order, each
    as "<label>: <what is wrong>"; and how many problems there are in all."""
    ordered = parsed.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(INPUT_ORDER)).sort(
        "session", "symbol", nulls_last=True, maintain_order=True
    )
    suspects = ordered.filter(pl.any_horizontal(c.condition.fill_null(False) for c in _checks(ordered, False)))
    if suspects.is_empty():
        return ordered, [], 0
    suspects = suspects.sort(INPUT_ORDER)
    checks = _checks(suspects, True)
    # Conditions become columns here: some compare rows, so they must see every suspect.
    flags = [f"__check_{i}__" for i in range(len(checks))]
    suspects = suspects.with_columns(
        *(c.condition.fill_null(False).alias(flag) for c, flag in zip(checks, flags)),
        label.alias(LABEL),
    ).with_columns(
        pl.sum_horizontal(flags).alias("count"),
        pl.col(LABEL).first().over("session", "symbol").alias(FIRST_LABEL),
    )
    found = (
        suspects.filter(pl.col("count") > 0)
        .head(limit)
        .select(
            pl.col(LABEL),
            pl.concat_list(pl.when(pl.col(flag)).then(c.message) for c, flag in zip(checks, flags))
            .list.drop_nulls()
            .alias("what"),
        )
        .explode("what")
        .drop_nulls("what")
    )
    shown = [f"{where}: {what}" for where, what in found.iter_rows()]
    return ordered, shown[:limit], int(suspects["count"].sum())


@dataclass(frozen=True)
class Check:
    condition: pl.Expr  # true where a row has the problem
    message: pl.Expr  # what is wrong, evaluated only on rows that have some problem


def _checks(frame: pl.DataFrame, suspects_only: bool) -> list[Check]:
    checks = _date_checks(frame) + [
        Check(pl.col("symbol").is_null() | (pl.col("symbol") == ""), pl.lit("symbol is missing"))
    ]
    for name in NUMBER_COLUMNS:
        checks += _value_checks(name)
    # Range checks only where every price is usable, so one bad value is one problem.
    usable = pl.all_horizontal((pl.col(c).is_finite() & (pl.col(c) > 0)).fill_null(False) for c in PRICE_COLUMNS)
    high, low = pl.col("high"), pl.col("low")
    checks.append(Check(usable & (high < low), pl.format("high ({}) is below low ({})", high, low)))
    for name in ("open", "close"):
        value = pl.col(name)
        checks.append(
            Check(
                usable & (high >= low) & ((value < low) | (value > high)),
                pl.format(f"{name} ({{}}) is outside [low, high] = [{{}}, {{}}]", value, low, high),
            )
        )
    checks.append(_duplicate_check(suspects_only))
    return checks


def _date_checks(frame: pl.DataFrame) -> list[Check]:
    day, written = pl.col("session"), pl.col(raw("session"))
    known_from, known_to = _calendar_bounds()
    inside = (day >= known_from) & (day <= known_to)
    dates = frame["session"].drop_nulls()
    first, last = (max(dates.min(), known_from), min(dates.max(), known_to)) if dates.len() else (None, None)
    sessions = sessions_between(first, last) if first and last and first <= last else []
    return [
        Check(day.is_null() & written.is_null(), pl.lit("date is missing")),
        Check(day.is_null() & written.is_not_null(), pl.format("date '{}' is not a YYYY-MM-DD date", written)),
        Check(
            day.is_not_null() & ~inside,
            pl.format(f"date {{}} is outside the XNYS calendar this pipeline knows ({known_from} .. {known_to})", day),
        ),
        # Every date must be an XNYS session: weekend or holiday rows are an error, not noise.
        Check(
            inside & ~day.is_in(sessions),
            pl.format(
                "date {} ({}) is not an XNYS trading session (weekend or market holiday): "
                "remove rows for days the exchange was closed",
                day,
                day.dt.strftime("%A"),
            ),
        ),
    ]


def _value_checks(name: str) -> list[Check]:
    value, written = pl.col(name), pl.col(raw(name))
    checks = [
        Check(value.is_nan(), pl.lit(f"{name} is NaN")),
        Check(value.is_infinite(), pl.format(f"{name} ({{}}) is not finite", value)),
        Check(value.is_null() & written.is_not_null(), pl.format(f"{name} '{{}}' is not a number", written)),
    ]
    if name != "adj_close":  # an empty adj_close means "no adjustment": close is used
        checks.append(Check(value.is_null() & written.is_null(), pl.lit(f"{name} is missing")))
    if name == "volume":
        checks.append(Check(value < 0, pl.format("volume ({}) is negative", value)))
    else:
        checks.append(Check(value <= 0, pl.format(f"{name} ({{}}) is not a positive price", value)))
    return checks


def _duplicate_check(suspects_only: bool) -> Check:
    """Over all rows (sorted, so repeats are neighbours): every member of a repeated session
    and symbol. Among the suspects (whole groups, back in input order): the repeats after the
    first, named with the first's row."""
    session, symbol = pl.col("session"), pl.col("symbol")
    known = session.is_not_null() & symbol.is_not_null()
    if suspects_only:
        key = pl.struct("session", "symbol")
        repeated = key.is_duplicated() & ~key.is_first_distinct()
    else:
        repeated = pl.lit(False)
        for step in (1, -1):
            repeated = repeated | ((session == session.shift(step)) & (symbol == symbol.shift(step))).fill_null(False)
    return Check(
        known & repeated,
        pl.format(
            "duplicate bar for session {} symbol {} (already on {}); each may appear once",
            session,
            symbol,
            pl.col(FIRST_LABEL),
        ),
    )


def _calendar_bounds() -> tuple[date, date]:
    return known_range()  # not cached: the range grows to cover the data (calendar.cover)
