"""Pure translation between domain types and robin_stocks calls / Robinhood payloads.

What robin_stocks 3.4 actually sends (see `robin_stocks.robinhood.orders.order`):

- a market BUY goes out as a *limit* order at the current ask with
  `preset_percent_limit=0.05` (Robinhood's collar: it may fill up to 5 % above the ask);
  a market SELL goes out as a market order;
- a BUY stop goes out as a limit order with trigger "stop" and the limit at the stop price
  (same collar); a SELL stop as a market order with trigger "stop";
- a trailing stop goes out (as JSON) as a market order with trigger "stop", a starting
  stop price computed from the last trade, and a `trailing_peg` of percentage or price;
- robin_stocks sends a fresh uuid4 as `ref_id` and offers no way to set it. `ref_id` is
  Robinhood's idempotency key (a reused one is refused: "Order with this ref_id already
  exists.", robin_stocks PR #40), so the adapter builds the same payload itself (see
  `order_payload`) with a ref_id derived from the client order id and posts it through
  robin_stocks' own request helper: a re-sent order can never be booked twice.

Robinhood takes fractional quantities on market orders that are good for the day only.
"""

from __future__ import annotations

import math
import uuid
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

# ref_id = uuid5(this namespace, client order id): the same order always carries the same key
REF_ID_NAMESPACE = uuid.UUID("6c1b9e0a-3f43-5d7e-9a51-0d2f5b8c4e17")
BUY_COLLAR = "0.05"  # robin_stocks' preset_percent_limit on every regular-hours buy


def ref_id_for(client_order_id: str) -> str:
    return str(uuid.uuid5(REF_ID_NAMESPACE, client_order_id))


def round_price(price: float) -> float:
    """robin_stocks' rounding (helper.round_price): cents from $1, 4 decimals below, 6 below 1c."""
    price = float(price)
    return round(price, 6) if price <= 1e-2 else round(price, 4) if price < 1 else round(price, 2)


def order_payload(intent: OrderIntent, *, account_url: str, instrument_url: str, quote: dict,
                  now: datetime) -> tuple[dict[str, Any], bool]:
    """(payload, send as JSON) for `intent`: what robin_stocks 3.4's `order` (regular hours)
    or `order_trailing_stop` would post, with the deterministic `ref_id_for` the client order
    id instead of a random uuid4. `quote` is Robinhood's quote for the symbol."""
    call = sdk_order_call(intent)
    kw = call.kwargs
    side, symbol = str(intent.side), kw["symbol"]
    common = {"account": account_url, "instrument": instrument_url, "symbol": symbol,
              "quantity": kw["quantity"], "ref_id": ref_id_for(intent.client_order_id),
              "time_in_force": kw["timeInForce"], "side": side}
    if intent.order_type is OrderType.TRAILING_STOP:
        extended = quote.get("last_extended_hours_trade_price")
        last = round_price(extended if extended is not None else quote["last_trade_price"])
        amount = float(kw["trailAmount"])
        margin = amount if kw["trailType"] == "amount" else last * amount * 0.01
        stop = round_price(last + margin if side == "buy" else last - margin)
        payload = {**common, "type": "market", "stop_price": stop, "trigger": "stop", "extended_hours": False}
        if side == "buy":
            payload["price"] = round_price(stop * 1.05)
        if kw["trailType"] == "amount":
            payload["trailing_peg"] = {"type": "price", "price": {"amount": amount, "currency_code": "USD"}}
        else:
            payload["trailing_peg"] = {"type": "percentage", "percentage": str(amount)}
        return payload, True
    limit, stop = kw.get("limitPrice"), kw.get("stopPrice")
    order_type, trigger, price = "market", "immediate", None
    if limit and stop:
        price, stop, order_type, trigger = round_price(limit), round_price(stop), "limit", "stop"
    elif limit:
        price, order_type = round_price(limit), "limit"
    elif stop:
        stop = round_price(stop)
        price, trigger = (stop if side == "buy" else None), "stop"
    else:
        price = round_price(quote["ask_price" if side == "buy" else "bid_price"])
    payload = {**common, "price": price, "ask_price": round_price(quote["ask_price"]),
               "bid_ask_timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"),
               "bid_price": round_price(quote["bid_price"]), "type": order_type, "stop_price": stop,
               "trigger": trigger, "market_hours": "regular_hours", "extended_hours": False,
               "order_form_version": 4}
    if order_type == "market" and trigger != "stop":
        del payload["stop_price"]
    if side == "buy":
        payload["preset_percent_limit"] = BUY_COLLAR
        payload["type"] = "limit"
    elif order_type == "market":
        del payload["price"]
    return payload, False


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
