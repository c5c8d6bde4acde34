"""Human decisions on promotions: a person approves or rejects a model version for a stage,
recorded beside the promotion sensor's own decision. Append-only; the newest decision for a
(strategy, model version, stage) is the one in force."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from trading_pipeline.storage.warehouse import Warehouse

APPROVAL_DDL = """
create table if not exists promotion_approvals (
    recorded_at timestamp not null,
    strategy varchar not null,
    model_version varchar not null,
    stage_to varchar not null,
    decision varchar not null,          -- approved | rejected
    reason varchar not null,
    operator varchar not null,
    run_id varchar,
    sensor_decision varchar,            -- the sensor's decision it answers (none: no sensor decision yet)
    sensor_recorded_at timestamp
);
"""


def record_approval(warehouse: Warehouse, *, strategy: str, model_version: str, stage_to: str,
                    decision: str, reason: str, operator: str, run_id: str | None,
                    sensor_decision: str | None, sensor_recorded_at: datetime | None) -> datetime:
    recorded_at = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.transaction() as con:
        con.execute(APPROVAL_DDL)
        con.execute("insert into promotion_approvals values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [recorded_at, strategy, model_version, stage_to, decision, reason, operator, run_id,
                     sensor_decision, sensor_recorded_at])
    return recorded_at


def latest_approval(warehouse: Warehouse, strategy: str, model_version: str, stage_to: str) -> dict | None:
    """The newest human decision for that version and stage, or None."""
    if not warehouse.table_exists("promotion_approvals"):
        return None
    rows = warehouse.query(
        """select * from promotion_approvals where strategy = ? and model_version = ? and stage_to = ?
           order by recorded_at desc limit 1""", [strategy, model_version, stage_to])
    return rows.row(0, named=True) if rows.height else None


def approvals(warehouse: Warehouse, strategy: str) -> pl.DataFrame:
    """Every human decision for `strategy`, newest first."""
    if not warehouse.table_exists("promotion_approvals"):
        return pl.DataFrame()
    return warehouse.query("select * from promotion_approvals where strategy = ? order by recorded_at desc",
                           [strategy])
