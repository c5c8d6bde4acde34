"""One session of the simulated market: working orders meet that session's bars.

Pure: takes the account's state and the bars, returns the new state, the fills and the orders
that changed. The paper simulator reads the state and writes the result in one transaction;
the backtest keeps the state in memory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from trading_pipeline.domain.execution import fills as fill_rules
from trading_pipeline.domain.execution.config import ExecutionConfig
from trading_pipeline.domain.execution.fills import Bar, WorkingOrder
from trading_pipeline.domain.execution.venue import Position, SimOrder
from trading_pipeline.domain.calendar import session_close, session_open
from trading_pipeline.domain.orders import QUANTITY_EPSILON, FillReport, OrderStatus, Side, TimeInForce


@dataclass(frozen=True)
class SessionOutcome:
    cash: float
    positions: dict[str, Position]  # only the symbols whose position changed
    fills: list[FillReport]
    orders: list[SimOrder]  # only the orders that changed


def apply_fill(position: Position | None, signed_quantity: float, price: float) -> Position:
    """The position after a fill. The average entry price moves only when the position grows;
    it resets to the fill price when the fill crosses through zero."""
    old_quantity = position.quantity if position else 0.0
    old_average = position.avg_entry_price if position else 0.0
    new_quantity = old_quantity + signed_quantity
    if abs(new_quantity) < QUANTITY_EPSILON:
        return Position(0.0, 0.0)
    if old_quantity == 0 or (old_quantity > 0) == (signed_quantity > 0):
        cost = abs(old_quantity) * old_average + abs(signed_quantity) * price
        return Position(new_quantity, cost / abs(new_quantity))
    if (old_quantity > 0) == (new_quantity > 0):
        return Position(new_quantity, old_average)
    return Position(new_quantity, price)


def intrabar_time(session: date) -> datetime:
    """When a fill that did not happen on the opening print is stamped: the middle of the
    session, since a daily bar cannot tell when in the day a price was reached."""
    start, end = session_open(session), session_close(session)
    return (start + (end - start) / 2).astimezone(UTC)


def process_session(
    session: date,
    bars: dict[str, Bar],
    orders: list[SimOrder],
    cash: float,
    positions: dict[str, Position],
    config: ExecutionConfig,
) -> SessionOutcome:
    """Orders meet the session's bars in submission order (earlier orders get a symbol's
    volume first); then DAY orders still open expire at the close."""
    book = _Book(session, cash, positions, config)
    changed_orders: list[SimOrder] = []
    latest = {o.client_order_id: o for o in orders}  # each order as it stands so far this session
    for order in sorted(orders, key=lambda o: o.seq):
        if order.created_session >= session:
            continue  # decided after this session's close at the earliest: never on its bars
        updated = order
        if order.waiting_for_parent:
            # a contingent stop comes after its entry (a later seq): it starts working on the
            # bar its entry fills on, and goes with an entry that ended unfilled
            updated = _contingent(order, latest.get(order.parent_client_order_id), book.closing)
            if updated.waiting_for_parent or not updated.status.is_open:
                if updated != order:
                    latest[order.client_order_id] = updated
                    changed_orders.append(updated)
                continue
        bar = bars.get(order.symbol)
        if bar is not None:
            result = fill_rules.step(_working(order), bar, config.slippage_bps)
            carried = result.order.triggered, result.order.trail_reference
            if carried != (updated.triggered, updated.trail_reference):  # most bars change neither
                updated = replace(updated, triggered=carried[0], trail_reference=carried[1])
            if result.match is not None:
                updated = book.execute(updated, result.match, bar)
        if updated.status.is_open and updated.time_in_force is TimeInForce.DAY:
            updated = replace(
                updated, status=OrderStatus.EXPIRED, updated_at=book.closing,
                reason=f"day order expired at the close of {session} with "
                       f"{updated.filled_quantity:g} of {updated.quantity:g} filled",
            )
        latest[order.client_order_id] = updated
        if updated != order:
            changed_orders.append(updated)
    return SessionOutcome(book.cash, book.changed_positions, book.fills, changed_orders)


def _contingent(order: SimOrder, parent: SimOrder | None, now: datetime) -> SimOrder:
    """A waiting stop after its entry's latest state: working once the entry has a fill,
    canceled when the entry ended without one (or is gone), still waiting otherwise."""
    if parent is not None and parent.filled_quantity > QUANTITY_EPSILON:
        return replace(order, waiting_for_parent=False)
    if parent is not None and parent.status.is_open:
        return order
    state = "ended without a fill" if parent is None else f"ended {parent.status} without a fill"
    return replace(order, status=OrderStatus.CANCELED, waiting_for_parent=False, updated_at=now,
                   reason=f"canceled: its entry {order.parent_client_order_id} {state}")


class _Book:
    """Cash, positions and each symbol's remaining volume while one session is processed."""

    def __init__(self, session: date, cash: float, positions: dict[str, Position],
                 config: ExecutionConfig):
        self.session = session
        self.cash = cash
        self.config = config
        self.held = dict(positions)
        self.changed_positions: dict[str, Position] = {}
        self.fills: list[FillReport] = []
        self.budgets: dict[str, float] = {}
        self.opening, self.midday, self.closing = _session_times(session)

    def execute(self, order: SimOrder, match: fill_rules.Match, bar: Bar) -> SimOrder:
        """Trade as much of `order` at `match` as the bar's volume (and, without shorting, the
        shares held) allow; returns the order afterwards."""
        symbol = order.symbol
        budget = self.budgets.setdefault(
            symbol, fill_rules.volume_budget(bar, self.config.max_volume_participation))
        quantity = fill_rules.tradable_quantity(order.remaining, budget, self.config.allow_fractional)
        position = self.held.get(symbol)
        if order.side is Side.SELL and not self.config.allow_short:
            # the shares may have gone since the order was accepted (sold by hand)
            owned = max(position.quantity if position else 0.0, 0.0)
            if owned <= QUANTITY_EPSILON:
                return replace(order, status=OrderStatus.CANCELED, updated_at=self.closing,
                               reason="canceled: no shares left to sell and short selling is "
                                      "not allowed in this account")
            quantity = min(quantity, owned)
        if quantity <= 0:
            return order
        self.budgets[symbol] = budget - quantity
        when = self.opening if match.at_open else self.midday
        fill = _fill(order, self.session, quantity, match.price, when, self.config)
        self.fills.append(fill)
        self.cash -= fill.signed_quantity * fill.price + fill.commission
        self.held[symbol] = self.changed_positions[symbol] = apply_fill(
            position, fill.signed_quantity, fill.price)
        return _with_fill(order, quantity, fill.price, when)


