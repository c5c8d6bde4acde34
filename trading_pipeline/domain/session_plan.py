"""One session's decisions, planned in one place and carried out in one order.

`plan_session` turns what is known at D's close (scores, closes, returns, the account, the
positions, the working stops, the kill switch) into the whole plan: the risk-limited target,
the stops to cancel, the orders (rebalance first, then protective stops), and every reason
something is held back. `execute_plan` carries a plan out against a venue in the only order
that is safe: cancel stale stops, then send, dropping a sell whose stop filled before it could
be cancelled.

Stops go with the entry where the venue can hold one (`PlanPolicy.attach_stops`): each buy
that opens or adds to a long carries its own protective stop, planned beside it
(`PlannedOrder.attached_to` names the entry) and sent with it in one venue call, so the venue
activates it the moment the entry fills (Alpaca OTO, an IBKR child order, the simulator's
contingent order). The next session's stop upkeep replaces it with one stop for the whole
position. A venue that cannot (Robinhood) gets the stop on the session after the fill. The daily loop records the plan in the ledger before anything is sent and
executes it through the broker (`services/trading.py`); the backtest executes it through the
simulated venue (`domain/backtest.py`). Both run this code, so their decisions cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Protocol

import polars as pl

from trading_pipeline.domain.attached_stops import attached_stop_id, entry_of_attached_stop
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk import (
    ConstructionConfig,
    PortfolioInputError,
    RiskLimits,
    StopPolicy,
    TargetResult,
    build_target,
    check_orders,
    check_target,
    compute_var,
    plan_stops,
    unconfirmed_cancels,
)
from trading_pipeline.domain.risk.construction import RESULT_SCHEMA
from trading_pipeline.domain.risk.stops import WorkingStop, stop_price_below
from trading_pipeline.domain.safety import SubmissionDecision, reduces_exposure


class Step(StrEnum):
    REBALANCE = "rebalance"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    intent: OrderIntent
    step: Step
    reduces_exposure: bool  # passes the kill switch and failed order-path checks
    attached_to: str | None = None  # a stop sent with this entry (its client order id)


@dataclass(frozen=True)
class SessionState:
    """The account as the broker reports it at D's close, and the controls in force."""

    equity: float
    buying_power: float
    held: Mapping[str, float]  # symbol -> shares (negative: short)
    entry_prices: Mapping[str, float]
    working_stops: Sequence[OrderStatusReport | WorkingStop]
    kill_switch_engaged: bool = False
    frozen: Mapping[str, str] = field(default_factory=dict)  # symbol -> why its holding stays as it is


@dataclass(frozen=True)
class PlanPolicy:
    strategy: str
    construction: ConstructionConfig
    stop_policy: StopPolicy
    flatten_on_kill_switch: bool = False
    attach_stops: bool = False  # the venue holds a stop until its entry fills (see the module doc)
    # what the plan's client order ids are derived from besides the order itself (default: the
    # strategy); `order_id_key` gives each broker account its own, so paper and live orders of
    # the same session never share an id in the one ledger
    id_key: str | None = None


# The local simulator keeps the ids it always had: the backtest names its orders the same way.
ACCOUNTS_WITH_PLAIN_IDS = frozenset({"simulator"})


def order_id_key(strategy: str, account: str) -> str:
    """The key an account's order ids are derived from: the strategy, and the account unless
    it is the local simulator (the ledger keys orders by client order id alone)."""
    return strategy if account in ACCOUNTS_WITH_PLAIN_IDS else f"{strategy}@{account}"


@dataclass(frozen=True)
class SessionPlan:
    session: date
    target: TargetResult
    cancels: tuple[str, ...]  # client order ids of stops to cancel before any order is sent
    orders: tuple[PlannedOrder, ...]  # in sending order
    failures: tuple[str, ...]  # order-path checks that failed: entries are held back
    notes: tuple[str, ...]

    @property
    def intents(self) -> list[OrderIntent]:
        return [o.intent for o in self.orders]


