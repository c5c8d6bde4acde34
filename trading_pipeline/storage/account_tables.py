"""Per-session tables kept per account: `predictions`, `drift_reports`, `monitor_checks`.

Paper and live run side by side on one warehouse, each on its own account (the broker's
`name`, e.g. "alpaca-paper", "alpaca-live"), and may score with different champions: each
writes and reads only its own rows, so one environment never overwrites the other's.

Rows written before these tables carried an account have it null. They stay as they were:
an account reads them for a session where it has no rows of its own, so an upgraded
warehouse keeps its history, and the account's first write for that session takes over.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_pipeline.storage.warehouse import Warehouse

ACCOUNT = "account"
PER_ACCOUNT_TABLES = ("predictions", "drift_reports", "monitor_checks")


def ensure_account_column(warehouse: Warehouse, table: str) -> bool:
    """Add the account column to a table made before it existed; False when there is no table."""
    if not warehouse.table_exists(table):
        return False
    warehouse.execute(f"alter table {table} add column if not exists {ACCOUNT} varchar")
    return True


def write_account_session(warehouse: Warehouse, table: str, account: str | None, session: date,
                          frame: pl.DataFrame) -> int:
    """Replace `account`'s rows of `table` for `session` with `frame`; other accounts' rows and
    rows written before the account was recorded are left as they are. None: the unkeyed rows
    (replays and tests that store predictions directly)."""
    ensure_account_column(warehouse, table)
    frame = frame.with_columns(pl.lit(account, pl.String).alias(ACCOUNT))
    if account is None:
        with warehouse.transaction() as con:
            incoming = frame  # referenced by name in the SQL below
            con.execute(f"create table if not exists {table} as select * from incoming limit 0")
            con.execute(f"delete from {table} where session = ? and {ACCOUNT} is null", [session])
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            if frame.height:
                con.execute(f"insert into {table} ({columns}) select {columns} from incoming")
        return frame.height
    return warehouse.replace_where(table, {"session": session, ACCOUNT: account}, frame)


def own_rows(table: str, account: str | None, alias: str = "t") -> tuple[str, list]:
    """A where-clause (and its parameters) selecting `account`'s rows of `table`, or for a session
    where it has none, the rows written before accounts were recorded."""
    if account is None:
        return f"{alias}.{ACCOUNT} is null", []
    return (f"({alias}.{ACCOUNT} = ? or ({alias}.{ACCOUNT} is null and not exists (select 1 from "
            f"{table} o where o.session = {alias}.session and o.{ACCOUNT} = ?)))", [account, account])


def read_account_range(warehouse: Warehouse, table: str, account: str | None, first: date,
                       last: date, columns: str = "*") -> pl.DataFrame:
    """`account`'s rows of `table` for the sessions `first`..`last` (empty when there is no table)."""
    if not ensure_account_column(warehouse, table):
        return pl.DataFrame()
    where, params = own_rows(table, account)
    return warehouse.query(f"select {columns} from {table} t where t.session between ? and ? and {where}",
                           [first, last, *params])
