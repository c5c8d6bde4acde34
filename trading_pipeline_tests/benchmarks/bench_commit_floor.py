"""The order path's floor: what its durable writes alone cost, batched as the order path sends
them, beside one order at a time.

    python -m trading_pipeline_tests.benchmarks.bench_commit_floor [--orders 1000] [--batch 100]

Every send takes three DuckDB commits, each synced to disk: the intents are recorded
`submitting` before the venue is asked; the paper simulator records the orders it accepted (its
own books); the answers are recorded before anything later is sent. The order path sends the
consecutive orders the kill switch let through in batches of up to `SEND_BATCH`
(`services.trading`), so N orders cost 3 x ceil(N / batch) commits; one order at a time (as
before, and as every venue without `submit_many` is still sent to) cost 3 x N. This times both,
in one run, with the statements the order path runs (the orders' rows updated and events
appended; the venue's numbers taken and its orders inserted) on a fresh warehouse file with N
planned orders, and nothing else: no checks, no Python around them. The order path's figure
divided by the batched floor says how much is left above it.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from trading_pipeline.services.trading import SEND_BATCH

COMMITS_PER_SEND = 3


def _floor(orders: int, batch: int) -> tuple[float, float, int]:
    """Wall and CPU seconds of N orders' durable writes sent `batch` at a time, and the events."""
    with tempfile.TemporaryDirectory() as folder:
        con = duckdb.connect(str(Path(folder) / "floor.duckdb"))
        con.execute("create table orders (id varchar primary key, status varchar, updated_at timestamp)")
        con.execute("create table events (id varchar, status varchar, recorded_at timestamp)")
        con.execute("create table venue_account (account varchar primary key, order_count bigint)")
        con.execute("create table venue_orders (account varchar, id varchar, number bigint, "
                    "primary key (account, id))")
        con.execute("insert into orders select 'o' || i, 'planned', now() from range(?) t(i)", [orders])
        con.execute("insert into venue_account values ('paper', 0)")
        start, cpu = time.perf_counter(), time.process_time()
        if batch == 1:
            _one_at_a_time(con, orders)
        for first in range(0, orders if batch > 1 else 0, batch):
            ids = [f"o{i}" for i in range(first, min(first + batch, orders))]
            sent = pl.DataFrame({"id": ids})  # referenced by name in the SQL below
            for status in ("submitting", None, "new"):
                con.execute("begin transaction")
                if status is None:  # the venue's own record of what it accepted
                    count = con.execute("update venue_account set order_count = order_count + ? "
                                        "where account = 'paper' returning order_count", [len(ids)]).fetchone()[0]
                    con.execute("insert into venue_orders select 'paper', id, ? + row_number() over () "
                                "from sent", [count - len(ids)])
                else:
                    con.execute("update orders set status = ?, updated_at = now() "
                                "where id in (select id from sent)", [status])
                    con.execute("insert into events select id, ?, now() from sent", [status])
                con.execute("commit")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        recorded = con.execute("select count(*) from events").fetchone()[0]
        con.close()
    return seconds, cpu, recorded


def _one_at_a_time(con: duckdb.DuckDBPyConnection, orders: int) -> None:
    """The same writes with one order's statements each (no frame to build)."""
    for i in range(orders):
        order_id = f"o{i}"
        for status in ("submitting", None, "new"):
            con.execute("begin transaction")
            if status is None:
                number = con.execute("update venue_account set order_count = order_count + 1 "
                                     "where account = 'paper' returning order_count").fetchone()[0]
                con.execute("insert into venue_orders values ('paper', ?, ?)", [order_id, number])
            else:
                con.execute("update orders set status = ?, updated_at = now() where id = ?", [status, order_id])
                con.execute("insert into events values (?, ?, now())", [order_id, status])
            con.execute("commit")


def measure(orders: int = 1000, batch: int = SEND_BATCH) -> dict:
    seconds, cpu, recorded = _floor(orders, batch)
    one_seconds, one_cpu, one_recorded = _floor(orders, 1)
    commits = COMMITS_PER_SEND * math.ceil(orders / batch)
    return {"seconds": seconds, "cpu_seconds": cpu,
            "reference": "one order at a time", "reference_seconds": one_seconds,
            "reference_cpu_seconds": one_cpu,
            "check": (f"{recorded} events, {commits} commits" if recorded == one_recorded == 2 * orders
                      else "MISMATCH"),
            "detail": f"batches of {batch}: {commits} durable commits, {seconds / commits * 1000:.2f} ms wall "
                      f"({cpu / commits * 1000:.2f} ms CPU) each; one order at a time: "
                      f"{COMMITS_PER_SEND * orders} commits, {one_seconds:.2f} s wall, CPU {one_cpu:.2f} s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=SEND_BATCH)
    args = parser.parse_args()
    row = measure(args.orders, args.batch)
    print(f"{row['seconds']:.2f} s wall, CPU {row['cpu_seconds']:.2f} s: {row['detail']} ({row['check']})")


if __name__ == "__main__":
    main()
