"""The built-in paper broker: the `Broker` protocol on a simulated market kept in the warehouse.

Time only moves through `advance_to(session)`. The simulator's clock is the last session whose
bars it has processed; an order submitted while the clock is at D was decided after D's close
and can fill only on the bars of sessions after D. Between sessions the simulator's "now" is
the close of its clock session, which stamps submissions, cancels and expiries.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

import duckdb
import polars as pl

from trading_pipeline.brokers.base import BrokerError, BrokerUnavailable, OrderNotFound
from trading_pipeline.brokers.simulator.config import SimulatorConfig
from trading_pipeline.brokers.simulator.store import AccountState, SimStore
from trading_pipeline.domain.calendar import (
    is_session,
    next_session,
    previous_session,
    sessions_between,
)
from trading_pipeline.domain.execution import (
    Bar,
    SimOrder,
    WorkingBook,
    account_figures,
    cancel_order,
    close_utc,
    process_session,
)
from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatusReport,
    PositionReport,
)
from trading_pipeline.storage.warehouse import Warehouse

BAR_COLUMNS = ("symbol", "open", "high", "low", "close", "volume")


class SimulatorClockError(BrokerError):
    """The simulator's clock does not allow this call yet (no bars processed, or an order
    decided after a close the simulator has not reached)."""


class BarDataError(BrokerError):
    """`bars_for_session` returned bars the simulator cannot trade on."""


def _warehouse_errors(method):
    """A warehouse locked by another process is a broker that does not answer."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            raise BrokerUnavailable(
                f"the paper simulator's warehouse {self.warehouse.path.name} is locked by another "
                "process; retry when that run has finished"
            ) from error

    return wrapper


