"""What the simulated venue accepts, and what an account is worth: pure functions.

Why an order would be refused returns a reason or None. Buying power is cash minus what
working buy orders reserve. A buy reserves the worst price it can be expected to pay: its limit
for limit and stop-limit orders; otherwise the last close (or the stop it triggers at, when
that is higher) plus slippage; and its commission. A gap beyond slippage can still take cash
slightly below zero, as at a real broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

from trading_pipeline.domain.execution import fills as fill_rules
from trading_pipeline.domain.execution.config import ExecutionConfig
from trading_pipeline.domain.execution.venue import Position, SimOrder, close_utc
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side


def worst_buy_price(order: OrderIntent | SimOrder, close: float, config: ExecutionConfig) -> float:
    """The highest price per share a buy is expected to pay, for reserving cash."""
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return float(order.limit_price)  # a limit order never pays more than its limit
    trigger = close
    if order.order_type is OrderType.STOP:
        trigger = max(close, float(order.stop_price))
    elif order.order_type is OrderType.TRAILING_STOP:
        trigger = fill_rules.trailing_stop_level(Side.BUY, close, order.trail_percent, order.trail_amount)
    return fill_rules.slipped(trigger, Side.BUY, config.slippage_bps)


def cash_needed(quantity: float, price: float, config: ExecutionConfig) -> float:
    return quantity * price + fill_rules.commission(config, quantity, price)


def reserved_by_working_buys(open_orders: list[SimOrder], closes: dict[str, float],
                             config: ExecutionConfig) -> float:
    total = 0.0
    for order in open_orders:
        if order.side is Side.BUY and order.remaining > 0:
            close = closes.get(order.symbol, order.avg_fill_price or 0.0)
            total += cash_needed(order.remaining, worst_buy_price(order, close, config), config)
    return total


def shares_in_working_sells(open_orders: list[SimOrder], symbol: str) -> float:
    """Shares that working sells may sell; a stop still waiting for its entry sells only the
    shares that entry will buy, so it commits none of those held now."""
    return sum(o.remaining for o in open_orders
               if o.side is Side.SELL and o.symbol == symbol and not o.waiting_for_parent)


def rejection_reason(
    intent: OrderIntent,
    *,
    closes_now: dict[str, float],
    all_closes: dict[str, float],
    cash: float,
    positions: dict[str, Position],
    open_orders: list[SimOrder],
    config: ExecutionConfig,
    reserved: float | None = None,
    committed: float | None = None,
) -> str | None:
    """Why `intent` is refused, or None when it is accepted.

    `closes_now` holds the symbols traded in the last processed session; `all_closes` the last
    known close of every symbol ever seen (for valuing older working orders). `reserved` and
    `committed`, when given, are what `reserved_by_working_buys(open_orders, all_closes, config)`
    and `shares_in_working_sells(open_orders, intent.symbol)` return (a `WorkingBook` keeps them
    as running totals instead of summing every working order again).
    """
    symbol, quantity = intent.symbol, intent.quantity
    if not quantity > 0:  # OrderIntent refuses these already; a broker checks anyway
        return f"quantity must be positive, got {quantity}"
    if not config.allow_fractional and quantity != int(quantity):
        return (f"fractional quantity {quantity:g} of {symbol}: this account trades whole shares "
                "only (allow_fractional is off)")
    close = closes_now.get(symbol)
    if close is None:
        return f"unknown symbol {symbol}: it had no bar in the last session the simulator processed"

    needs_cash_for = quantity if intent.side is Side.BUY else 0.0
    if intent.side is Side.SELL:
        position = positions.get(symbol)
        held = position.quantity if position else 0.0
        if committed is None:
            committed = shares_in_working_sells(open_orders, symbol)
        available = max(held - committed, 0.0)
        if quantity > available + 1e-9:
            if not config.allow_short:
                return (f"cannot sell {quantity:g} {symbol}: {held:g} held, {committed:g} already in "
                        f"working sell orders, so {available:g} can be sold; short selling is not "
                        "allowed in this account")
            needs_cash_for = quantity - available  # a short is margined like a purchase

    if needs_cash_for > 0:
        price = worst_buy_price(intent, close, config) if intent.side is Side.BUY else \
            fill_rules.slipped(close, Side.BUY, config.slippage_bps)
        needed = cash_needed(needs_cash_for, price, config)
        if reserved is None:
            reserved = reserved_by_working_buys(open_orders, all_closes, config)
        available_cash = cash - reserved
        if needed > available_cash + 1e-9:
            return (f"insufficient buying power: {intent.side} {needs_cash_for:g} {symbol} needs about "
                    f"${needed:,.2f} (${price:,.2f} a share with slippage, plus commission) but "
                    f"${max(available_cash, 0.0):,.2f} is available (cash ${cash:,.2f} minus "
                    f"${reserved:,.2f} reserved by working buy orders)")
    return None


def accept_order(
    intent: OrderIntent,
    *,
    number: int,
    account: str,
    clock: date,
    marks: Mapping[str, tuple[date, float]],
    cash: float,
    positions: dict[str, Position],
    open_orders: list[SimOrder],
    config: ExecutionConfig,
    parent: SimOrder | None = None,
) -> SimOrder:
    """The venue's order for `intent`, submitted while the clock is at `clock`: working (NEW)
    or REJECTED with the reason. `number` is the account's next order number; `marks` holds
    each symbol's last known close with the session it is from. With `parent` (just accepted),
    `intent` is a sell stop contingent on it: it waits for the parent's fill and may sell only
    what the parent buys."""
    if parent is None:
        reason = rejection_reason(
            intent,
            closes_now={s: close for s, (day, close) in marks.items() if day == clock},
            all_closes={s: close for s, (_, close) in marks.items()},
            cash=cash, positions=positions, open_orders=open_orders, config=config,
        )
    else:
        reason = contingent_rejection_reason(intent, parent, config)
    return _venue_order(intent, reason, number=number, account=account, clock=clock, marks=marks,
                        parent=parent)


def _venue_order(intent: OrderIntent, reason: str | None, *, number: int, account: str, clock: date,
                 marks: Mapping[str, tuple[date, float]], parent: SimOrder | None) -> SimOrder:
    now = close_utc(clock)
    trailing = intent.order_type is OrderType.TRAILING_STOP
    return SimOrder(
        client_order_id=intent.client_order_id,
        broker_order_id=f"{account}-{number:06d}",
        seq=number, symbol=intent.symbol, side=intent.side, quantity=float(intent.quantity),
        order_type=intent.order_type, time_in_force=intent.time_in_force,
        limit_price=intent.limit_price, stop_price=intent.stop_price,
        trail_percent=intent.trail_percent, trail_amount=intent.trail_amount,
        status=OrderStatus.REJECTED if reason else OrderStatus.NEW,
        filled_quantity=0.0, avg_fill_price=None, reason=reason, created_session=clock,
        triggered=False,
        # a trailing stop starts from the last close: the best price while it existed
        trail_reference=marks[intent.symbol][1] if trailing and not reason else None,
        submitted_at=now, updated_at=now,
        parent_client_order_id=parent.client_order_id if parent is not None else None,
        waiting_for_parent=parent is not None and not reason,
    )


class WorkingBook:
    """What the venue checks new orders against (marks, cash, positions, working orders), kept
    up to date as orders are accepted one after another: the same answers as `accept_order`
    given the working orders so far, without summing all of them again for every order (that
    grew with the square of a session's orders). The running totals add each order's share in
    the order `reserved_by_working_buys` and `shares_in_working_sells` would, so every figure,
    and every refusal's message, is the same float."""

    def __init__(self, *, clock: date, marks: Mapping[str, tuple[date, float]], cash: float,
                 positions: dict[str, Position], open_orders: list[SimOrder] | tuple[SimOrder, ...],
                 config: ExecutionConfig):
        self.clock, self.marks, self.cash, self.positions, self.config = clock, marks, cash, positions, config
        self.open_orders: list[SimOrder] = []
        self._closes_now = {s: close for s, (day, close) in marks.items() if day == clock}
        self._all_closes = {s: close for s, (_, close) in marks.items()}
        self._reserved = 0.0
        self._committed: dict[str, float] = {}
        self._by_id: dict[str, SimOrder] = {}
        for order in open_orders:
            self._add(order)

    def order(self, client_order_id: str) -> SimOrder | None:
        """A working order, or one accepted (or refused) by this book."""
        return self._by_id.get(client_order_id)

    def accept(self, intent: OrderIntent, *, number: int, account: str,
               parent: SimOrder | None = None) -> SimOrder:
        """`accept_order` for `intent` against this book; an accepted order joins it."""
        if parent is None:
            reason = rejection_reason(
                intent, closes_now=self._closes_now, all_closes=self._all_closes, cash=self.cash,
                positions=self.positions, open_orders=self.open_orders, config=self.config,
                reserved=self._reserved, committed=self._committed.get(intent.symbol, 0))
        else:
            reason = contingent_rejection_reason(intent, parent, self.config)
        order = _venue_order(intent, reason, number=number, account=account, clock=self.clock,
                             marks=self.marks, parent=parent)
        if order.status.is_open:
            self._add(order)
        self._by_id[order.client_order_id] = order
        return order

    def _add(self, order: SimOrder) -> None:
        self.open_orders.append(order)
        self._by_id[order.client_order_id] = order
        # one term of each sum, in working-order sequence, exactly as the whole sums add them
        if order.side is Side.BUY and order.remaining > 0:
            close = self._all_closes.get(order.symbol, order.avg_fill_price or 0.0)
            self._reserved += cash_needed(order.remaining, worst_buy_price(order, close, self.config),
                                          self.config)
        if order.side is Side.SELL and not order.waiting_for_parent:
            self._committed[order.symbol] = self._committed.get(order.symbol, 0) + order.remaining


def contingent_rejection_reason(intent: OrderIntent, parent: SimOrder, config: ExecutionConfig) -> str | None:
    """Why a stop attached to `parent` is refused, or None."""
    if parent.status is OrderStatus.REJECTED:
        return f"its entry {parent.client_order_id} was rejected: {parent.reason}"
    if intent.side is Side.BUY or parent.side is not Side.BUY or intent.symbol != parent.symbol:
        return (f"an attached order must sell the {parent.symbol} shares its entry buys; "
                f"got {intent.side} {intent.symbol} on {parent.side} {parent.symbol}")
    if intent.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP):
        return f"an attached order is a protective stop; got {intent.order_type}"
    if intent.quantity > parent.quantity + 1e-9:
        return f"an attached stop for {intent.quantity:g} shares exceeds its entry's {parent.quantity:g}"
    if not config.allow_fractional and intent.quantity != int(intent.quantity):
        return f"fractional quantity {intent.quantity:g}: this account trades whole shares only"
    return None