@functools.lru_cache(maxsize=8192)  # a session's hours never change; the calendar's lookup is slow
def _session_times(session: date) -> tuple[datetime, datetime, datetime]:
    """When fills of the session are stamped: at the open, intrabar, and at the close (UTC)."""
    return (session_open(session).astimezone(UTC), intrabar_time(session),
            session_close(session).astimezone(UTC))


def _working(order: SimOrder) -> WorkingOrder:
    return WorkingOrder(
        side=order.side, order_type=order.order_type, limit_price=order.limit_price,
        stop_price=order.stop_price, trail_percent=order.trail_percent,
        trail_amount=order.trail_amount, triggered=order.triggered,
        trail_reference=order.trail_reference,
    )


def _fill(order: SimOrder, session: date, quantity: float, price: float, when: datetime,
          config: ExecutionConfig) -> FillReport:
    return FillReport(
        # at most one fill per order per session: the session makes the id unique and stable
        fill_id=f"{order.broker_order_id}-{session:%Y%m%d}",
        client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
        quantity=quantity, price=price, filled_at=when,
        commission=fill_rules.commission(config, quantity, price),
        broker_order_id=order.broker_order_id,
    )


def _with_fill(order: SimOrder, quantity: float, price: float, when: datetime) -> SimOrder:
    filled = order.filled_quantity + quantity
    average = ((order.avg_fill_price or 0.0) * order.filled_quantity + price * quantity) / filled
    done = order.quantity - filled <= QUANTITY_EPSILON
    return replace(order, filled_quantity=filled, avg_fill_price=average, updated_at=when,
                   status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED)
