"""The simulator's own tables in the warehouse (prefix `sim_`): the broker's side of the books.

The ledger tables are our side and are never written here. Every table is keyed by account,
so several simulated accounts can share one warehouse file. Timestamps are stored as naive
UTC (like the ledger) and come back timezone-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import polars as pl

from trading_pipeline.domain.execution.venue import Position, SimOrder
from trading_pipeline.domain.orders import FillReport, OrderStatus, OrderType, Side, TimeInForce
from trading_pipeline.storage.warehouse import Warehouse

ACCOUNTS = "sim_accounts"
ORDERS = "sim_orders"
FILLS = "sim_fills"
POSITIONS = "sim_positions"
MARKS = "sim_marks"
TABLES = (ACCOUNTS, ORDERS, FILLS, POSITIONS, MARKS)

SIM_DDL = f"""
create table if not exists {ACCOUNTS} (
    account varchar primary key,
    initial_cash double not null,
    cash double not null,
    clock_session date,            -- the last session whose bars were processed
    order_count bigint not null,   -- numbers broker order ids
    created_at timestamp not null,
    changes bigint not null default 0  -- bumped by every write: what a reader kept is still true while it holds
);
create table if not exists {ORDERS} (
    account varchar not null,
    client_order_id varchar not null,
    broker_order_id varchar not null,
    seq bigint not null,           -- submission order: who gets a bar's volume first
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    order_type varchar not null,
    time_in_force varchar not null,
    limit_price double,
    stop_price double,
    trail_percent double,
    trail_amount double,
    status varchar not null,
    filled_quantity double not null,
    avg_fill_price double,
    reason varchar,
    created_session date not null, -- the clock when submitted: fills only on later sessions
    triggered boolean not null,
    trail_reference double,
    submitted_at timestamp not null,
    updated_at timestamp not null,
    parent_client_order_id varchar,  -- a stop attached to this entry: waits for its fill
    waiting_for_parent boolean not null default false,
    primary key (account, client_order_id)
);
create table if not exists {FILLS} (
    account varchar not null,
    fill_id varchar not null,
    client_order_id varchar not null,
    broker_order_id varchar not null,
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    price double not null,
    commission double not null,
    session date not null,
    filled_at timestamp not null,
    primary key (account, fill_id)
);
create table if not exists {POSITIONS} (
    account varchar not null,
    symbol varchar not null,
    quantity double not null,
    avg_entry_price double not null,
    primary key (account, symbol)
);
create table if not exists {MARKS} (
    account varchar not null,
    symbol varchar not null,
    session date not null,         -- the session this close is from
    close double not null,
    primary key (account, symbol)
);
alter table {ACCOUNTS} add column if not exists changes bigint default 0; -- warehouses made before it
-- warehouses made before stops went with their entry
alter table {ORDERS} add column if not exists parent_client_order_id varchar;
alter table {ORDERS} add column if not exists waiting_for_parent boolean default false;
"""

_ORDER_COLUMNS = (
    "client_order_id, broker_order_id, seq, symbol, side, quantity, order_type, time_in_force, "
    "limit_price, stop_price, trail_percent, trail_amount, status, filled_quantity, "
    "avg_fill_price, reason, created_session, triggered, trail_reference, submitted_at, updated_at, "
    "parent_client_order_id, waiting_for_parent"
)


_ORDER_SCHEMA = {
    "account": pl.String, "client_order_id": pl.String, "broker_order_id": pl.String, "seq": pl.Int64,
    "symbol": pl.String, "side": pl.String, "quantity": pl.Float64, "order_type": pl.String,
    "time_in_force": pl.String, "limit_price": pl.Float64, "stop_price": pl.Float64,
    "trail_percent": pl.Float64, "trail_amount": pl.Float64, "status": pl.String,
    "filled_quantity": pl.Float64, "avg_fill_price": pl.Float64, "reason": pl.String,
    "created_session": pl.Date, "triggered": pl.Boolean, "trail_reference": pl.Float64,
    "submitted_at": pl.Datetime("us"), "updated_at": pl.Datetime("us"),
    "parent_client_order_id": pl.String, "waiting_for_parent": pl.Boolean,
}


@dataclass(frozen=True, slots=True)
class AccountState:
    initial_cash: float
    cash: float
    clock: date | None
    order_count: int
    changes: int = 0  # every write bumps it: equal states mean nothing changed in between


def to_db_time(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_db_time(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


class SimStore:
    """Reads and writes of one account's rows. Methods take an open connection so that a
    caller can group them in one transaction."""

    def __init__(self, warehouse: Warehouse, account: str):
        self.warehouse = warehouse
        self.account = account

    def create(self, initial_cash: float) -> None:
        """Create the tables and the account (with `initial_cash`) if they do not exist yet."""
        with self.warehouse.transaction() as con:
            con.execute(SIM_DDL)
            con.execute(
                f"""insert into {ACCOUNTS} (account, initial_cash, cash, clock_session, order_count,
                    created_at, changes) values (?, ?, ?, null, 0, ?, 0) on conflict do nothing""",
                [self.account, initial_cash, initial_cash, to_db_time(datetime.now(UTC))],
            )

    # -- account ---------------------------------------------------------------

    def account_state(self, con: duckdb.DuckDBPyConnection) -> AccountState:
        row = con.execute(
            f"""select initial_cash, cash, clock_session, order_count, coalesce(changes, 0)
                from {ACCOUNTS} where account = ?""",
            [self.account],
        ).fetchone()
        if row is None:
            raise LookupError(f"simulated account {self.account!r} does not exist")
        return AccountState(float(row[0]), float(row[1]), row[2], int(row[3]), int(row[4]))

    def mark_changed(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every write transaction calls this once (a submit through `next_order_number`)."""
        con.execute(f"update {ACCOUNTS} set changes = coalesce(changes, 0) + 1 where account = ?",
                    [self.account])

    def set_cash(self, con: duckdb.DuckDBPyConnection, cash: float) -> None:
        con.execute(f"update {ACCOUNTS} set cash = ? where account = ?", [cash, self.account])

    def set_clock(self, con: duckdb.DuckDBPyConnection, session: date) -> None:
        con.execute(f"update {ACCOUNTS} set clock_session = ? where account = ?",
                    [session, self.account])

    def count_new_orders(self, con: duckdb.DuckDBPyConnection, count: int) -> AccountState:
        """Take `count` order numbers at once (they follow the state's `order_count`); one change.
        Returns the account after."""
        row = con.execute(
            f"""update {ACCOUNTS} set order_count = order_count + ?, changes = coalesce(changes, 0) + 1
                where account = ? returning initial_cash, cash, clock_session, order_count, changes""",
            [count, self.account]).fetchone()
        if row is None:
            raise LookupError(f"simulated account {self.account!r} does not exist")
        return AccountState(float(row[0]), float(row[1]), row[2], int(row[3]), int(row[4]))

    # -- orders ----------------------------------------------------------------

    def order(self, con: duckdb.DuckDBPyConnection, client_order_id: str) -> SimOrder | None:
        rows = self._orders(con, "client_order_id = ?", [client_order_id])
        return rows[0] if rows else None

    def orders(self, con: duckdb.DuckDBPyConnection, client_order_ids: list[str]) -> dict[str, SimOrder]:
        """Those of `client_order_ids` this account has, in one read."""
        return {o.client_order_id: o for o in self._orders(con, "list_contains(?, client_order_id)",
                                                            [client_order_ids])}

    def open_orders(self, con: duckdb.DuckDBPyConnection) -> list[SimOrder]:
        statuses = [str(OrderStatus.NEW), str(OrderStatus.PARTIALLY_FILLED)]
        return self._orders(con, "status in (?, ?)", statuses)

    def _orders(self, con, where: str, params: list) -> list[SimOrder]:
        rows = con.execute(
            f"select {_ORDER_COLUMNS} from {ORDERS} where account = ? and {where} order by seq",
            [self.account, *params],
        ).fetchall()
        return [_order_from_row(row) for row in rows]

    def insert_orders(self, con: duckdb.DuckDBPyConnection, orders: list[SimOrder]) -> None:
        """Orders in one statement, however many (a statement per order costs about a millisecond)."""
        if not orders:
            return
        names = [c.strip() for c in _ORDER_COLUMNS.split(",")]
        incoming = pl.DataFrame(  # referenced by name in the SQL below
            [[self.account, *_order_values(o)] for o in orders], schema=_ORDER_SCHEMA, orient="row")
        con.execute(f"insert into {ORDERS} (account, {_ORDER_COLUMNS}) select account, "
                    f"{', '.join(names)} from incoming")

    def update_orders(self, con: duckdb.DuckDBPyConnection, orders: list[SimOrder]) -> None:
        """Orders' changing fields in one statement, however many; an order listed twice ends as
        its last listing, as one update after another would leave it."""
        latest = list({o.client_order_id: o for o in orders}.values())
        if not latest:
            return
        changed = pl.DataFrame(  # referenced by name in the SQL below
            [[o.client_order_id, str(o.status), o.filled_quantity, o.avg_fill_price, o.reason, o.triggered,
              o.trail_reference, to_db_time(o.updated_at), o.waiting_for_parent] for o in latest],
            schema={"client_order_id": pl.String, "status": pl.String, "filled_quantity": pl.Float64,
                    "avg_fill_price": pl.Float64, "reason": pl.String, "triggered": pl.Boolean,
                    "trail_reference": pl.Float64, "updated_at": pl.Datetime("us"),
                    "waiting_for_parent": pl.Boolean}, orient="row")
        con.execute(
            f"""update {ORDERS} o set status = c.status, filled_quantity = c.filled_quantity,
                    avg_fill_price = c.avg_fill_price, reason = c.reason, triggered = c.triggered,
                    trail_reference = c.trail_reference, updated_at = c.updated_at,
                    waiting_for_parent = c.waiting_for_parent
                from changed c where o.account = ? and o.client_order_id = c.client_order_id""",
            [self.account])

    # -- fills -----------------------------------------------------------------

    def insert_fills(self, con: duckdb.DuckDBPyConnection, fills: list[FillReport], session: date) -> None:
        """Fills in one statement, however many."""
        if not fills:
            return
        incoming = pl.DataFrame(  # referenced by name in the SQL below
            [[f.fill_id, f.client_order_id, f.broker_order_id, f.symbol, str(f.side), f.quantity, f.price,
              f.commission, to_db_time(f.filled_at)] for f in fills],
            schema={"fill_id": pl.String, "client_order_id": pl.String, "broker_order_id": pl.String,
                    "symbol": pl.String, "side": pl.String, "quantity": pl.Float64, "price": pl.Float64,
                    "commission": pl.Float64, "filled_at": pl.Datetime("us")}, orient="row")
        con.execute(
            f"""insert into {FILLS} select ?, fill_id, client_order_id, broker_order_id, symbol, side,
                    quantity, price, commission, ?, filled_at from incoming""", [self.account, session])

    def fills(self, con: duckdb.DuckDBPyConnection, since: datetime) -> list[FillReport]:
        rows = con.execute(
            f"""select fill_id, client_order_id, symbol, side, quantity, price, filled_at,
                       commission, broker_order_id
                from {FILLS} where account = ? and filled_at >= ?
                order by filled_at, broker_order_id, fill_id""",
            [self.account, to_db_time(since)],
        ).fetchall()
        return [
            FillReport(fill_id=r[0], client_order_id=r[1], symbol=r[2], side=Side(r[3]),
                       quantity=r[4], price=r[5], filled_at=from_db_time(r[6]), commission=r[7],
                       broker_order_id=r[8])
            for r in rows
        ]

    # -- positions and marks ---------------------------------------------------

    def positions(self, con: duckdb.DuckDBPyConnection) -> dict[str, Position]:
        rows = con.execute(
            f"select symbol, quantity, avg_entry_price from {POSITIONS} where account = ? "
            "order by symbol",
            [self.account],
        ).fetchall()
        return {symbol: Position(qty, avg) for symbol, qty, avg in rows}

    def set_positions(self, con: duckdb.DuckDBPyConnection, positions: dict[str, Position]) -> None:
        """Positions in two statements, however many: the closed ones deleted, the others written."""
        if not positions:
            return
        held = pl.DataFrame(  # referenced by name in the SQL below
            [[symbol, p.quantity, p.avg_entry_price] for symbol, p in positions.items()],
            schema={"symbol": pl.String, "quantity": pl.Float64, "avg_entry_price": pl.Float64},
            orient="row")
        con.execute(f"""delete from {POSITIONS} where account = ? and symbol in
                        (select symbol from held where quantity = 0)""", [self.account])
        con.execute(
            f"""insert into {POSITIONS} select ?, symbol, quantity, avg_entry_price from held
                where quantity <> 0
                on conflict (account, symbol) do update
                set quantity = excluded.quantity, avg_entry_price = excluded.avg_entry_price""",
            [self.account])

    def marks(self, con: duckdb.DuckDBPyConnection) -> dict[str, tuple[date, float]]:
        """The last known close of every symbol, with the session it is from."""
        rows = con.execute(f"select symbol, session, close from {MARKS} where account = ?",
                           [self.account]).fetchall()
        return {symbol: (session, close) for symbol, session, close in rows}

    def set_marks(self, con: duckdb.DuckDBPyConnection, session: date,
                  closes: dict[str, float]) -> None:
        if not closes:
            return
        incoming = pl.DataFrame(  # one statement: a statement per symbol cost 2 ms each
            {"symbol": list(closes), "close": list(closes.values())},
            schema={"symbol": pl.String, "close": pl.Float64})
        con.execute(
            f"""insert into {MARKS} select ?, symbol, ?, close from incoming
                on conflict (account, symbol) do update
                set session = excluded.session, close = excluded.close""",
            [self.account, session])


