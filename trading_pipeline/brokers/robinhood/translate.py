"""Pure translation between domain types and robin_stocks calls / Robinhood payloads.

What robin_stocks 3.4 actually sends (see `robin_stocks.robinhood.orders.order`):

- a market BUY goes out as a *limit* order at the current ask with
  `preset_percent_limit=0.05` (Robinhood's collar: it may fill up to 5 % above the ask);
  a market SELL goes out as a market order;
- a BUY stop goes out as a limit order with trigger "stop" and the limit at the stop price
  (same collar); a SELL stop as a market order with trigger "stop";
- a trailing stop goes out (as JSON) as a market order with trigger "stop", a starting
  stop price computed from the last trade, and a `trailing_peg` of percentage or price;
- `ref_id` is a fresh uuid4 the caller cannot set, so Robinhood offers no idempotency key.

Robinhood takes fractional quantities on market orders that are good for the day only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    PositionReport,
    Side,
    TimeInForce,
)

TIME_IN_FORCE = {TimeInForce.DAY: "gfd", TimeInForce.GTC: "gtc"}

STATES = {
    "queued": OrderStatus.NEW,
    "unconfirmed": OrderStatus.NEW,
    "confirmed": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELED,
    "canceled": OrderStatus.CANCELED,
    "voided": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "failed": OrderStatus.REJECTED,
}

# Orders placed outside this pipeline (by hand in the app) get this prefix plus their
# Robinhood id as client order id, so they can still be listed and canceled.
EXTERNAL_PREFIX = "robinhood-"

PRICE_TOLERANCE = 0.005  # robin_stocks rounds prices to cents above $1


@dataclass(frozen=True, slots=True)
class SdkOrderCall:
    """Which robin_stocks function places the order, with which keyword arguments."""

    function: str
    kwargs: dict[str, Any]


def is_fractional(quantity: float) -> bool:
    return not float(quantity).is_integer()


def robinhood_quantity(quantity: float) -> int | float:
    """Whole shares as an int ("10", not "10.0"); fractions to Robinhood's 6 decimals."""
    return int(quantity) if not is_fractional(quantity) else round(float(quantity), 6)


def unsupported_reason(intent: OrderIntent) -> str | None:
    """Why Robinhood cannot take this intent, or None when it can."""
    if is_fractional(intent.quantity):
        if intent.order_type is not OrderType.MARKET:
            return (f"Robinhood takes fractional quantities ({intent.quantity}) on market orders only, "
                    f"not {intent.order_type} orders: round the quantity to whole shares")
        if intent.time_in_force is not TimeInForce.DAY:
            return (f"Robinhood takes fractional quantities ({intent.quantity}) good for the day only: "
                    "use time_in_force=day or whole shares")
    return None


def sdk_order_call(intent: OrderIntent) -> SdkOrderCall:
    """The robin_stocks call that places `intent` (see the module notes for what it sends)."""
    common = dict(
        symbol=intent.symbol.upper(),
        quantity=robinhood_quantity(intent.quantity),
        side=str(intent.side),
        timeInForce=TIME_IN_FORCE[intent.time_in_force],
    )
    if intent.order_type is OrderType.TRAILING_STOP:
        if intent.trail_percent is not None:
            trail = dict(trailAmount=intent.trail_percent, trailType="percentage")
        else:
            trail = dict(trailAmount=intent.trail_amount, trailType="amount")
        side = common.pop("side")  # the package exports only the per-side trailing functions
        return SdkOrderCall(f"order_{side}_trailing_stop", {**common, **trail})
    prices: dict[str, float] = {}
    if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        prices["limitPrice"] = float(intent.limit_price)
    if intent.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        prices["stopPrice"] = float(intent.stop_price)
    return SdkOrderCall("order", {**common, **prices})


