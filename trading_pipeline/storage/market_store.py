"""Bars, features and other per-session asset tables in the warehouse."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import polars as pl

from trading_pipeline.storage.warehouse import Warehouse

BARS = "bars"


def stored_sessions(warehouse: Warehouse, table: str = BARS) -> set[date]:
    if not warehouse.table_exists(table):
        return set()
    return set(warehouse.query(f"select distinct session from {table}")["session"].to_list())


def append_history(warehouse: Warehouse, bars: pl.DataFrame) -> None:
    """Add whole sessions that are not stored yet (history back-fill)."""
    if bars.is_empty():
        return
    present = stored_sessions(warehouse)
    fresh = bars.filter(~pl.col("session").is_in(list(present)))
    warehouse.append(BARS, fresh)


def write_session(warehouse: Warehouse, session: date, bars: pl.DataFrame) -> None:
    warehouse.replace_partition(BARS, session, bars)


def read_bars(warehouse: Warehouse, sessions: Iterable[date]) -> pl.DataFrame:
    wanted = sorted(set(sessions))
    if not wanted or not warehouse.table_exists(BARS):
        return pl.DataFrame()
    return warehouse.query(
        "select * from bars where session between ? and ? order by session, symbol",
        [wanted[0], wanted[-1]],
    ).filter(pl.col("session").is_in(wanted))


def read_bars_through(warehouse: Warehouse, last: date, first: date | None = None) -> pl.DataFrame:
    if not warehouse.table_exists(BARS):
        return pl.DataFrame()
    return warehouse.query(
        "select * from bars where session <= ? and session >= ? order by session, symbol",
        [last, first or date(1900, 1, 1)],
    )


def read_table_range(warehouse: Warehouse, table: str, first: date, last: date) -> pl.DataFrame:
    if not warehouse.table_exists(table):
        return pl.DataFrame()
    return warehouse.query(
        f"select * from {table} where session between ? and ? order by session", [first, last]
    )
