"""The order path's floor: what the durable writes alone cost, one order at a time.

    python -m trading_pipeline_tests.benchmarks.bench_commit_floor [--orders 1000]

Exactly-once sending allows no batching of status writes across orders: before the venue is
asked, the intent is recorded `submitting` (one commit); the paper simulator records the order
it accepted (one commit, its own books); the answer is recorded before the next order is sent
(one commit). So each order costs at least three DuckDB commits, each synced to disk. This
times those three transactions, with the statements the order path runs (an update of the
order's row and an appended event; the venue's number taken and its order inserted), on a
fresh warehouse file with N planned orders, and nothing else: no checks, no Python around them.
The order path's figure divided by this one says how much is left above the floor.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

COMMITS_PER_ORDER = 3


def measure(orders: int = 1000) -> dict:
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
        for i in range(orders):
            order_id = f"o{i}"
            for status in ("submitting", None, "new"):
                con.execute("begin transaction")
                if status is None:  # the venue's own record of what it accepted
                    number = con.execute("update venue_account set order_count = order_count + 1 "
                                         "where account = 'paper' returning order_count").fetchone()[0]
                    con.execute("insert into venue_orders values ('paper', ?, ?)", [order_id, number])
                else:
                    con.execute("update orders set status = ?, updated_at = now() where id = ?", [status, order_id])
                    con.execute("insert into events values (?, ?, now())", [order_id, status])
                con.execute("commit")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        recorded = con.execute("select count(*) from events").fetchone()[0]
        con.close()
    commits = orders * COMMITS_PER_ORDER
    return {"seconds": seconds, "cpu_seconds": cpu,
            "check": f"{recorded} events, {commits} commits" if recorded == 2 * orders else "MISMATCH",
            "detail": f"{COMMITS_PER_ORDER} durable commits per order x {seconds / commits * 1000:.2f} ms wall "
                      f"({cpu / commits * 1000:.2f} ms CPU) each"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    row = measure(parser.parse_args().orders)
    print(f"{row['seconds']:.2f} s wall, CPU {row['cpu_seconds']:.2f} s: {row['detail']} ({row['check']})")


if __name__ == "__main__":
    main()