def robinhood_shape(intent: OrderIntent) -> tuple[str, str]:
    """The (type, trigger) Robinhood records for an order robin_stocks placed for `intent`."""
    buy = intent.side is Side.BUY
    match intent.order_type:
        case OrderType.MARKET:
            return ("limit" if buy else "market", "immediate")
        case OrderType.LIMIT:
            return ("limit", "immediate")
        case OrderType.STOP:
            return ("limit" if buy else "market", "stop")
        case OrderType.STOP_LIMIT:
            return ("limit", "stop")
        case OrderType.TRAILING_STOP:
            return ("market", "stop")
    raise ValueError(f"unknown order type {intent.order_type!r}")


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _close(a: float | None, b: float | None, tolerance: float = PRICE_TOLERANCE) -> bool:
    return a is not None and b is not None and abs(a - b) <= tolerance


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """Robinhood's query-string timestamp (no '+', which a query string would turn into a space)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches_intent(order: dict, intent: OrderIntent, instrument_url: str, since: datetime) -> bool:
    """Is this Robinhood order what robin_stocks would have placed for `intent`, since `since`?

    Used to adopt an order whose answer was lost instead of sending it again.
    """
    created = parse_time(order.get("created_at"))
    if created is None or created < since:
        return False
    if order.get("instrument") != instrument_url or order.get("side") != str(intent.side):
        return False
    quantity = _number(order.get("quantity"))
    if quantity is None or abs(quantity - float(intent.quantity)) > 1e-6:
        return False
    if (order.get("type"), order.get("trigger")) != robinhood_shape(intent):
        return False
    if bool(order.get("trailing_peg")) != (intent.order_type is OrderType.TRAILING_STOP):
        return False
    if order.get("time_in_force") != TIME_IN_FORCE[intent.time_in_force]:
        return False
    if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if not _close(_number(order.get("price")), intent.limit_price):
            return False
    if intent.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if not _close(_number(order.get("stop_price")), intent.stop_price):
            return False
    return True


def infer_order_type(order: dict) -> OrderType:
    """Our order type for an order we did not place (robin_stocks' buy collar makes some
    market and stop buys look like limits; for our own orders the intent's type is kept)."""
    if order.get("trailing_peg"):
        return OrderType.TRAILING_STOP
    stop = order.get("trigger") == "stop"
    if order.get("type") == "limit":
        return OrderType.STOP_LIMIT if stop else OrderType.LIMIT
    return OrderType.STOP if stop else OrderType.MARKET


def order_status(state: str | None) -> OrderStatus:
    try:
        return STATES[str(state)]
    except KeyError:
        raise ValueError(
            f"Robinhood reported an order state this adapter does not know: {state!r}"
        ) from None


def order_report(
    order: dict, *, client_order_id: str, symbol: str, order_type: OrderType | None = None
) -> OrderStatusReport:
    status = order_status(order.get("state"))
    reason = order.get("reject_reason") or None
    return OrderStatusReport(
        client_order_id=client_order_id,
        symbol=symbol,
        side=Side(order["side"]),
        quantity=float(order["quantity"]),
        status=status,
        order_type=order_type or infer_order_type(order),
        filled_quantity=_number(order.get("cumulative_quantity")) or 0.0,
        avg_fill_price=_number(order.get("average_price")),
        broker_order_id=order.get("id"),
        reason=str(reason) if reason else None,
        updated_at=parse_time(order.get("updated_at")),
    )


def rejected_report(intent: OrderIntent, reason: str) -> OrderStatusReport:
    return OrderStatusReport(
        client_order_id=intent.client_order_id,
        symbol=intent.symbol,
        side=intent.side,
        quantity=float(intent.quantity),
        status=OrderStatus.REJECTED,
        order_type=intent.order_type,
        reason=reason,
        updated_at=datetime.now(UTC),
    )


def rejection_reason(body: Any, status: int | None = None) -> str:
    """A short human reason from a Robinhood error body (dict, list or text)."""
    text = ""
    if isinstance(body, dict):
        for key in ("detail", "reject_reason", "non_field_errors", "error", "message"):
            if body.get(key):
                text = body[key] if isinstance(body[key], str) else "; ".join(map(str, body[key]))
                break
        else:
            text = "; ".join(
                f"{key}: {value if isinstance(value, str) else '; '.join(map(str, value))}"
                for key, value in body.items()
                if isinstance(value, (str, list))
            )
    elif isinstance(body, list):
        text = "; ".join(map(str, body))
    elif body:
        text = str(body)
    text = " ".join(text.split())[:300] or "no reason given"
    return f"Robinhood refused the order (HTTP {status}): {text}" if status else f"Robinhood: {text}"


def fill_reports(
    order: dict, *, client_order_id: str, symbol: str, since: datetime
) -> list[FillReport]:
    """One FillReport per execution of `order` at or after `since`.

    Robinhood charges fees per order (usually 0); they are shared over the executions by quantity.
    """
    executions = order.get("executions") or []
    total = sum(_number(e.get("quantity")) or 0.0 for e in executions)
    fees = _number(order.get("fees")) or 0.0
    reports = []
    for execution in executions:
        filled_at = parse_time(execution.get("timestamp"))
        quantity = _number(execution.get("quantity")) or 0.0
        if filled_at is None or filled_at < since or quantity <= 0:
            continue
        reports.append(
            FillReport(
                fill_id=str(execution["id"]),
                client_order_id=client_order_id,
                symbol=symbol,
                side=Side(order["side"]),
                quantity=quantity,
                price=float(execution["price"]),
                filled_at=filled_at,
                commission=fees * quantity / total if total else 0.0,
                broker_order_id=order.get("id"),
            )
        )
    return reports


def position_report(position: dict, symbol: str) -> PositionReport:
    return PositionReport(
        symbol=symbol,
        quantity=float(position["quantity"]),
        avg_entry_price=_number(position.get("average_buy_price")) or 0.0,
    )


def account_snapshot(account: dict, portfolio: dict, at: datetime | None = None) -> AccountSnapshot:
    cash = _number(account.get("portfolio_cash"))
    if cash is None:
        cash = _number(account.get("cash")) or 0.0
    equity = _number(portfolio.get("equity"))
    if equity is None:
        equity = _number(portfolio.get("extended_hours_equity"))
    extra = {
        key: value
        for key in ("market_value", "withdrawable_amount", "excess_margin")
        if (value := _number(portfolio.get(key))) is not None
    }
    return AccountSnapshot(
        cash=cash,
        equity=equity if equity is not None else cash,
        buying_power=_number(account.get("buying_power")) or 0.0,
        currency="USD",
        at=at,
        extra=extra,
    )
