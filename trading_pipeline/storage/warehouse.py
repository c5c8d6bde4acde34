"""One DuckDB file for market data, asset outputs and the ledger.

Connections are short-lived (open, work, close) because DuckDB allows one writer process
at a time: a sensor in the daemon and a run in its own process must both get their turn.
Opening retries for a bounded time when another process holds the lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from trading_pipeline.storage.schema import LEDGER_DDL

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _checked(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid table or column name: {name!r}")
    return name


class Warehouse:
    def __init__(self, path: str | Path, lock_wait_seconds: float = 60.0):
        self.path = Path(path)
        self._lock_wait_seconds = lock_wait_seconds
        self._schema_ready = False
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_by: int | None = None  # the thread holding it; others open their own

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection open for a block of work in this thread (a session of a replay,
        one asset step): opening a connection costs tens of milliseconds, and a step makes
        dozens of small reads and writes. Other processes wait for the lock until it ends."""
        if self._held is not None:
            yield  # re-entrant: the outer block keeps it
            return
        con = self._open()
        self._held, self._held_by = con, threading.get_ident()
        try:
            yield
        finally:
            self._held = self._held_by = None
            con.close()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is not None and self._held_by == threading.get_ident():
            con = self._held.cursor()  # same open database, its own results and transaction
        else:
            con = self._open()
        try:
            if not self._schema_ready:
                con.execute(LEDGER_DDL)
                self._schema_ready = True
            yield con
        finally:
            con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        opener = retry(
            retry=retry_if_exception(_is_lock_conflict),
            stop=stop_after_delay(self._lock_wait_seconds),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            reraise=True,
        )(duckdb.connect)
        return opener(str(self.path))

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- reads -----------------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.sql(sql, params=params or None).pl()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.connect() as con:
            row = con.execute(sql, params or []).fetchone()
        return None if row is None else row[0]

    def table_exists(self, table: str) -> bool:
        return bool(
            self.scalar(
                "select count(*) from information_schema.tables where table_name = ?",
                [_checked(table)],
            )
        )

    def read_partition(self, table: str, session: date, column: str = "session") -> pl.DataFrame:
        if not self.table_exists(table):
            return pl.DataFrame()
        return self.query(
            f'select * from {_checked(table)} where "{_checked(column)}" = ?', [session]
        )

    # -- writes ----------------------------------------------------------------

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with self.connect() as con:
            con.execute(sql, params or [])

    def replace_partition(
        self, table: str, session: date, frame: pl.DataFrame, column: str = "session"
    ) -> int:
        """Replace every row of `table` for one session with `frame`, in one transaction."""
        return self.replace_where(table, {column: session}, frame)

    def replace_where(self, table: str, key: dict[str, Any], frame: pl.DataFrame) -> int:
        """Delete the rows matching `key` and insert `frame`, atomically (idempotent re-runs)."""
        table = _checked(table)
        for column, value in key.items():
            if column in frame.columns and frame.height and (frame[column] != value).any():
                raise ValueError(f"rows written to {table} must all have {column} = {value}")
        with self.transaction() as con:
            self._create_like(con, table, frame)
            where = " and ".join(f'"{_checked(c)}" = ?' for c in key)
            con.execute(f"delete from {table} where {where}", list(key.values()))
            self._insert(con, table, frame)
        return frame.height

    def append(self, table: str, frame: pl.DataFrame) -> int:
        table = _checked(table)
        with self.transaction() as con:
            self._create_like(con, table, frame)
            self._insert(con, table, frame)
        return frame.height

    @staticmethod
    def _create_like(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        incoming = frame  # referenced by name in the SQL below
        con.execute(f"create table if not exists {table} as select * from incoming limit 0")

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        incoming = frame  # referenced by name in the SQL below
        columns = ", ".join(f'"{_checked(c)}"' for c in frame.columns)  # quoted: "check", "limit"
        con.execute(f"insert into {table} ({columns}) select {columns} from incoming")
