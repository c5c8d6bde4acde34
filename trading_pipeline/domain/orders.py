"""Order intents (what we ask for) and broker outcomes (what the broker says happened).

The two are different types on purpose: an intent never carries its fills, and a report
never changes the intent it answers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

# Share quantities closer than this are equal: fills and averages leave float dust behind.
QUANTITY_EPSILON = 1e-9


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"


class OrderPurpose(StrEnum):
    REBALANCE = "rebalance"
    STOP_LOSS = "stop_loss"
    FLATTEN = "flatten"


class OrderStatus(StrEnum):
    NEW = "new"  # accepted and working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class InvalidOrder(ValueError):
    """An order intent that no broker should ever see."""


def make_client_order_id(
    strategy: str, session: date, symbol: str, side: Side, purpose: OrderPurpose
) -> str:
    """Deterministic id from what the order *is*, so a re-run can never send it twice.

    Readable prefix for humans at the broker, hash suffix for uniqueness; at most 48
    characters (Alpaca allows 128, IBKR's orderRef and our ledger key have no tighter limit).
    """
    key = f"{strategy}|{session.isoformat()}|{symbol}|{side}|{purpose}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = f"{session:%Y%m%d}-{symbol}-{side}-{purpose}"[:37]
    return f"{readable}-{digest}"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None  # 5.0 means 5 %
    trail_amount: float | None = None  # in price units
    session: date | None = None  # the session after whose close the order was decided
    strategy: str = ""
    purpose: OrderPurpose = OrderPurpose.REBALANCE

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise InvalidOrder(f"order {self.client_order_id or '?'}: " + "; ".join(problems))

    def _problems(self):
        if not self.client_order_id:
            yield "client_order_id is empty"
        if not self.symbol:
            yield "symbol is empty"
        if not (isinstance(self.quantity, (int, float)) and math.isfinite(self.quantity)):
            yield f"quantity {self.quantity!r} is not a finite number"
        elif self.quantity <= 0:
            yield f"quantity must be positive, got {self.quantity}"
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            yield f"{self.order_type} orders {'need' if needs_limit else 'take no'} limit_price"
        if needs_stop != (self.stop_price is not None):
            yield f"{self.order_type} orders {'need' if needs_stop else 'take no'} stop_price"
        for name in ("limit_price", "stop_price", "trail_percent", "trail_amount"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                yield f"{name} must be a positive finite number, got {value}"
        if self.order_type is OrderType.TRAILING_STOP:
            if (self.trail_percent is None) == (self.trail_amount is None):
                yield "trailing_stop orders need exactly one of trail_percent or trail_amount"
        elif self.trail_percent is not None or self.trail_amount is not None:
            yield f"{self.order_type} orders take no trail_percent or trail_amount"


@dataclass(frozen=True, slots=True)
class OrderStatusReport:
    """The broker's view of one order."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    status: OrderStatus
    order_type: OrderType = OrderType.MARKET
    filled_quantity: float = 0.0
    avg_fill_price: float | None = None
    broker_order_id: str | None = None
    reason: str | None = None  # why rejected / canceled, when the broker says
    updated_at: datetime | None = None

    @property
    def remaining_quantity(self) -> float:
        return max(self.quantity - self.filled_quantity, 0.0)


@dataclass(frozen=True, slots=True)
class FillReport:
    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    filled_at: datetime
    commission: float = 0.0
    broker_order_id: str | None = None

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    quantity: float  # negative for short
    avg_entry_price: float
    market_price: float | None = None

    @property
    def market_value(self) -> float | None:
        return None if self.market_price is None else self.quantity * self.market_price


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"
    at: datetime | None = None
    extra: dict[str, float] = field(default_factory=dict)
