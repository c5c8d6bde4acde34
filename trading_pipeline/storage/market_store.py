"""Bars, features and other per-session asset tables in the warehouse, and the file source's
validated bars kept between runs (so a session does not read the whole data folder again)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import polars as pl

from trading_pipeline.domain.market.bars import BAR_SCHEMA
from trading_pipeline.domain.market.files import (
    GAP_SCHEMA,
    SECTOR_SCHEMA,
    SOURCE_ROW_SCHEMA,
    FileBatch,
    FileStamp,
    sector_table,
)
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


def store_session(warehouse: Warehouse, session: date, bars: pl.DataFrame, history: pl.DataFrame) -> int:
    """In one transaction: add the `history` sessions not stored yet, and replace `session`'s
    bars with `bars`. Returns how many history rows were added."""
    with warehouse.transaction() as con:
        for frame in (bars, history):
            if frame.height:
                con.register("incoming", frame)
                con.execute(f"create table if not exists {BARS} as select * from incoming limit 0")
                con.unregister("incoming")
        if not _has_table(con, BARS):
            return 0
        con.execute(f"delete from {BARS} where session = ?", [session])
        added = 0
        if history.height:
            con.register("history_rows", history.filter(pl.col("session") != session))
            added = con.execute(
                f"""insert into {BARS} select * from history_rows
                    where session not in (select distinct session from {BARS})"""
            ).fetchall()[0][0]
            con.unregister("history_rows")
        if bars.height:
            con.register("session_rows", bars)
            con.execute(f"insert into {BARS} select * from session_rows")
            con.unregister("session_rows")
    return added


def _has_table(con, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?",
                            [table]).fetchall()[0][0])


# -- a broker source's bars, fetched incrementally per symbol ---------------------------------

ADJUSTMENT_EVENTS, UNIVERSE_EVENTS = "adjustment_events", "universe_events"
ADJUSTMENT_EVENT_SCHEMA = {
    "session_detected": pl.Date, "symbol": pl.String, "reference_session": pl.Date,
    "old_adj_close": pl.Float64, "new_adj_close": pl.Float64, "ratio": pl.Float64,
    "rows_replaced": pl.Int64, "source": pl.String, "recorded_at": pl.Datetime("us", "UTC"),
}
UNIVERSE_EVENT_SCHEMA = {
    "session": pl.Date, "symbol": pl.String, "event": pl.String, "reason": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
}


def symbol_coverage(warehouse: Warehouse, through: date) -> pl.DataFrame:
    """symbol, bars, first_bar, last_bar: what is stored per symbol on or before `through`."""
    schema = {"symbol": pl.String, "bars": pl.Int64, "first_bar": pl.Date, "last_bar": pl.Date}
    if not warehouse.table_exists(BARS):
        return pl.DataFrame(schema=schema)
    return warehouse.query(
        f"""select symbol, count(*) as bars, min(session) as first_bar, max(session) as last_bar
            from {BARS} where session <= ? group by symbol order by symbol""", [through]).cast(schema)


def stored_adjusted(warehouse: Warehouse, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
    """session, symbol, adj_close stored for `symbols` from `first` to `last`."""
    schema = {"session": pl.Date, "symbol": pl.String, "adj_close": pl.Float64}
    if not symbols or not warehouse.table_exists(BARS):
        return pl.DataFrame(schema=schema)
    wanted = pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String})
    with warehouse.connect() as con:
        con.register("wanted_symbols", wanted)
        rows = con.sql(f"""select session, symbol, adj_close from {BARS} where session between ? and ?
                           and symbol in (select symbol from wanted_symbols)""", params=[first, last]).pl()
    return rows.cast(schema)


def store_fetched(warehouse: Warehouse, bars: pl.DataFrame, readjusted: pl.DataFrame,
                  adjustment_events: pl.DataFrame) -> int:
    """In one transaction: put `bars` (BAR_SCHEMA; a stored (session, symbol) is replaced, never
    doubled), replace the stored adjusted closes of the rows in `readjusted` (session, symbol,
    adj_close) and record `adjustment_events`. Returns how many stored rows were re-adjusted."""
    columns = ", ".join(BAR_SCHEMA)
    replaced = 0
    with warehouse.transaction() as con:
        if bars.height:
            con.register("fetched_rows", bars.select(*BAR_SCHEMA))
            con.execute(f"create table if not exists {BARS} as select * from fetched_rows limit 0")
            con.execute(f"""delete from {BARS} where (session, symbol) in
                            (select (session, symbol) from fetched_rows)""")
            con.execute(f"insert into {BARS} ({columns}) select {columns} from fetched_rows")
            con.unregister("fetched_rows")
        if readjusted.height and _has_table(con, BARS):
            con.register("readjusted_rows", readjusted.select("session", "symbol", "adj_close"))
            replaced = con.execute(
                f"""update {BARS} set adj_close = r.adj_close from readjusted_rows r
                    where {BARS}.session = r.session and {BARS}.symbol = r.symbol""").fetchall()[0][0]
            con.unregister("readjusted_rows")
        if adjustment_events.height:
            _append_in(con, ADJUSTMENT_EVENTS, adjustment_events.select(*ADJUSTMENT_EVENT_SCHEMA))
    return replaced


def adjustment_events(warehouse: Warehouse) -> pl.DataFrame:
    """Every split or dividend detected, oldest first."""
    if not warehouse.table_exists(ADJUSTMENT_EVENTS):
        return pl.DataFrame(schema=ADJUSTMENT_EVENT_SCHEMA)
    return warehouse.query(f"select * from {ADJUSTMENT_EVENTS} order by recorded_at, symbol")


def record_universe_events(warehouse: Warehouse, events: pl.DataFrame) -> None:
    """Append universe events (joined, entered, exited, removed)."""
    if events.height:
        warehouse.append(UNIVERSE_EVENTS, events.select(*UNIVERSE_EVENT_SCHEMA))


def universe_events(warehouse: Warehouse) -> pl.DataFrame:
    if not warehouse.table_exists(UNIVERSE_EVENTS):
        return pl.DataFrame(schema=UNIVERSE_EVENT_SCHEMA)
    return warehouse.query(f"select * from {UNIVERSE_EVENTS} order by session, symbol, recorded_at")


def _append_in(con, table: str, frame: pl.DataFrame) -> None:
    con.register("appended_rows", frame)
    con.execute(f"create table if not exists {table} as select * from appended_rows limit 0")
    con.execute(f"insert into {table} select * from appended_rows")
    con.unregister("appended_rows")


# -- the file source's validated bars, kept between runs --------------------------------------

FILE_MANIFEST, FILE_BARS, FILE_GAPS, FILE_SECTORS = "file_bar_manifest", "file_bars", "file_bar_gaps", "file_bar_sectors"
_FILE_DDL = f"""
create table if not exists {FILE_MANIFEST} (
    folder varchar, file varchar, size bigint, modified_ns bigint, rows bigint, gaps bigint,
    loaded_at timestamp default current_timestamp);
