"""Pure translation between domain types and alpaca-py requests / Alpaca payloads.

Reading answers uses attribute access on alpaca-py's pydantic models (Order, Position,
TradeAccount) and plain dicts for account activities, which TradingClient has no model for.
Alpaca sends numbers as JSON strings; every reader goes through `_number`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from trading_pipeline.domain.attached_stops import attached_stop_id
from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    InvalidOrder,
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    PositionReport,
    Side,
)

MAX_CLIENT_ORDER_ID = 128  # Alpaca's limit

# Alpaca's many order states, folded into ours. States that mean "still working" become
# NEW or PARTIALLY_FILLED by what has filled (see `order_status`).
_CLOSED_STATES = {
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,  # superseded by another order: this one is gone
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_OPEN_STATES = {
    "new", "partially_filled", "done_for_day", "pending_cancel", "pending_replace",
    "pending_review", "accepted", "pending_new", "accepted_for_bidding", "stopped",
    "suspended", "calculated", "held",
}
_REASONS = {"replaced": "replaced by another order"}


def order_request(intent: OrderIntent):
    """The alpaca-py request object that places `intent`."""
    from alpaca.trading import enums, requests  # heavy (pandas): only when an order is sent

    if len(intent.client_order_id) > MAX_CLIENT_ORDER_ID:
        raise InvalidOrder(f"order {intent.client_order_id[:40]}...: client_order_id is longer than "
                           f"Alpaca's {MAX_CLIENT_ORDER_ID} characters")
    common = dict(
        symbol=intent.symbol,
        qty=intent.quantity,
        side=enums.OrderSide(intent.side.value),
        time_in_force=enums.TimeInForce(intent.time_in_force.value),
        client_order_id=intent.client_order_id,
    )
    match intent.order_type:
        case OrderType.MARKET:
            return requests.MarketOrderRequest(**common)
        case OrderType.LIMIT:
            return requests.LimitOrderRequest(**common, limit_price=intent.limit_price)
        case OrderType.STOP:
            return requests.StopOrderRequest(**common, stop_price=intent.stop_price)
        case OrderType.STOP_LIMIT:
            return requests.StopLimitOrderRequest(
                **common, stop_price=intent.stop_price, limit_price=intent.limit_price
            )
        case OrderType.TRAILING_STOP:
            if intent.trail_percent is not None:
                return requests.TrailingStopOrderRequest(**common, trail_percent=intent.trail_percent)
            return requests.TrailingStopOrderRequest(**common, trail_price=intent.trail_amount)
    raise InvalidOrder(f"order {intent.client_order_id}: Alpaca has no {intent.order_type} orders")


# Order types that only protect a position (they trade only once a price is crossed): the
# adapter may move them out of an entry's way; a working limit order is a decision, never moved.
PROTECTIVE_TYPES = frozenset({"stop", "trailing_stop"})
WASH_TRADE_MESSAGE = "wash trade"


@dataclass(frozen=True, slots=True)
class DisplacedStop:
    """A protective stop the adapter canceled so that an entry on the other side could be
    placed (Alpaca refuses it as a potential wash trade otherwise); the entry carries a stop of
    its own, and this one is for the next session's stop upkeep to place again."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    stop_price: float
    entry_client_order_id: str


def oto_order_request(intent: OrderIntent, stop_price: float):
    """`intent` as a one-triggers-other order whose stop-loss leg (at `stop_price`, for the
    same quantity) Alpaca holds until the entry fills."""
    from alpaca.trading import enums, requests

    simple = order_request(intent)
    fields = simple.model_dump(exclude_none=True)
    fields.update(order_class=enums.OrderClass.OTO,
                  stop_loss=requests.StopLossRequest(stop_price=round(stop_price, 2)))
    return type(simple)(**fields)


def stop_leg(entry: Any):
    """The stop-loss leg of an OTO entry (alpaca-py's `Order`), or None."""
    legs = [leg for leg in (getattr(entry, "legs", None) or [])
            if str(getattr(leg.type, "value", leg.type)) in PROTECTIVE_TYPES]
    return legs[0] if legs else None


def leg_names(raw: dict) -> dict[str, str]:
    """{leg order id: the attached stop's client order id} for an entry of a nested listing."""
    legs = [leg for leg in raw.get("legs") or [] if isinstance(leg, dict) and leg.get("type") in PROTECTIVE_TYPES]
    if not legs or not raw.get("client_order_id"):
        return {}
    return {str(legs[0]["id"]): attached_stop_id(str(raw["client_order_id"]))}


def order_from_json(raw: dict) -> OrderStatusReport:
    """One order of a raw JSON answer, through alpaca-py's own model. Raises ValueError (or
    pydantic's ValidationError, a ValueError) for an order this adapter cannot read."""
    from alpaca.trading.models import Order

    if (raw.get("order_class") or "") == "mleg":
        raise ValueError("a multi-leg (order_class mleg) option order: it has no symbol or side "
                         "of its own and this pipeline trades no options")
    return order_report(Order(**raw))


def position_from_json(raw: dict) -> PositionReport:
    from alpaca.trading.models import Position

    return position_report(Position(**raw))


