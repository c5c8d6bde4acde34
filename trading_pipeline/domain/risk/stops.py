"""Automatic protective stops: one GTC sell stop per long position, for its full size.

`plan_stops` is pure: it compares the positions with the stops already working and says
which stops to cancel and which to place. The daily loop runs it after each close and then
sends, in this order:

1. every cancel in `StopPlan.cancel`, waiting for each answer. A stop for the same shares as
   a rebalance sell must be gone before that sell leaves, or both could sell the same shares
   (a short at a broker that allows it, a rejected sell at one that does not). A cancel can
   arrive too late (the stop filled first): `unconfirmed_cancels` names those symbols, and
   no rebalance sell of them may be sent until the positions are read again.
2. the rebalance orders.
3. every order in `StopPlan.place`. These never cover shares a rebalance sell is selling,
   so the stops and the sells together never sell more than is held.

Client order ids. A stop decided after the close of session D gets the id of
(strategy, D, symbol, sell, stop_loss), so a replacement on a later session has a new id and
a re-run of D that finds the same positions finds its own stop working and keeps it. A second
replacement within the same session (positions changed between two runs of D) must not reuse
the id of the stop it replaces, since brokers answer a known id with the old order and send
nothing: the planner takes the ids already used (the working stops' own, plus those the
ledger knows for D) and numbers the replacement, `stop_client_order_id(..., replacement=2)`,
which is still derived from what the order is and so the same on every re-run.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderStatusReport,
    QUANTITY_EPSILON,
    OrderType,
    Side,
    TimeInForce,
    make_client_order_id,
)

STOP_TYPES = (OrderType.STOP, OrderType.TRAILING_STOP)
# Ids a single session may use for one symbol's stop before the planner gives up: far more
# replacements than positions can change in one session.
MAX_REPLACEMENTS_PER_SESSION = 100


@dataclass(frozen=True, slots=True)
class StopPolicy:
    """How far below entry a protective stop stands.

    Both figures are fractions: 0.05 means 5 %. `trailing` places a trailing stop that follows
    the best price by `trail_percent` (default: `stop_percent`) instead of a fixed stop at
    entry x (1 - stop_percent).
    """

    stop_percent: float = 0.05
    trailing: bool = False
    trail_percent: float | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("stop_percent", "trail_percent"):
            value = getattr(self, name)
            if value is None and name == "trail_percent":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not 0 < value < 1:
                problems.append(f"{name} is a fraction in (0, 1) (0.05 means 5 %), got {value!r}")
        if self.trail_percent is not None and not self.trailing:
            problems.append("trail_percent is set but trailing is off: set trailing=True, "
                            "or drop trail_percent for a fixed stop")
        if problems:
            raise ValueError("invalid StopPolicy: " + "; ".join(problems))

    @property
    def order_type(self) -> OrderType:
        return OrderType.TRAILING_STOP if self.trailing else OrderType.STOP

    @property
    def trail_fraction(self) -> float:
        return self.trail_percent if self.trail_percent is not None else self.stop_percent


@dataclass(frozen=True, slots=True)
class WorkingStop:
    """A protective stop that is working at the broker, as the planner needs it.

    `quantity` is what is still unfilled. `stop_price` / `trail_percent` (5.0 means 5 %, as
    on `OrderIntent`) are compared with the policy when known; None means "not known", and
    then only the quantity and order type decide whether the stop still fits.
    """

    client_order_id: str
    symbol: str
    quantity: float
    order_type: OrderType = OrderType.STOP
    stop_price: float | None = None
    trail_percent: float | None = None

    @classmethod
    def from_intent(cls, intent: OrderIntent) -> WorkingStop:
        return cls(intent.client_order_id, intent.symbol, intent.quantity, intent.order_type,
                   intent.stop_price, intent.trail_percent)


@dataclass(frozen=True)
class StopPlan:
    """Cancel first, then rebalance, then place (see the module docstring)."""

    place: list[OrderIntent] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)  # client order ids
    notes: list[str] = field(default_factory=list)


def stop_client_order_id(strategy: str, session: date, symbol: str, replacement: int = 1) -> str:
    """The id of a protective stop decided after `session`'s close.

    The first stop of a session uses the plain order id; the n-th within the same session
    salts the strategy with its number so the id differs and stays deterministic.
    """
    if replacement < 1:
        raise ValueError(f"replacement counts from 1, got {replacement}")
    salted = strategy if replacement == 1 else f"{strategy}#replacement-{replacement}"
    return make_client_order_id(salted, session, symbol, Side.SELL, OrderPurpose.STOP_LOSS)


def stop_price_below(entry_price: float, stop_percent: float) -> float:
    """entry x (1 - stop_percent), rounded to the tick US equities allow: cents from $1,
    hundredths of a cent below (Reg NMS sub-penny rule)."""
    price = entry_price * (1.0 - stop_percent)
    return round(price, 2) if price >= 1.0 else round(price, 4)


def working_stops_from(open_orders: Iterable[OrderStatusReport]) -> list[OrderStatusReport]:
    """The open sell stop and trailing-stop orders among a broker's open orders."""
    return [o for o in open_orders
            if o.status.is_open and o.side is Side.SELL and o.order_type in STOP_TYPES]


