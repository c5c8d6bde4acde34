"""The simulated venue's state types: an order as the venue keeps it, and a position."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from trading_pipeline.domain.calendar import session_close
from trading_pipeline.domain.orders import (
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)


@dataclass(frozen=True, slots=True)
class SimOrder:
    """One order at the simulated venue: what was asked, and where it stands."""

    client_order_id: str
    broker_order_id: str
    seq: int  # submission order: who gets a bar's volume first
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: float | None
    stop_price: float | None
    trail_percent: float | None
    trail_amount: float | None
    status: OrderStatus
    filled_quantity: float
    avg_fill_price: float | None
    reason: str | None
    created_session: date  # the clock when submitted: fills only on later sessions
    triggered: bool
    trail_reference: float | None
    submitted_at: datetime
    updated_at: datetime
    # A contingent order (a stop attached to its entry): it waits, untouched by the bars, until
    # the order with this client order id fills, and is canceled if that order ends unfilled.
    parent_client_order_id: str | None = None
    waiting_for_parent: bool = False

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled_quantity, 0.0)

    def report(self) -> OrderStatusReport:
        return OrderStatusReport(
            client_order_id=self.client_order_id, symbol=self.symbol, side=self.side,
            quantity=self.quantity, status=self.status, order_type=self.order_type,
            filled_quantity=self.filled_quantity, avg_fill_price=self.avg_fill_price,
            broker_order_id=self.broker_order_id, reason=self.reason, updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class Position:
    quantity: float
    avg_entry_price: float


def close_utc(session: date) -> datetime:
    """The close of `session` in UTC: the venue's "now" between sessions."""
    return session_close(session).astimezone(UTC)