def account_from_json(raw: dict, at: datetime) -> AccountSnapshot:
    """The account from its raw JSON. Only the money fields are needed, so an answer
    alpaca-py's TradeAccount would refuse (a null account_number, a new status) still reads."""
    missing = [name for name in ("cash", "equity", "buying_power") if raw.get(name) in (None, "")]
    if missing:
        raise ValueError(f"the account answer has no {', '.join(missing)}")
    return account_snapshot(SimpleNamespace(**{"currency": None, **raw}), at)


def describe_unreadable(raw: dict, error: BaseException) -> str:
    """Why an item could not be read, short, naming its asset class / order class / state."""
    said = " ".join(str(error).split())
    said = said if len(said) <= 200 else said[:197] + "..."
    facts = ", ".join(f"{name} {raw[name]!r}" for name in ("asset_class", "order_class", "status")
                      if raw.get(name) not in (None, ""))
    return f"{facts}: {said}" if facts else said


def _text(value: Any) -> str | None:
    """An alpaca-py enum or plain value as its wire string."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _number(value: Any, default: float | None = 0.0) -> float | None:
    if value is None or value == "":
        return default
    number = float(value)
    return number if math.isfinite(number) else default


def order_status(alpaca_status: str, filled_quantity: float, quantity: float) -> OrderStatus:
    """Our status for an Alpaca order state."""
    if alpaca_status in _CLOSED_STATES:
        return _CLOSED_STATES[alpaca_status]
    if alpaca_status in _OPEN_STATES:
        if filled_quantity > 0:
            return OrderStatus.FILLED if filled_quantity >= quantity else OrderStatus.PARTIALLY_FILLED
        return OrderStatus.NEW
    raise ValueError(f"Alpaca order state {alpaca_status!r} is unknown to this adapter")


def order_report(order: Any) -> OrderStatusReport:
    """An alpaca-py `Order` as our status report."""
    state = _text(order.status)
    quantity = _number(order.qty)
    filled = _number(order.filled_qty)
    avg_price = _number(order.filled_avg_price, default=None)
    return OrderStatusReport(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=Side(_text(order.side)),
        quantity=quantity,
        status=order_status(state, filled, quantity),
        order_type=OrderType(_text(order.type or order.order_type)),
        filled_quantity=filled,
        avg_fill_price=avg_price if filled > 0 else None,
        broker_order_id=str(order.id),
        reason=_REASONS.get(state),
        updated_at=order.updated_at,
    )


def is_pending_cancel(order: Any) -> bool:
    return _text(order.status) == "pending_cancel"


def rejected_report(intent: OrderIntent, reason: str) -> OrderStatusReport:
    """The answer to an order Alpaca refused to take (it holds no order for it)."""
    return OrderStatusReport(
        client_order_id=intent.client_order_id,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        status=OrderStatus.REJECTED,
        order_type=intent.order_type,
        reason=reason,
        updated_at=datetime.now(UTC),
    )


def position_report(position: Any) -> PositionReport:
    """An alpaca-py `Position`; short positions come back with a negative quantity."""
    quantity = _number(position.qty)
    if _text(position.side) == "short" and quantity > 0:
        quantity = -quantity
    return PositionReport(
        symbol=position.symbol,
        quantity=quantity,
        avg_entry_price=_number(position.avg_entry_price),
        market_price=_number(position.current_price, default=None),
    )


_ACCOUNT_EXTRAS = (
    "portfolio_value", "long_market_value", "short_market_value", "last_equity",
    "initial_margin", "maintenance_margin", "regt_buying_power", "daytrading_buying_power",
    "non_marginable_buying_power", "multiplier",
)


def account_snapshot(account: Any, at: datetime) -> AccountSnapshot:
    """An alpaca-py `TradeAccount`; flags like trading_blocked become 0/1 extras."""
    extra = {
        name: _number(getattr(account, name, None))
        for name in _ACCOUNT_EXTRAS
        if getattr(account, name, None) not in (None, "")
    }
    for flag in ("trading_blocked", "account_blocked", "pattern_day_trader"):
        value = getattr(account, flag, None)
        if value is not None:
            extra[flag] = 1.0 if value else 0.0
    return AccountSnapshot(
        cash=_number(account.cash),
        equity=_number(account.equity),
        buying_power=_number(account.buying_power),
        currency=account.currency or "USD",
        at=at,
        extra=extra,
    )


def parse_time(raw: str) -> datetime:
    """Alpaca's RFC 3339 timestamps ("...Z", up to nanoseconds) as aware datetimes."""
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fill_report(activity: dict[str, Any], client_order_id: str) -> FillReport:
    """One FILL / partial_fill account activity (one execution) as a fill report."""
    return FillReport(
        fill_id=str(activity["id"]),
        client_order_id=client_order_id,
        symbol=activity["symbol"],
        side=Side(activity["side"]),
        quantity=_number(activity["qty"]),
        price=_number(activity["price"]),
        filled_at=parse_time(activity["transaction_time"]),
        commission=0.0,  # Alpaca charges no commission on US equities
        broker_order_id=str(activity["order_id"]),
    )


def activity_time_param(since: datetime) -> str:
    """`since` as the `after` query value for account activities (UTC, RFC 3339)."""
    aware = since if since.tzinfo else since.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