def unconfirmed_cancels(cancel_reports: Iterable[OrderStatusReport]) -> set[str]:
    """Symbols whose stop did not end CANCELED: it filled (in part) or is still working, so
    a rebalance sell of that symbol would sell shares the stop sold or still may sell."""
    return {r.symbol for r in cancel_reports if r.status is not OrderStatus.CANCELED}


def plan_stops(
    session: date,
    strategy: str,
    positions_after: Mapping[str, float],
    entry_prices: Mapping[str, float],
    working_stops: Sequence[OrderStatusReport | WorkingStop],
    policy: StopPolicy = StopPolicy(),
    *,
    rebalance_orders: Sequence[OrderIntent] = (),
    used_client_order_ids: Collection[str] = (),
) -> StopPlan:
    """Cancels and placements that leave exactly one stop per long position, for its size.

    `positions_after`: shares held after the fills known at `session`'s close (the broker's
    positions). `entry_prices`: average entry price per held symbol (needed for fixed stops
    that must be placed). `working_stops`: the stops working at the broker (finished reports
    are ignored). `rebalance_orders`: this session's orders; the shares a rebalance sell is
    selling get no stop, and that symbol's old stop is cancelled before the sell is sent.
    Bought shares get their stop on the session after they fill. `used_client_order_ids`: ids
    already spent on `session` (from the ledger) so a replacement never reuses one.
    Short positions get no stop: a sell stop would add to them.
    """
    if not strategy:
        raise ValueError("strategy is empty: stops are keyed by strategy, pass its name")
    stops_by_symbol = _open_stops_by_symbol(working_stops)
    selling = _rebalance_sells(rebalance_orders)
    used = set(used_client_order_ids) | {s.client_order_id for group in stops_by_symbol.values()
                                         for s in group}
    plan = StopPlan()
    for symbol in sorted(set(positions_after) | set(stops_by_symbol)):
        held = _checked_quantity(symbol, positions_after.get(symbol, 0.0))
        protect = held - selling.get(symbol, 0.0)
        stops = stops_by_symbol.get(symbol, [])
        if protect <= QUANTITY_EPSILON:
            plan.cancel.extend(s.client_order_id for s in stops)
            if stops:
                plan.notes.append(_why_no_stop(symbol, held, selling.get(symbol, 0.0)))
            elif held < -QUANTITY_EPSILON:
                plan.notes.append(f"{symbol}: short {-held:g}, no protective stop (longs only)")
            continue
        wanted = _wanted_stop(symbol, protect, entry_prices, policy)
        keep = next((s for s in stops if _fits(s, wanted)), None)
        plan.cancel.extend(s.client_order_id for s in stops if s is not keep)
        if keep is not None:
            continue
        client_order_id = _unused_id(strategy, session, symbol, used)
        used.add(client_order_id)
        plan.place.append(OrderIntent(
            client_order_id=client_order_id, symbol=symbol, side=Side.SELL, quantity=protect,
            order_type=policy.order_type, time_in_force=TimeInForce.GTC,
            stop_price=wanted.stop_price, trail_percent=wanted.trail_percent,
            session=session, strategy=strategy, purpose=OrderPurpose.STOP_LOSS,
        ))
        plan.notes.append(_why_new_stop(symbol, protect, wanted, stops))
    return plan


