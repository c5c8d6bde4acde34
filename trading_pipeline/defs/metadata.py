"""Turning frames and figures into asset metadata the UI shows well: tables as Dagster tables
with a schema (sortable, shown in place), money as $, ratios as %."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping

import dagster as dg
import polars as pl

# How a column is shown: "money" ($1,234.56), "price" ($12.3456), "percent" (12.34%),
# "shares" (12 or 12.5), "number" (6 significant digits), "text".
ColumnFormats = Mapping[str, str]


def money(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def price(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"${value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"${value:,.2f}"


def percent(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value * 100:.{digits}f}%"


def shares(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}".rstrip("0")


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return str(value)


_FORMATTERS = {"money": money, "price": price, "percent": percent, "shares": shares,
               "number": _number, "text": lambda v: "" if v is None else str(v)}


def _cell(value, kind: str | None):
    if kind is not None:
        return _FORMATTERS[kind](value)
    if isinstance(value, bool) or isinstance(value, int) or value is None:
        return value
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _column_type(dtype: pl.DataType, kind: str | None) -> str:
    if kind is not None:
        return "string"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    return "string"


_MONEY = {"equity", "cash", "pnl", "market_value", "notional", "commission", "buying_power"}
_PRICE = {"price", "entry", "last", "avg_entry_price", "market_price", "stop_price", "limit_price"}
_PERCENT = {"weight", "drawdown", "return"}
_SHARES = {"quantity", "shares", "filled_quantity"}


def inferred_format(column: str) -> str | None:
    """The format a float column's name implies (`daily_pnl` money, `target_weight` percent...),
    or None for a plain number."""
    for names, kind in ((_MONEY, "money"), (_PRICE, "price"), (_PERCENT, "percent"), (_SHARES, "shares")):
        if column in names or any(column.endswith(f"_{name}") for name in names):
            return kind
    return None


def table(frame: pl.DataFrame, formats: ColumnFormats | None = None, max_rows: int = 50,
          descriptions: Mapping[str, str] | None = None) -> dg.MetadataValue:
    """A Dagster table (shown in place in the UI, with a schema) from a polars frame. Columns
    named in `formats` are shown in that format; without `formats`, float columns get the one
    their name implies (`inferred_format`); other floats 6 significant digits."""
    if formats is None:
        formats = {name: kind for name, dtype in frame.schema.items()
                   if dtype.is_float() and (kind := inferred_format(name)) is not None}
    formats = dict(formats)
    unknown = set(formats) - set(frame.columns)
    if unknown:
        raise ValueError(f"formats name columns the frame lacks: {sorted(unknown)}; it has {frame.columns}")
    bad = {k for k, v in formats.items() if v not in _FORMATTERS}
    if bad:
        raise ValueError(f"unknown formats for {sorted(bad)}: use one of {sorted(_FORMATTERS)}")
    descriptions = descriptions or {}
    schema = dg.TableSchema(columns=[
        dg.TableColumn(name, _column_type(dtype, formats.get(name)), description=descriptions.get(name))
        for name, dtype in frame.schema.items()])
    shown = frame.head(max_rows)
    records = [dg.TableRecord({name: _cell(value, formats.get(name)) for name, value in row.items()})
               for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema=schema)


def markdown_table(frame: pl.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """A Markdown table: kept for callers that build one; prefer `table`."""
    if frame.is_empty():
        return dg.MetadataValue.md("_(empty)_")
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(_cell(v, None) if v is not None else "") for v in row) + " |"
            for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows} more rows_"] if frame.height > max_rows else []
    return dg.MetadataValue.md("\n".join([header, rule, *rows, *more]))


def image(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the asset's metadata (a Markdown image with the bytes in a data URI:
    Dagster has no image type; nothing to serve, nothing to click through)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