def plan_session(session: date, scores: pl.DataFrame, closes: pl.DataFrame, returns: pl.DataFrame,
                 state: SessionState, policy: PlanPolicy, *, hold_cash: str | None = None) -> SessionPlan:
    """The whole plan for the session after D's close. Raises what `build_target` raises
    (`PortfolioInputError`, `RiskLimitBreach`) when no target within the limits exists.
    `hold_cash`: why no model scored the session (`scores` is then ignored): the target is cash,
    so what is held is sold by the same orders and stops as any exit (frozen holdings stay)."""
    limits = policy.construction.limits
    held = dict(state.held)
    target = (build_target(session, scores, closes, returns, state.equity, policy.construction, held,
                           frozen=state.frozen) if hold_cash is None else
              cash_target(session, closes, returns, state, limits, hold_cash))
    frame = target.frame
    if state.kill_switch_engaged and policy.flatten_on_kill_switch:
        frame = frame.clear()
    prices = dict(zip(closes["symbol"].to_list(), closes["close"].to_list()))
    id_key = policy.id_key or policy.strategy
    intents = _as_strategy(rebalance_orders(session, id_key, frame, held, prices,
                                            limits.min_order_value, state.buying_power), policy.strategy)
    failures = tuple(c.detail for c in check_orders(intents, prices, state.buying_power, limits, held)
                     if not c.passed)
    stops = plan_stops(session, id_key, held, state.entry_prices, state.working_stops,
                       policy.stop_policy, rebalance_orders=intents)
    orders: list[PlannedOrder] = []
    for intent in intents:
        orders.append(PlannedOrder(intent, Step.REBALANCE, reduces_exposure(intent, held)))
        if policy.attach_stops and _opens_long(intent, held):
            orders.append(_attached_stop(intent, prices[intent.symbol], policy.stop_policy))
    orders += [PlannedOrder(i, Step.STOP, reduces_exposure(i, held))
               for i in _as_strategy(stops.place, policy.strategy)]
    return SessionPlan(session=session, target=target, cancels=tuple(stops.cancel),
                       orders=tuple(orders), failures=failures,
                       notes=(*target.notes, *stops.notes))


def cash_target(session: date, closes: pl.DataFrame, returns: pl.DataFrame, state: SessionState,
                limits: RiskLimits, why: str) -> TargetResult:
    """The target when no model scores the session: nothing but the frozen holdings (kept as
    they are, no order in them), with their VaR figures and the limit checks on them."""
    prices = dict(zip(closes["symbol"].to_list(), closes["close"].to_list()))
    kept = {s: q for s, q in state.held.items() if q and s in state.frozen}
    unpriced = sorted(s for s in state.held if state.held[s] and s not in prices)
    if unpriced:
        raise PortfolioInputError(f"held symbols have no usable price for {session}: {', '.join(unpriced)}; "
                                  "they cannot be sold safely: load their prices first")
    weights = {s: q * prices[s] / state.equity for s, q in kept.items()}
    figures = compute_var(weights, returns, state.equity, limits.var_confidence, limits.var_lookback,
                          proxied=tuple(kept))
    frame = pl.DataFrame({
        "session": [session] * len(kept), "symbol": list(kept), "score": [None] * len(kept),
        "price": [prices[s] for s in kept], "weight": [weights[s] for s in kept],
        "target_shares": list(kept.values()), "target_value": [q * prices[s] for s, q in kept.items()],
        "side": ["long" if q > 0 else "short" for q in kept.values()], "current_shares": list(kept.values()),
    }, schema=RESULT_SCHEMA)
    notes = [f"holding cash, nothing scored: {why}"]
    if kept:
        notes.append("frozen, no order this session: " + "; ".join(
            f"{s} (held, kept): {state.frozen[s]}" for s in sorted(kept)))
    return TargetResult(frame, figures, tuple(notes), tuple(check_target(frame, state.equity, limits, figures)))


def _as_strategy(intents: Sequence[OrderIntent], strategy: str) -> list[OrderIntent]:
    """Intents whose ids came from the account's id key, carrying the strategy's own name."""
    return [i if i.strategy == strategy else replace(i, strategy=strategy) for i in intents]


def relink_attached(orders: Sequence[PlannedOrder]) -> tuple[PlannedOrder, ...]:
    """Orders read back from a record that keeps no link: each stop whose id is that of an
    entry's attached stop (`attached_stop_id`) goes with that entry again."""
    ids = {o.intent.client_order_id for o in orders}
    relinked = []
    for order in orders:
        entry = entry_of_attached_stop(order.intent.client_order_id)
        if order.step is Step.STOP and order.attached_to is None and entry in ids:
            order = PlannedOrder(order.intent, order.step, order.reduces_exposure, attached_to=entry)
        relinked.append(order)
    return tuple(relinked)