def _open_stops_by_symbol(
    working_stops: Sequence[OrderStatusReport | WorkingStop],
) -> dict[str, list[WorkingStop]]:
    grouped: dict[str, list[WorkingStop]] = {}
    for stop in working_stops:
        if isinstance(stop, OrderStatusReport):
            if not stop.status.is_open:
                continue  # filled, cancelled or expired: nothing left to replace
            if stop.side is not Side.SELL or stop.order_type not in STOP_TYPES:
                raise ValueError(
                    f"order {stop.client_order_id} ({stop.side} {stop.order_type} {stop.symbol}) "
                    "is not a protective sell stop: pass only stops (working_stops_from picks "
                    "them from a broker's open orders), or it would be cancelled")
            stop = WorkingStop(stop.client_order_id, stop.symbol, stop.remaining_quantity,
                               stop.order_type)
        elif not isinstance(stop, WorkingStop):
            raise TypeError(f"working_stops holds {type(stop).__name__}: pass OrderStatusReport "
                            "or WorkingStop items")
        if stop.order_type not in STOP_TYPES:
            raise ValueError(f"working stop {stop.client_order_id} has order type "
                             f"{stop.order_type}: only stop and trailing_stop orders protect")
        grouped.setdefault(stop.symbol, []).append(stop)
    return grouped


def _rebalance_sells(orders: Sequence[OrderIntent]) -> dict[str, float]:
    sells: dict[str, float] = {}
    for order in orders:
        if order.side is Side.SELL and order.purpose is not OrderPurpose.STOP_LOSS:
            sells[order.symbol] = sells.get(order.symbol, 0.0) + order.quantity
    return sells


def _checked_quantity(symbol: str, quantity: float) -> float:
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) \
            or not math.isfinite(quantity):
        raise ValueError(f"position in {symbol} is {quantity!r}: pass a finite share count")
    return float(quantity)


def _wanted_stop(symbol: str, quantity: float, entry_prices: Mapping[str, float],
                 policy: StopPolicy) -> WorkingStop:
    if policy.trailing:  # trails the market from when it is placed: no entry price needed
        return WorkingStop("", symbol, quantity, OrderType.TRAILING_STOP,
                           trail_percent=round(policy.trail_fraction * 100.0, 6))
    entry = entry_prices.get(symbol)
    if isinstance(entry, bool) or not isinstance(entry, (int, float)) \
            or not math.isfinite(entry) or entry <= 0:
        raise ValueError(
            f"no usable entry price for the long {symbol} position (got {entry!r}): pass the "
            "average entry price of every held symbol, e.g. from the broker's positions")
    stop_price = stop_price_below(entry, policy.stop_percent)
    if stop_price <= 0:
        raise ValueError(f"{symbol}: entry {entry} gives a stop price of zero; no stop is possible")
    return WorkingStop("", symbol, quantity, OrderType.STOP, stop_price=stop_price)


def _fits(stop: WorkingStop, wanted: WorkingStop) -> bool:
    if stop.order_type is not wanted.order_type:
        return False
    if abs(stop.quantity - wanted.quantity) > QUANTITY_EPSILON:
        return False
    if stop.stop_price is not None and wanted.stop_price is not None \
            and not math.isclose(stop.stop_price, wanted.stop_price, abs_tol=1e-6):
        return False
    return stop.trail_percent is None or wanted.trail_percent is None \
        or math.isclose(stop.trail_percent, wanted.trail_percent, abs_tol=1e-6)


def _unused_id(strategy: str, session: date, symbol: str, used: set[str]) -> str:
    for replacement in range(1, MAX_REPLACEMENTS_PER_SESSION + 1):
        candidate = stop_client_order_id(strategy, session, symbol, replacement)
        if candidate not in used:
            return candidate
    raise RuntimeError(f"{symbol}: {MAX_REPLACEMENTS_PER_SESSION} stop ids already used on "
                       f"{session}; positions are changing far faster than a daily loop expects")


def _why_no_stop(symbol: str, held: float, selling: float) -> str:
    if selling > QUANTITY_EPSILON:
        return (f"{symbol}: cancel the stop before the rebalance sell of {selling:g} is sent "
                f"({held:g} held, none left to protect)")
    if held < -QUANTITY_EPSILON:
        return f"{symbol}: short {-held:g}, cancel the sell stop (it would add to the short)"
    return f"{symbol}: position closed, cancel its stop"


def _why_new_stop(symbol: str, quantity: float, wanted: WorkingStop,
                  replaced: list[WorkingStop]) -> str:
    level = f"stop at {wanted.stop_price:g}" if wanted.stop_price is not None \
        else f"trailing {wanted.trail_percent:g} %"
    if replaced:
        return f"{symbol}: replace the stop with one for {quantity:g} shares, {level}"
    return f"{symbol}: new protective stop for {quantity:g} shares, {level}"
