"""Why the simulator would refuse an order: pure checks that return a reason or None.

Buying power is cash minus what working buy orders reserve. A buy reserves the worst price
it can be expected to pay: its limit for limit and stop-limit orders; otherwise the last close
(or the stop it triggers at, when that is higher) plus slippage; and its commission. A gap
beyond slippage can still take cash slightly below zero, as at a real broker.
"""

from __future__ import annotations

from trading_pipeline.brokers.simulator import matching
from trading_pipeline.brokers.simulator.config import SimulatorConfig
from trading_pipeline.brokers.simulator.store import Position, SimOrder
from trading_pipeline.domain.orders import OrderIntent, OrderType, Side


def worst_buy_price(order: OrderIntent | SimOrder, close: float, config: SimulatorConfig) -> float:
    """The highest price per share a buy is expected to pay, for reserving cash."""
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return float(order.limit_price)  # a limit order never pays more than its limit
    trigger = close
    if order.order_type is OrderType.STOP:
        trigger = max(close, float(order.stop_price))
    elif order.order_type is OrderType.TRAILING_STOP:
        trigger = matching.trailing_stop_level(Side.BUY, close, order.trail_percent, order.trail_amount)
    return matching.slipped(trigger, Side.BUY, config.slippage_bps)


def cash_needed(quantity: float, price: float, config: SimulatorConfig) -> float:
    return quantity * price + matching.commission(config, quantity, price)


def reserved_by_working_buys(open_orders: list[SimOrder], closes: dict[str, float],
                             config: SimulatorConfig) -> float:
    total = 0.0
    for order in open_orders:
        if order.side is Side.BUY and order.remaining > 0:
            close = closes.get(order.symbol, order.avg_fill_price or 0.0)
            total += cash_needed(order.remaining, worst_buy_price(order, close, config), config)
    return total


def shares_in_working_sells(open_orders: list[SimOrder], symbol: str) -> float:
    return sum(o.remaining for o in open_orders if o.side is Side.SELL and o.symbol == symbol)


def rejection_reason(
    intent: OrderIntent,
    *,
    closes_now: dict[str, float],
    all_closes: dict[str, float],
    cash: float,
    positions: dict[str, Position],
    open_orders: list[SimOrder],
    config: SimulatorConfig,
) -> str | None:
    """Why `intent` is refused, or None when it is accepted.

    `closes_now` holds the symbols traded in the last processed session; `all_closes` the last
    known close of every symbol ever seen (for valuing older working orders).
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
            matching.slipped(close, Side.BUY, config.slippage_bps)
        needed = cash_needed(needs_cash_for, price, config)
        reserved = reserved_by_working_buys(open_orders, all_closes, config)
        available_cash = cash - reserved
        if needed > available_cash + 1e-9:
            return (f"insufficient buying power: {intent.side} {needs_cash_for:g} {symbol} needs about "
                    f"${needed:,.2f} (${price:,.2f} a share with slippage, plus commission) but "
                    f"${max(available_cash, 0.0):,.2f} is available (cash ${cash:,.2f} minus "
                    f"${reserved:,.2f} reserved by working buy orders)")
    return None
