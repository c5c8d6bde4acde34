"""The adoption record: an account that already held positions, taken on as the ledger's
opening state, once.

`account_adoptions` says who adopted the account, when and why; `adopted_positions`,
`adopted_orders` and `adopted_fills` hold what the broker showed then. Reconciliation starts
from the adopted positions, and fills the broker reported before the adoption are already in
them (never counted again, never a break). All of it is written in one transaction and never
changed afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderStatusReport,
    PositionReport,
)
from trading_pipeline.storage.warehouse import Warehouse

ADOPTED_STRATEGY = "adopted"  # ledger_orders.strategy of orders found open at adoption

ADOPTION_DDL = """
create table if not exists account_adoptions (
    account varchar primary key,  -- one adoption per account, ever
    session date not null,        -- the account's latest closed session when it was adopted
    adopted_at timestamp not null,
    operator varchar not null,
    reason varchar not null,
    run_id varchar,
    cash double not null,
    equity double not null,
    buying_power double not null,
    cancel_foreign_orders boolean not null,
    notes varchar not null        -- json list: what was done and left alone, in words
);
create table if not exists adopted_positions (
    account varchar not null,
    symbol varchar not null,
    quantity double not null,
    avg_entry_price double,
    market_price double
);
create table if not exists adopted_orders (
    account varchar not null,
    client_order_id varchar not null,
    broker_order_id varchar,
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    order_type varchar not null,
    status varchar not null,      -- after the adoption (canceled when the operator asked)
    filled_quantity double not null,
    action varchar not null       -- 'left alone' | 'canceled'
);
create table if not exists adopted_fills (
    account varchar not null,
    fill_id varchar not null,
    client_order_id varchar not null,
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    price double not null,
    filled_at timestamp not null
);
"""


@dataclass(frozen=True)
class AdoptedOrder:
    report: OrderStatusReport
    action: str  # 'left alone' | 'canceled'


@dataclass(frozen=True)
class OpeningState:
    """What reconciliation starts from for an adopted account."""

    positions: dict[str, float]  # symbol -> quantity held when adopted
    fill_ids: frozenset[str]  # fills the broker reported before the adoption: in `positions` already


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def is_adopted(warehouse: Warehouse, account: str) -> bool:
    return adoption(warehouse, account) is not None


def adoption(warehouse: Warehouse, account: str) -> dict | None:
    """The adoption row of `account` (notes as a tuple), or None."""
    if not warehouse.table_exists("account_adoptions"):
        return None
    rows = warehouse.query("select * from account_adoptions where account = ?", [account])
    if rows.is_empty():
        return None
    row = rows.row(0, named=True)
    return {**row, "notes": tuple(json.loads(row["notes"]))}


def adopted_positions(warehouse: Warehouse, account: str) -> pl.DataFrame:
    if not warehouse.table_exists("adopted_positions"):
        return pl.DataFrame()
    return warehouse.query("select symbol, quantity, avg_entry_price, market_price from adopted_positions "
                           "where account = ? order by symbol", [account])


def adopted_orders(warehouse: Warehouse, account: str) -> pl.DataFrame:
    if not warehouse.table_exists("adopted_orders"):
        return pl.DataFrame()
    return warehouse.query("select * exclude (account) from adopted_orders where account = ? "
                           "order by client_order_id", [account])


def opening_state(warehouse: Warehouse, account: str) -> OpeningState | None:
    """The adopted positions and pre-adoption fill ids of `account`; None if never adopted."""
    if not is_adopted(warehouse, account):
        return None
    positions = adopted_positions(warehouse, account)
    fills = warehouse.query("select fill_id from adopted_fills where account = ?", [account])
    return OpeningState(dict(zip(positions["symbol"].to_list(), positions["quantity"].to_list())),
                        frozenset(fills["fill_id"].to_list()))


def ledger_has_traded(warehouse: Warehouse, account: str) -> bool:
    """Whether the ledger holds anything of `account`'s: a plan, an order or an account snapshot."""
    return bool(warehouse.scalar(
        """select (select count(*) from session_plans where account = ?)
                + (select count(*) from ledger_orders where broker = ?)
                + (select count(*) from ledger_account where broker = ?)""", [account, account, account]))


def record_adoption(warehouse: Warehouse, account: str, *, session: date, operator: str, reason: str,
                    run_id: str | None, snapshot: AccountSnapshot, positions: Sequence[PositionReport],
                    orders: Sequence[AdoptedOrder], fills: Iterable[FillReport],
                    cancel_foreign_orders: bool, notes: Sequence[str]) -> None:
    """Write the adoption whole, in one transaction. The orders found open become ledger orders
    (strategy 'adopted'), so reconciliation follows them and their fills are not foreign; fills
    of those orders from before the adoption go into `ledger_fills` too (their filled quantity
    must match the broker's), and every pre-adoption fill id is kept in `adopted_fills`.
    Raises ValueError if the account is adopted already or the ledger already trades it."""
    now = _now()
    fills = list(fills)
    order_ids = {o.report.client_order_id for o in orders}
    with warehouse.transaction() as con:
        con.execute(ADOPTION_DDL)
        if con.execute("select 1 from account_adoptions where account = ?", [account]).fetchone():
            raise ValueError(f"account {account!r} was adopted already")
        if con.execute("""select (select count(*) from session_plans where account = ?)
                                + (select count(*) from ledger_orders where broker = ?)""",
                       [account, account]).fetchone()[0]:
            raise ValueError(f"the ledger already trades account {account!r}")
        con.execute("insert into account_adoptions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [account, session, now, operator, reason, run_id, snapshot.cash, snapshot.equity,
                     snapshot.buying_power, cancel_foreign_orders, json.dumps(list(notes))])
        for p in positions:
            con.execute("insert into adopted_positions values (?, ?, ?, ?, ?)",
                        [account, p.symbol, p.quantity, p.avg_entry_price, p.market_price])
        for adopted in orders:
            o = adopted.report
            con.execute("insert into adopted_orders values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [account, o.client_order_id, o.broker_order_id, o.symbol, str(o.side), o.quantity,
                         str(o.order_type), str(o.status), o.filled_quantity, adopted.action])
            con.execute(
                """insert into ledger_orders (client_order_id, strategy, session, broker, symbol, side,
                   quantity, order_type, time_in_force, purpose, dry_run, status, filled_quantity,
                   avg_fill_price, broker_order_id, reason, created_at, updated_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?, 'gtc', 'rebalance', false, ?, ?, ?, ?, ?, ?, ?)""",
                [o.client_order_id, ADOPTED_STRATEGY, session, account, o.symbol, str(o.side), o.quantity,
                 str(o.order_type), str(o.status), o.filled_quantity, o.avg_fill_price, o.broker_order_id,
                 f"found open at the broker when the account was adopted ({adopted.action})", now, now])
            con.execute("insert into ledger_order_events values (?, ?, ?, ?, ?, ?)",
                        [o.client_order_id, now, str(o.status), o.filled_quantity, o.avg_fill_price,
                         "adopted"])
        for f in fills:
            con.execute("insert into adopted_fills values (?, ?, ?, ?, ?, ?, ?, ?)",
                        [account, f.fill_id, f.client_order_id, f.symbol, str(f.side), f.quantity, f.price,
                         _naive_utc(f.filled_at)])
            if f.client_order_id in order_ids:
                con.execute("insert into ledger_fills values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [f.fill_id, f.client_order_id, account, f.symbol, str(f.side), f.quantity,
                             f.price, f.commission, _naive_utc(f.filled_at), session])
