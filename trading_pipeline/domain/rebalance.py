"""Orders that move current positions to the target: sells first, then buys."""

from __future__ import annotations

from collections.abc import Mapping
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


def rebalance_orders(
    session: date,
    strategy: str,
    targets: pl.DataFrame,
    current: Mapping[str, float],
    prices: Mapping[str, float],
    min_order_value: float,
) -> list[OrderIntent]:
    """Market DAY orders for the difference between target and held shares.

    `targets`: symbol, target_shares. Symbols held but absent from the target are sold
    in full. Orders worth less than `min_order_value` are dropped, except a full exit
    (a small remainder should not stay held forever).
    """
    wanted = dict(zip(targets["symbol"].to_list(), targets["target_shares"].to_list()))
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
    # Sells first so their proceeds fund the buys.
    return sorted(intents, key=lambda i: (i.side is Side.BUY, i.symbol))