def _opens_long(intent: OrderIntent, held: Mapping[str, float]) -> bool:
    """A buy of whole shares that opens or adds to a long position (a buy covering a short
    needs no stop; Alpaca takes no fractional OTO order, so a fractional buy's stop follows at
    the next session everywhere, which keeps the backtest the daily loop's twin)."""
    return (intent.side is Side.BUY and held.get(intent.symbol, 0.0) >= 0
            and float(intent.quantity).is_integer())


def _attached_stop(entry: OrderIntent, reference_price: float, policy: StopPolicy) -> PlannedOrder:
    """The entry's own stop: a fixed GTC sell stop for the bought shares, below D's close by the
    policy's distance (the fill price is not known yet; a trailing policy's stop trails from the
    next session, when the upkeep replaces this one)."""
    distance = policy.trail_fraction if policy.trailing else policy.stop_percent
    stop = OrderIntent(
        client_order_id=attached_stop_id(entry.client_order_id), symbol=entry.symbol, side=Side.SELL,
        quantity=entry.quantity, order_type=OrderType.STOP, time_in_force=TimeInForce.GTC,
        stop_price=stop_price_below(reference_price, distance), session=entry.session,
        strategy=entry.strategy, purpose=OrderPurpose.STOP_LOSS)
    # it only ever sells what its entry bought: it reduces exposure, whatever is held now
    return PlannedOrder(stop, Step.STOP, True, attached_to=entry.client_order_id)


class PlanVenue(Protocol):
    """Where a plan is carried out: the broker through the ledger, or the backtest's venue."""

    def cancel(self, client_order_id: str) -> OrderStatusReport: ...

    def submit(self, intent: OrderIntent) -> OrderStatusReport: ...

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent
                         ) -> tuple[OrderStatusReport | None, OrderStatusReport | None]:
        """The entry and the stop it carries, in one venue call (None: not sent)."""
        ...

    def hold(self, intent: OrderIntent, reason: str) -> None: ...


STOP_FILLED_FIRST = "its protective stop filled before it could be cancelled: those shares are sold already"
ENTRY_NOT_SENT = "its entry was not sent"


@dataclass(frozen=True, slots=True)
class Outcome:
    intent: OrderIntent
    report: OrderStatusReport | None  # None: not sent
    reason: str | None  # why not sent


def execute_plan(plan: SessionPlan, venue: PlanVenue,
                 decide: Callable[[PlannedOrder], SubmissionDecision], *,
                 may_cancel: bool = True) -> list[Outcome]:
    """Cancel the plan's stale stops, then send its orders in order. `decide` is asked just
    before each order (the kill switch can be engaged mid-plan); an order it refuses is held
    with its reasons. A sell whose stop filled first is held: the shares are gone.
    `may_cancel` False (a dry run): nothing is touched at the venue, so no cancel either."""
    canceled = [venue.cancel(client_order_id) for client_order_id in plan.cancels] if may_cancel else []
    blocked = unconfirmed_cancels(canceled)
    attached = {o.attached_to: o.intent for o in plan.orders if o.attached_to is not None}
    outcomes: list[Outcome] = []
    for order in plan.orders:
        intent = order.intent
        if order.attached_to is not None:
            continue  # sent, or held, with its entry
        stop = attached.get(intent.client_order_id)
        if intent.side is Side.SELL and order.step is Step.REBALANCE and intent.symbol in blocked:
            venue.hold(intent, STOP_FILLED_FIRST)
            outcomes.append(Outcome(intent, None, STOP_FILLED_FIRST))
            continue
        decision = decide(order)  # an attached stop follows its entry's decision
        if not decision.send:
            venue.hold(intent, decision.explanation)
            outcomes.append(Outcome(intent, None, decision.explanation))
            if stop is not None:
                why = f"{ENTRY_NOT_SENT}: {decision.explanation}"
                venue.hold(stop, why)
                outcomes.append(Outcome(stop, None, why))
            continue
        if stop is None:
            outcomes.append(Outcome(intent, venue.submit(intent), None))
            continue
        entry_report, stop_report = venue.submit_with_stop(intent, stop)
        outcomes.append(Outcome(intent, entry_report, None))
        outcomes.append(Outcome(stop, stop_report, None))
    return outcomes