create table if not exists {FILE_BARS} (
    session date, symbol varchar, open double, high double, low double, close double,
    volume double, adj_close double, file varchar, line bigint);
create table if not exists {FILE_GAPS} (file varchar, line bigint, session date, symbol varchar, reason varchar);
create table if not exists {FILE_SECTORS} (file varchar, symbol varchar, sector varchar);
"""


class WarehouseBarFileStore:
    """The file source's BarFileStore in the warehouse: a folder is read and validated once,
    then only the files whose size or modification time changed are read again."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._ready = False

    def __repr__(self) -> str:
        return f"WarehouseBarFileStore({self.warehouse!r})"

    def _query(self, sql: str, params: list | None = None, **frames: pl.DataFrame) -> pl.DataFrame:
        with self.warehouse.connect() as con:
            self._ensure(con)
            for name, frame in frames.items():
                con.register(name, frame)
            return con.sql(sql, params=params or None).pl()

    def _ensure(self, con) -> None:
        if not self._ready:
            con.execute(_FILE_DDL)
            self._ready = True

    def file_stamps(self, folder: str) -> dict[str, FileStamp]:
        rows = self._query(f"select file, size, modified_ns from {FILE_MANIFEST} where folder = ?", [folder])
        return {name: FileStamp(name, size, modified) for name, size, modified in rows.iter_rows()}

    def stored_rows(self, symbols: Sequence[str], excluding_files: Sequence[str]) -> pl.DataFrame:
        if not symbols:
            return pl.DataFrame(schema=SOURCE_ROW_SCHEMA)
        wanted = pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String})
        skipped = pl.DataFrame({"file": list(excluding_files)}, schema={"file": pl.String})
        columns = ", ".join(SOURCE_ROW_SCHEMA)
        return self._query(
            f"""select {columns} from {FILE_BARS} where symbol in (select symbol from wanted)
                and file not in (select file from skipped) order by file, line""",
            wanted=wanted, skipped=skipped,
        ).cast(SOURCE_ROW_SCHEMA)  # type: ignore[arg-type]

    def replace_files(self, folder: str, removed: Sequence[str], batch: FileBatch) -> None:
        names = [*removed, *(s.name for s in batch.stamps)]
        gone = pl.DataFrame({"file": names}, schema={"file": pl.String})
        per_file = batch.bars.group_by("file").len("rows").join(
            batch.gaps.group_by("file").len("gaps"), on="file", how="full", coalesce=True)
        manifest = pl.DataFrame(
            {"folder": [folder] * len(batch.stamps), "file": [s.name for s in batch.stamps],
             "size": [s.size for s in batch.stamps], "modified_ns": [s.modified_ns for s in batch.stamps]},
            schema={"folder": pl.String, "file": pl.String, "size": pl.Int64, "modified_ns": pl.Int64},
        ).join(per_file, on="file", how="left").with_columns(pl.col("rows", "gaps").fill_null(0))
        with self.warehouse.transaction() as con:
            self._ensure(con)
            other_folder = con.execute(f"select count(*) from {FILE_MANIFEST} where folder <> ?",
                                       [folder]).fetchall()[0][0]
            for table in (FILE_MANIFEST, FILE_BARS, FILE_GAPS, FILE_SECTORS):
                con.register("gone_files", gone)
                if other_folder:  # another data folder: nothing stored from it still applies
                    con.execute(f"delete from {table}")
                else:
                    con.execute(f"delete from {table} where file in (select file from gone_files)")
            for table, frame, columns in (
                (FILE_MANIFEST, manifest, "folder, file, size, modified_ns, rows, gaps"),
                (FILE_BARS, batch.bars, ", ".join(SOURCE_ROW_SCHEMA)),
                (FILE_GAPS, batch.gaps, ", ".join(GAP_SCHEMA)),
                (FILE_SECTORS, batch.sectors, ", ".join(SECTOR_SCHEMA)),
            ):
                if frame.height:
                    con.register("incoming_rows", frame)
                    con.execute(f"insert into {table} ({columns}) select {columns} from incoming_rows")
                    con.unregister("incoming_rows")

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        wanted = pl.DataFrame({"session": sorted(set(sessions))}, schema={"session": pl.Date})
        columns = ", ".join(BAR_SCHEMA)
        return self._query(
            f"""select {columns} from {FILE_BARS} where session between ? and ?
                and session in (select session from wanted) order by session, symbol""",
            [wanted["session"].min(), wanted["session"].max()], wanted=wanted,
        ).cast(BAR_SCHEMA)  # type: ignore[arg-type]

    def sessions(self) -> list[date]:
        return self._query(f"select distinct session from {FILE_BARS} order by session")["session"].to_list()

    def symbols(self) -> list[str]:
        return self._query(f"select distinct symbol from {FILE_BARS} order by symbol")["symbol"].to_list()

    def sectors(self) -> pl.DataFrame:
        return sector_table(self.symbols(), self._query(f"select * from {FILE_SECTORS}").cast(SECTOR_SCHEMA))

    def gaps(self) -> pl.DataFrame:
        return self._query(f"select * from {FILE_GAPS} order by session, symbol").cast(GAP_SCHEMA)

    def summary(self) -> dict[str, int]:
        """Files, bars and gaps stored now."""
        row = self._query(f"""select (select count(*) from {FILE_MANIFEST}) as files,
                                     (select count(*) from {FILE_BARS}) as bars,
                                     (select count(*) from {FILE_GAPS}) as gaps""")
        return row.row(0, named=True)