class PaperSimulator:
    """A paper broker whose orders, fills, positions, cash and clock persist in `sim_` tables.

    `bars_for_session(D)` returns session D's bars: columns symbol, open, high, low, close,
    volume (other columns are ignored). A new PaperSimulator on the same warehouse and account
    continues where the last one stopped; `config.initial_cash` only seeds a new account.
    """

    name = "simulator"

    @_warehouse_errors
    def __init__(
        self,
        warehouse: Warehouse,
        bars_for_session: Callable[[date], pl.DataFrame],
        config: SimulatorConfig = SimulatorConfig(),
        account: str = "paper",
    ):
        if not account:
            raise ValueError("account must be a non-empty name, e.g. 'paper'")
        self.warehouse = warehouse
        self.config = config
        self.account_name = account
        self._bars_for_session = bars_for_session
        self._store = SimStore(warehouse, account)
        self._store.create(config.initial_cash)
        # What `submit` checks an order against (marks, positions, working orders), kept with the
        # account state it was read at: reused only while that state is unchanged, because every
        # write bumps it. Re-reading every working order per submit grew with the square of orders.
        self._working: tuple[AccountState, WorkingBook] | None = None

    def __repr__(self) -> str:
        return f"PaperSimulator({self.warehouse!r}, account={self.account_name!r})"

    # -- the market clock ------------------------------------------------------

    @property
    @_warehouse_errors
    def clock(self) -> date | None:
        """The last session whose bars were processed; None before the first `advance_to`."""
        with self.warehouse.connect() as con:
            return self._store.account_state(con).clock

    @_warehouse_errors
    def advance_to(self, session: date) -> list[date]:
        """Process every session after the clock up to `session`, in order; returns them.

        Each session is one transaction: fill working orders on its bars, expire DAY orders
        at its close, ratchet trailing stops, move the clock. A brand-new simulator only
        reads the bars of `session` (for prices) and sets its clock there. Going backwards,
        or to the clock itself, changes nothing.
        """
        with self.warehouse.connect() as con:  # one connection, one transaction per session
            clock = self._store.account_state(con).clock
            if clock is None:
                start = session if is_session(session) else previous_session(session)
                bars = self._bars(start)
                with _transaction(con):
                    if self._store.account_state(con).clock is not None:
                        return []  # another simulator on this account started it meanwhile
                    self._store.set_marks(con, start, {s: b.close for s, b in bars.items()})
                    self._store.set_clock(con, start)
                    self._store.mark_changed(con)
                return [start]
            processed = []
            for day in sessions_between(next_session(clock), session):
                bars = self._bars(day)  # outside the transaction: the source may read the warehouse
                with _transaction(con):
                    state = self._store.account_state(con)
                    if state.clock is not None and state.clock >= day:
                        continue  # another simulator on this account got there first
                    outcome = process_session(day, bars, self._store.open_orders(con), state.cash,
                                              self._store.positions(con), self.config)
                    self._store.update_orders(con, outcome.orders)
                    self._store.insert_fills(con, outcome.fills, day)
                    self._store.set_positions(con, outcome.positions)
                    self._store.set_cash(con, outcome.cash)
                    self._store.set_marks(con, day, {s: b.close for s, b in bars.items()})
                    self._store.set_clock(con, day)
                    self._store.mark_changed(con)
                processed.append(day)
            return processed

    @_warehouse_errors
    def last_prices(self) -> dict[str, float]:
        """The last known close of every symbol the simulator has seen."""
        with self.warehouse.connect() as con:
            return {s: close for s, (_, close) in self._store.marks(con).items()}

    # -- the Broker protocol ---------------------------------------------------

    attaches_stops = True  # a stop sent with its entry waits for the entry's fill (contingent)

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent) -> tuple[OrderStatusReport, OrderStatusReport]:
        """The entry, then its stop as an order contingent on it: the stop waits, untouched by
        the bars, until the entry fills (then it works on that same bar), and is canceled if
        the entry ends unfilled. Both in one transaction; each is idempotent by its client order id."""
        entry_report, stop_report = self.submit_many([entry, stop], {stop.client_order_id: entry.client_order_id})
        return entry_report, stop_report

    def submit(self, intent: OrderIntent, parent_client_order_id: str | None = None) -> OrderStatusReport:
        attached = {intent.client_order_id: parent_client_order_id} if parent_client_order_id else None
        return self.submit_many([intent], attached)[0]

    @_warehouse_errors
    def submit_many(self, intents: Sequence[OrderIntent],
                    attached_to: Mapping[str, str] | None = None) -> list[OrderStatusReport]:
        """Several orders in one transaction, taken in order exactly as `submit` takes each (a
        later one is checked against the earlier ones already working); `attached_to` maps a
        stop's client order id to its entry's (see `submit_with_stop`). Idempotent by client
        order id: an order this account has already is answered as it stands and taken again
        by nobody. All or nothing: an error leaves the books as they were, so after a crash
        at any point each order is either here, answered, or not here at all."""
        attached_to = attached_to or {}
        kept, self._working = self._working, None  # a failed transaction leaves no kept view
        with self.warehouse.transaction() as con:
            state = self._store.account_state(con)
            known = self._store.orders(con, [i.client_order_id for i in intents])
            new = [i for i in intents if i.client_order_id not in known]
            if not new:  # all submitted before: the same orders, never second ones
                self._working = kept  # nothing changed
                return [known[i.client_order_id].report() for i in intents]
            clock = self._require_clock(state.clock)
            for intent in new:
                if intent.session is not None and intent.session > clock:
                    raise SimulatorClockError(
                        f"order {intent.client_order_id} was decided after the close of "
                        f"{intent.session} but the simulator has only processed bars up to {clock}; "
                        f"call advance_to({intent.session}) first, or it could fill on bars that "
                        "were known when it was decided"
                    )
            book = kept[1] if kept is not None and kept[0] == state else self._working_book(con, state)
            accepted: list[SimOrder] = []
            for intent in intents:
                if intent.client_order_id in known:
                    continue
                parent = self._parent(con, intent, attached_to.get(intent.client_order_id), known, book)
                order = book.accept(intent, number=state.order_count + len(accepted) + 1,
                                    account=self.account_name, parent=parent)
                known[order.client_order_id] = order
                accepted.append(order)
            self._store.insert_orders(con, accepted)
            after = self._store.count_new_orders(con, len(accepted))
        # committed: what this call changed is known without reading it back
        self._working = (after, book)
        return [known[i.client_order_id].report() for i in intents]

    def _working_book(self, con, state: AccountState) -> WorkingBook:
        return WorkingBook(clock=state.clock, marks=self._store.marks(con), cash=state.cash,
                           positions=self._store.positions(con), open_orders=self._store.open_orders(con),
                           config=self.config)

    def _parent(self, con, stop: OrderIntent, parent_client_order_id: str | None,
                known: dict[str, SimOrder], book: WorkingBook) -> SimOrder | None:
        if parent_client_order_id is None:
            return None
        parent = (known.get(parent_client_order_id) or book.order(parent_client_order_id)
                  or self._store.order(con, parent_client_order_id))
        if parent is None:
            raise LookupError(f"stop {stop.client_order_id} is attached to order "
                              f"{parent_client_order_id}, which this account does not have: "
                              "submit the entry first")
        return parent

    @_warehouse_errors
    def cancel(self, client_order_id: str) -> OrderStatusReport:
        with self.warehouse.transaction() as con:
            order = self._store.order(con, client_order_id)
            if order is None:
                raise OrderNotFound(f"the paper simulator has no order {client_order_id!r}")
            if not order.status.is_open:
                return order.report()  # finished orders stay as they ended
            canceled = cancel_order(order, self._store.account_state(con).clock)
            self._store.update_orders(con, [canceled])
            self._store.mark_changed(con)
            return canceled.report()

    @_warehouse_errors
    def order_status(self, client_order_id: str) -> OrderStatusReport | None:
        with self.warehouse.connect() as con:
            order = self._store.order(con, client_order_id)
        return None if order is None else order.report()

    @_warehouse_errors
    def open_orders(self) -> list[OrderStatusReport]:
        with self.warehouse.connect() as con:
            return [o.report() for o in self._store.open_orders(con)]

    @_warehouse_errors
    def fills(self, since: datetime) -> list[FillReport]:
        """Fills stamped at or after `since` (a naive datetime is read as UTC)."""
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        with self.warehouse.connect() as con:
            return self._store.fills(con, since)

    @_warehouse_errors
    def positions(self) -> list[PositionReport]:
        """Non-zero positions, valued at the last processed close."""
        with self.warehouse.connect() as con:
            held = self._store.positions(con)
            marks = self._store.marks(con)
        return [
            PositionReport(symbol=symbol, quantity=p.quantity, avg_entry_price=p.avg_entry_price,
                           market_price=marks[symbol][1] if symbol in marks else None)
            for symbol, p in sorted(held.items())
            if p.quantity != 0
        ]

    @_warehouse_errors
    def account(self) -> AccountSnapshot:
        """Cash; equity = cash + positions at the last processed close; buying power = cash
        minus what working buys reserve (never below zero)."""
        with self.warehouse.connect() as con:
            state = self._store.account_state(con)
            held = self._store.positions(con)
            marks = self._store.marks(con)
            open_orders = self._store.open_orders(con)
        figures = account_figures(state.cash, held, {s: close for s, (_, close) in marks.items()},
                                  open_orders, self.config)
        return AccountSnapshot(
            cash=figures.cash,
            equity=figures.equity,
            buying_power=figures.buying_power,
            at=close_utc(state.clock) if state.clock else None,
            extra={"market_value": figures.market_value,
                   "reserved_by_open_buys": figures.reserved_by_open_buys,
                   "initial_cash": state.initial_cash},
        )

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own warehouse connection."""

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _require_clock(clock: date | None) -> date:
        if clock is None:
            raise SimulatorClockError(
                "the paper simulator has not processed any bars yet, so it has no prices to check "
                "orders against; call advance_to(session) first"
            )
        return clock

    def _bars(self, session: date) -> dict[str, Bar]:
        frame = self._bars_for_session(session)
        return bars_by_symbol(frame, session)


def bars_by_symbol(frame: pl.DataFrame, session: date) -> dict[str, Bar]:
    """One validated bar per symbol, or a `BarDataError` that names the problem."""
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise BarDataError(
            f"bars for {session} lack the columns {missing}: bars_for_session must return "
            f"{', '.join(BAR_COLUMNS)}"
        )
    if frame.is_empty():
        raise BarDataError(
            f"no bars for session {session}: the simulator cannot move its clock past a session "
            "it has no prices for; load the market data for that session first"
        )
    bars: dict[str, Bar] = {}
    for row in frame.select(BAR_COLUMNS).iter_rows():
        symbol, *numbers = row
        if symbol in bars:
            raise BarDataError(f"bars for {session} hold more than one row for {symbol}")
        prices, volume = numbers[:4], numbers[4]
        if any(p is None or not math.isfinite(p) or p <= 0 for p in prices) or \
                volume is None or not math.isfinite(volume) or volume < 0:
            raise BarDataError(
                f"bar of {symbol} on {session} is unusable (open, high, low, close, volume = "
                f"{numbers}): prices must be positive and volume zero or more"
            )
        bars[symbol] = Bar(*(float(n) for n in numbers))
    return bars


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")