def _order_values(order: SimOrder) -> list:
    return [
        order.client_order_id, order.broker_order_id, order.seq, order.symbol, str(order.side),
        order.quantity, str(order.order_type), str(order.time_in_force), order.limit_price,
        order.stop_price, order.trail_percent, order.trail_amount, str(order.status),
        order.filled_quantity, order.avg_fill_price, order.reason, order.created_session,
        order.triggered, order.trail_reference, to_db_time(order.submitted_at),
        to_db_time(order.updated_at), order.parent_client_order_id, order.waiting_for_parent,
    ]


def _order_from_row(row: tuple) -> SimOrder:
    (cid, boid, seq, symbol, side, quantity, order_type, tif, limit_price, stop_price,
     trail_percent, trail_amount, status, filled, avg, reason, created, triggered, reference,
     submitted_at, updated_at, parent, waiting) = row
    return SimOrder(
        client_order_id=cid, broker_order_id=boid, seq=int(seq), symbol=symbol, side=Side(side),
        quantity=quantity, order_type=OrderType(order_type), time_in_force=TimeInForce(tif),
        limit_price=limit_price, stop_price=stop_price, trail_percent=trail_percent,
        trail_amount=trail_amount, status=OrderStatus(status), filled_quantity=filled,
        avg_fill_price=avg, reason=reason, created_session=created, triggered=bool(triggered),
        trail_reference=reference, submitted_at=from_db_time(submitted_at),
        updated_at=from_db_time(updated_at), parent_client_order_id=parent,
        waiting_for_parent=bool(waiting),
    )