def cancel_order(order: SimOrder, clock: date | None) -> SimOrder:
    """`order` after a cancel request: finished orders stay as they ended."""
    if not order.status.is_open:
        return order
    return replace(order, status=OrderStatus.CANCELED, reason="canceled by request",
                   updated_at=close_utc(clock) if clock else order.updated_at)


@dataclass(frozen=True, slots=True)
class AccountFigures:
    cash: float
    equity: float  # cash + positions at their last known close
    buying_power: float  # cash minus what working buys reserve, never below zero
    market_value: float
    reserved_by_open_buys: float


def account_figures(cash: float, positions: Mapping[str, Position], closes: Mapping[str, float],
                    open_orders: list[SimOrder], config: ExecutionConfig) -> AccountFigures:
    """The account valued at `closes` (each symbol's last known close; a symbol never priced
    is valued at its entry price). Positions are summed in symbol order, so the figure is the
    same float however the caller keeps them."""
    market_value = sum(positions[s].quantity * closes.get(s, positions[s].avg_entry_price)
                       for s in sorted(positions))
    reserved = reserved_by_working_buys(open_orders, dict(closes), config)
    return AccountFigures(cash=cash, equity=cash + market_value,
                          buying_power=max(cash - reserved, 0.0), market_value=market_value,
                          reserved_by_open_buys=reserved)
