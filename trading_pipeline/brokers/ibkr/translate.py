"""Pure translations between ib_insync objects and the domain types.

No I/O here: every function takes ib_insync values (or plain ones) and returns new values,
so each mapping is unit-testable without a socket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from ib_insync import (
    Contract,
    LimitOrder,
    MarketOrder,
    Order,
    Stock,
    StopLimitOrder,
    StopOrder,
    Trade,
)
from ib_insync import OrderStatus as IbOrderStatus
from ib_insync.objects import AccountValue, Fill, Position

from trading_pipeline.brokers.ibkr import codes
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

_IB_ORDER_TYPES = {
    "MKT": OrderType.MARKET,
    "LMT": OrderType.LIMIT,
    "STP": OrderType.STOP,
    "STP LMT": OrderType.STOP_LIMIT,
    "TRAIL": OrderType.TRAILING_STOP,
}

_TIF = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC"}


def stock_contract(symbol: str) -> Contract:
    """A US stock routed through IBKR SMART, priced in USD."""
    return Stock(symbol, "SMART", "USD")


def to_ib_order(intent: OrderIntent, account: str | None = None) -> Order:
    """The ib_insync order for `intent`; `orderRef` carries our client order id."""
    action = "BUY" if intent.side is Side.BUY else "SELL"
    common = dict(tif=_TIF[intent.time_in_force], orderRef=intent.client_order_id)
    if account:
        common["account"] = account
    qty = float(intent.quantity)
    match intent.order_type:
        case OrderType.MARKET:
            return MarketOrder(action, qty, **common)
        case OrderType.LIMIT:
            return LimitOrder(action, qty, intent.limit_price, **common)
        case OrderType.STOP:
            return StopOrder(action, qty, intent.stop_price, **common)
        case OrderType.STOP_LIMIT:
            return StopLimitOrder(action, qty, intent.limit_price, intent.stop_price, **common)
        case OrderType.TRAILING_STOP:
            if intent.trail_percent is not None:
                return Order(orderType="TRAIL", action=action, totalQuantity=qty,
                             trailingPercent=intent.trail_percent, **common)
            # a trail given in price units travels in auxPrice
            return Order(orderType="TRAIL", action=action, totalQuantity=qty,
                         auxPrice=intent.trail_amount, **common)
    raise ValueError(f"IBKR adapter has no mapping for order type {intent.order_type!r}")


def attached_orders(entry: OrderIntent, stop: OrderIntent, parent_order_id: int,
                    account: str | None = None) -> tuple[Order, Order]:
    """The entry and its protective stop as TWS attaches them (ib_insync's `bracketOrder`
    pattern): the stop is a child (`parentId` = the entry's order id) that IB activates when
    the entry fills and cancels with it. The entry goes with `transmit=False` and the child,
    the last of the group, with `transmit=True`: TWS sends nothing until the whole group is
    there, so the entry never works without its stop."""
    parent = to_ib_order(entry, account)
    parent.orderId, parent.transmit = parent_order_id, False
    child = to_ib_order(stop, account)
    child.parentId, child.transmit = parent_order_id, True
    return parent, child


def order_type_of(order: Order) -> OrderType:
    """Our order type for an IB one; types we never send map to their closest kind."""
    known = _IB_ORDER_TYPES.get(order.orderType.upper())
    if known is not None:
        return known
    if order.orderType.upper().startswith("TRAIL"):
        return OrderType.TRAILING_STOP
    return OrderType.LIMIT if _is_set(order.lmtPrice) else OrderType.MARKET


def rejection_reason(trade: Trade) -> str | None:
    """The broker's text when it may have refused the order (TWS sends an error, then cancels);
    codes the table knows as notices (e.g. 10349) are not refusals."""
    for entry in reversed(trade.log):
        if entry.errorCode and codes.is_refusal(entry.errorCode):
            return entry.message or f"IBKR error {entry.errorCode}"
    return None


def order_status_of(ib_status: str, filled: float, quantity: float, reason: str | None) -> OrderStatus:
    """Map a TWS order status word (plus fill progress) to ours."""
    if ib_status == IbOrderStatus.Filled or (quantity > 0 and filled >= quantity):
        return OrderStatus.FILLED
    if ib_status in (IbOrderStatus.Cancelled, IbOrderStatus.ApiCancelled):
        if reason is not None and filled <= 0:
            return OrderStatus.REJECTED
        return OrderStatus.CANCELED
    if ib_status == IbOrderStatus.Inactive:
        # TWS parks refused orders as Inactive (e.g. no permissions, bad contract)
        return OrderStatus.REJECTED if filled <= 0 else OrderStatus.CANCELED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW


def execution_key(exec_id: str) -> str:
    """An execution's identity across corrections: TWS corrects an execution by sending it
    again with only the part after the last period changed (".01" -> ".02")."""
    return exec_id.rsplit(".", 1)[0] if "." in exec_id else exec_id


def latest_executions(fills: Iterable[Fill]) -> list[Fill]:
    """One fill per execution: its latest correction, in the order executions first appeared."""
    latest: dict[str, Fill] = {}
    for fill in fills:
        key = execution_key(fill.execution.execId)
        held = latest.get(key)
        if held is None or fill.execution.execId > held.execution.execId:
            latest[key] = fill
    return list(latest.values())


def filled_quantity(trade: Trade) -> float:
    """Shares filled so far, from whichever source this trade carries."""
    executed = sum(f.execution.shares for f in latest_executions(trade.fills))
    candidates = [trade.orderStatus.filled, executed]
    if _is_set(trade.order.filledQuantity):
        candidates.append(trade.order.filledQuantity)
    return max(candidates)


def average_price(fills: Iterable[Fill]) -> float | None:
    fills = latest_executions(fills)
    shares = sum(f.execution.shares for f in fills)
    if shares <= 0:
        return None
    return sum(f.execution.shares * f.execution.price for f in fills) / shares


def trade_to_report(trade: Trade, *, scrub=lambda text: text) -> OrderStatusReport:
    """The domain view of one IB trade; `scrub` cleans broker texts of sensitive values."""
    order = trade.order
    quantity = float(order.totalQuantity)
    filled = filled_quantity(trade)
    reason = rejection_reason(trade)
    status = order_status_of(trade.orderStatus.status, filled, quantity, reason)
    # the executions first: TWS's running average is not restated by a correction
    avg = average_price(trade.fills) or trade.orderStatus.avgFillPrice
    if status is OrderStatus.CANCELED and reason is None:
        reason = _last_message(trade)
    return OrderStatusReport(
        client_order_id=client_order_id_of(order),
        symbol=trade.contract.symbol,
        side=Side.BUY if order.action.upper() == "BUY" else Side.SELL,
        quantity=quantity,
        status=status,
        order_type=order_type_of(order),
        filled_quantity=filled,
        avg_fill_price=avg if filled > 0 and avg else None,
        broker_order_id=str(order.permId) if order.permId else None,
        reason=scrub(reason) if reason else None,
        updated_at=trade.log[-1].time if trade.log else None,
    )


def enrich(broker_view: OrderStatusReport, live_view: OrderStatusReport) -> OrderStatusReport:
    """The broker's (completed-order) record, with what the live session also knows.

    The record's status and filled quantity stand; it lacks prices, reasons and times,
    which the live trade has. A cancel the live session knows was a rejection stays one.
    """
    status = broker_view.status
    if status is OrderStatus.CANCELED and live_view.status is OrderStatus.REJECTED:
        status = OrderStatus.REJECTED
    reason = broker_view.reason
    if reason is None and status in (OrderStatus.CANCELED, OrderStatus.REJECTED):
        reason = live_view.reason
    return replace(
        broker_view,
        status=status,
        avg_fill_price=broker_view.avg_fill_price or live_view.avg_fill_price,
        reason=reason,
        updated_at=broker_view.updated_at or live_view.updated_at,
    )


def client_order_id_of(order: Order) -> str:
    """Our id for an IB order: its orderRef, or a stable stand-in for orders made by hand."""
    if order.orderRef:
        return order.orderRef
    return f"ibkr-perm-{order.permId}" if order.permId else f"ibkr-order-{order.orderId}"


def fill_reports(fills: Iterable[Fill]) -> list[FillReport]:
    """One report per execution (its latest correction), with the commission once TWS has
    reported it for any revision (0.0 until then; the same fill_id comes again with it)."""
    fills = list(fills)
    commission_by_key: dict[str, float] = {}
    for fill in sorted(fills, key=lambda f: f.execution.execId):
        if _is_set(fill.commissionReport.commission) and fill.commissionReport.execId:
            commission_by_key[execution_key(fill.execution.execId)] = float(
                fill.commissionReport.commission)
    reports = []
    for fill in latest_executions(fills):
        report = fill_to_report(fill)
        known = commission_by_key.get(report.fill_id)
        reports.append(replace(report, commission=known) if known is not None else report)
    return reports


def fill_to_report(fill: Fill) -> FillReport:
    ex = fill.execution
    commission = fill.commissionReport.commission
    return FillReport(
        fill_id=execution_key(ex.execId),
        client_order_id=ex.orderRef or f"ibkr-perm-{ex.permId}",
        symbol=fill.contract.symbol,
        side=Side.BUY if ex.side.upper() in ("BOT", "BUY") else Side.SELL,
        quantity=float(ex.shares),
        price=float(ex.price),
        filled_at=ex.time,
        commission=float(commission) if _is_set(commission) else 0.0,
        broker_order_id=str(ex.permId) if ex.permId else None,
    )


def position_to_report(position: Position, market_price: float | None = None) -> PositionReport:
    return PositionReport(
        symbol=position.contract.symbol,
        quantity=float(position.position),
        avg_entry_price=float(position.avgCost),
        market_price=market_price,
    )


def account_snapshot(values: Iterable[AccountValue], account: str, at: datetime) -> AccountSnapshot:
    """An account snapshot from TWS account-summary values of one account."""
    by_tag: dict[str, tuple[float, str]] = {}
    for value in values:
        if value.account != account:
            continue
        try:
            number = float(value.value)
        except ValueError:
            continue  # e.g. AccountType=INDIVIDUAL
        if math.isfinite(number):
            by_tag[value.tag] = (number, value.currency)
    missing = [tag for tag in ("NetLiquidation", "TotalCashValue") if tag not in by_tag]
    if missing:
        raise ValueError(f"IBKR account summary lacks {', '.join(missing)}")
    equity, currency = by_tag["NetLiquidation"]
    cash = by_tag["TotalCashValue"][0]
    buying_power = by_tag.get("BuyingPower", (max(cash, 0.0), currency))[0]
    extra = {
        tag: number
        for tag, (number, _) in by_tag.items()
        if tag not in ("NetLiquidation", "TotalCashValue", "BuyingPower")
    }
    return AccountSnapshot(
        cash=cash, equity=equity, buying_power=buying_power, currency=currency or "USD",
        at=at, extra=extra,
    )


def _last_message(trade: Trade) -> str | None:
    for entry in reversed(trade.log):
        if entry.message:
            return entry.message
    return None


def _is_set(value: float) -> bool:
    """ib_insync marks absent numbers with a huge sentinel (UNSET_DOUBLE)."""
    return value is not None and math.isfinite(value) and abs(value) < 1e300
