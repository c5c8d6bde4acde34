"""Emergency stop: cancel every open order at the broker, optionally close every position."""

from __future__ import annotations

from datetime import date

from trading_pipeline.brokers.base import Broker
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    Side,
    make_client_order_id,
)
from trading_pipeline.storage.ledger import Ledger


def emergency_stop(broker: Broker, ledger: Ledger, *, flatten: bool, session: date) -> str:
    canceled = 0
    for order in broker.open_orders():
        report = broker.cancel(order.client_order_id)
        if ledger.order(order.client_order_id) is not None:
            ledger.record_status(report)
        canceled += 1
    closed = 0
    if flatten:
        for position in broker.positions():
            if position.quantity == 0:
                continue
            side = Side.SELL if position.quantity > 0 else Side.BUY
            intent = OrderIntent(
                client_order_id=make_client_order_id("emergency", session, position.symbol, side,
                                                     OrderPurpose.FLATTEN),
                symbol=position.symbol, side=side, quantity=abs(position.quantity),
                session=session, strategy="emergency", purpose=OrderPurpose.FLATTEN,
            )
            # Flattening bypasses the kill switch on purpose: it only ever reduces risk.
            if ledger.record_intent(intent, broker.name, dry_run=False, status="submitting"):
                ledger.record_status(broker.submit(intent))
                closed += 1
    return f"{canceled} open orders canceled, {closed} positions sent to close"
