"""Pure fill rules: what one working order does against one daily bar, and what it costs.

Every function takes plain numbers and returns plain numbers, so each rule can be checked
by hand. A daily bar does not say in which order its open, high and low happened; where that
matters the rules assume the order least favourable to us (stated at each function).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from trading_pipeline.domain.execution.config import CommissionModel, ExecutionConfig
from trading_pipeline.domain.orders import OrderType, Side


@dataclass(frozen=True, slots=True)
class Bar:
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Match:
    """A price the order trades at in this bar; `at_open` when it trades on the opening print."""

    price: float
    at_open: bool


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """The part of an order the fill rules need, including what it carries between bars."""

    side: Side
    order_type: OrderType
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_amount: float | None = None
    triggered: bool = False  # a stop, stop-limit or trailing stop whose trigger was hit
    trail_reference: float | None = None  # best price seen since the trailing stop existed


@dataclass(frozen=True, slots=True)
class Step:
    """What happened to one order in one bar: maybe a price, and the state it carries on."""

    match: Match | None
    order: WorkingOrder


def slipped(price: float, side: Side, slippage_bps: float) -> float:
    """A price moved against us by `slippage_bps` basis points."""
    sign = 1.0 if side is Side.BUY else -1.0
    return price * (1.0 + sign * slippage_bps / 10_000.0)


def market_match(side: Side, bar: Bar, slippage_bps: float) -> Match:
    """Market orders trade on the open, plus slippage."""
    return Match(slipped(bar.open, side, slippage_bps), at_open=True)


def limit_match(side: Side, limit: float, bar: Bar) -> Match | None:
    """A buy trades when the low reaches the limit, at the better of open and limit (a gap
    down through the limit trades at the open). Sells mirror it with the high."""
    if side is Side.BUY:
        if bar.low > limit:
            return None
        return Match(bar.open, True) if bar.open <= limit else Match(limit, False)
    if bar.high < limit:
        return None
    return Match(bar.open, True) if bar.open >= limit else Match(limit, False)


def stop_match(side: Side, stop: float, bar: Bar, slippage_bps: float) -> Match | None:
    """A sell stop triggers when the low reaches the stop and trades at min(open, stop) minus
    slippage: a gap through the stop trades at the open, not the stop. Buys mirror it."""
    if side is Side.SELL:
        if bar.low > stop:
            return None
        gapped = bar.open <= stop
    else:
        if bar.high < stop:
            return None
        gapped = bar.open >= stop
    trigger_price = bar.open if gapped else stop
    return Match(slipped(trigger_price, side, slippage_bps), at_open=gapped)


def stop_limit_step(side: Side, stop: float, limit: float, bar: Bar) -> tuple[bool, Match | None]:
    """(triggered, match) for a stop-limit that has not triggered yet.

    It triggers like a stop, at t = the open on a gap, else the stop. Then it is a limit
    order entering the market at t: it trades at t when t is within the limit. Otherwise it
    trades at the limit within this bar only after a gap (the whole bar came after the
    trigger); without a gap we cannot know whether the bar came back after the trigger, so
    it keeps working as a plain limit order from the next bar.
    """
    if side is Side.SELL:
        if bar.low > stop:
            return False, None
        gapped = bar.open <= stop
        trigger_price = bar.open if gapped else stop
        if trigger_price >= limit:
            return True, Match(trigger_price, gapped)
        return True, (Match(limit, False) if gapped and bar.high >= limit else None)
    if bar.high < stop:
        return False, None
    gapped = bar.open >= stop
    trigger_price = bar.open if gapped else stop
    if trigger_price <= limit:
        return True, Match(trigger_price, gapped)
    return True, (Match(limit, False) if gapped and bar.low <= limit else None)


def trailing_stop_level(side: Side, reference: float, trail_percent: float | None,
                        trail_amount: float | None) -> float:
    """The stop a trailing order stands at: `trail` below the best high (sells), above the
    best low (buys)."""
    if trail_amount is not None:
        return reference - trail_amount if side is Side.SELL else reference + trail_amount
    fraction = (trail_percent or 0.0) / 100.0
    return reference * (1.0 - fraction) if side is Side.SELL else reference * (1.0 + fraction)


def trailing_stop_step(order: WorkingOrder, bar: Bar, slippage_bps: float) -> Step:
    """One bar of an untriggered trailing stop.

    The trigger is checked against the stop carried in from before the bar; only then does the
    reference move to this bar's high (sells) or low (buys) for the next bar. A bar never
    triggers on a stop it raised itself, because a daily bar cannot say whether its high
    came before its low.
    """
    reference = order.trail_reference
    if reference is None:
        raise ValueError("a trailing stop needs a reference price (the last close when it was placed)")
    stop = trailing_stop_level(order.side, reference, order.trail_percent, order.trail_amount)
    match = stop_match(order.side, stop, bar, slippage_bps)
    if match is not None:
        return Step(match, replace(order, triggered=True))
    best = max(reference, bar.high) if order.side is Side.SELL else min(reference, bar.low)
    return Step(None, replace(order, trail_reference=best))


def step(order: WorkingOrder, bar: Bar, slippage_bps: float) -> Step:
    """Dispatch one order to its rule. A triggered stop or trailing stop is a market order from
    then on; a triggered stop-limit is a limit order."""
    kind = order.order_type
    if kind is OrderType.MARKET or (order.triggered and kind in (OrderType.STOP, OrderType.TRAILING_STOP)):
        return Step(market_match(order.side, bar, slippage_bps), order)
    if kind is OrderType.LIMIT or (order.triggered and kind is OrderType.STOP_LIMIT):
        return Step(limit_match(order.side, _required(order.limit_price, "limit_price"), bar), order)
    if kind is OrderType.STOP:
        match = stop_match(order.side, _required(order.stop_price, "stop_price"), bar, slippage_bps)
        return Step(match, replace(order, triggered=match is not None))
    if kind is OrderType.STOP_LIMIT:
        triggered, match = stop_limit_step(order.side, _required(order.stop_price, "stop_price"),
                                           _required(order.limit_price, "limit_price"), bar)
        return Step(match, replace(order, triggered=triggered))
    if kind is OrderType.TRAILING_STOP:
        return trailing_stop_step(order, bar, slippage_bps)
    raise ValueError(f"the simulator has no fill rule for order type {kind!r}")


def volume_budget(bar: Bar, max_volume_participation: float) -> float:
    """How many shares all orders in one symbol may trade in this bar together."""
    return max(bar.volume, 0.0) * max_volume_participation


def tradable_quantity(remaining: float, budget: float, allow_fractional: bool) -> float:
    """The part of `remaining` that fits in `budget`: whole shares unless fractions are allowed
    (then rounded down to a millionth of a share, so sums stay exact enough)."""
    quantity = min(remaining, max(budget, 0.0))
    if allow_fractional:
        return math.floor(quantity * 1_000_000 + 1e-6) / 1_000_000
    return float(math.floor(quantity + 1e-9))


def commission(config: ExecutionConfig, quantity: float, price: float) -> float:
    """What one fill costs."""
    if config.commission_model is CommissionModel.PERCENT_OF_NOTIONAL:
        return quantity * price * config.commission_percent / 100.0
    return max(quantity * config.commission_per_share, config.commission_min)


def _required(value: float | None, name: str) -> float:
    if value is None:
        raise ValueError(f"this order type needs {name}")
    return value
