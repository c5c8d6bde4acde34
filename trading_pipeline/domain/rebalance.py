"""Orders that move current positions to the target: sells first, then buys."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import date

import polars as pl

from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    OrderType,
    Side,
    TimeInForce,
    make_client_order_id,
)


# Headroom over the last close when checking a buy against buying power: the open can gap
# and the broker adds slippage and commission.
BUY_COST_BUFFER = 0.01


def rebalance_orders(
    session: date,
    strategy: str,
    targets: pl.DataFrame,
    current: Mapping[str, float],
    prices: Mapping[str, float],
    min_order_value: float,
    buying_power: float = float("inf"),
) -> list[OrderIntent]:
    """Market DAY orders for the difference between target and held shares.

    `targets`: symbol, target_shares (best first). Symbols held but absent from the target
    are sold in full. Orders worth less than `min_order_value` are dropped, except a full
    exit (a small remainder should not stay held forever). Buys never exceed `buying_power`:
    sells fill only at the next open, so their proceeds cannot fund today's buys at a broker;
    buys are cut, best target first, and the rest of the target is reached on later sessions.
    """
    wanted = dict(zip(targets["symbol"].to_list(), targets["target_shares"].to_list()))
    priority = {symbol: rank for rank, symbol in enumerate(targets["symbol"].to_list())}
    intents: list[OrderIntent] = []
    for symbol in sorted(set(wanted) | {s for s, q in current.items() if q}):
        delta = wanted.get(symbol, 0.0) - current.get(symbol, 0.0)
        if abs(delta) < 1e-9:
            continue
        side = Side.BUY if delta > 0 else Side.SELL
        full_exit = symbol not in wanted
        price = prices.get(symbol)
        if price is None and not full_exit:
            continue  # nothing to size a trade against: skip, never guess
        if not full_exit and abs(delta) * price < min_order_value:
            continue
        intents.append(
            OrderIntent(
                client_order_id=make_client_order_id(
                    strategy, session, symbol, side, OrderPurpose.REBALANCE
                ),
                symbol=symbol,
                side=side,
                quantity=abs(delta),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.DAY,
                session=session,
                strategy=strategy,
                purpose=OrderPurpose.REBALANCE,
            )
        )
    sells = sorted((i for i in intents if i.side is Side.SELL), key=lambda i: i.symbol)
    buys = sorted((i for i in intents if i.side is Side.BUY), key=lambda i: priority[i.symbol])
    return sells + _within_buying_power(buys, prices, buying_power, min_order_value)


def _within_buying_power(buys: list[OrderIntent], prices: Mapping[str, float],
                         buying_power: float, min_order_value: float) -> list[OrderIntent]:
    kept: list[OrderIntent] = []
    left = buying_power
    for order in buys:
        unit_cost = prices[order.symbol] * (1 + BUY_COST_BUFFER)
        affordable = left / unit_cost
        quantity = order.quantity if affordable >= order.quantity else float(math.floor(affordable))
        if quantity <= 0 or quantity * prices[order.symbol] < min_order_value:
            continue
        kept.append(order if quantity == order.quantity else replace(order, quantity=quantity))
        left -= quantity * unit_cost
    return kept
