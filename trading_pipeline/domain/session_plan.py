"""One session's decisions, planned in one place and carried out in one order.

`plan_session` turns what is known at D's close (scores, closes, returns, the account, the
positions, the working stops, the kill switch) into the whole plan: the risk-limited target,
the stops to cancel, the orders (rebalance first, then protective stops), and every reason
something is held back. `execute_plan` carries a plan out against a venue in the only order
that is safe: cancel stale stops, then send, dropping a sell whose stop filled before it could
be cancelled. The daily loop records the plan in the ledger before anything is sent and
executes it through the broker (`services/trading.py`); the backtest executes it through the
simulated venue (`domain/backtest.py`). Both run this code, so their decisions cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Protocol

import polars as pl

from trading_pipeline.domain.orders import OrderIntent, OrderStatusReport, Side
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk import (
    ConstructionConfig,
    StopPolicy,
    TargetResult,
    build_target,
    check_orders,
    plan_stops,
    unconfirmed_cancels,
)
from trading_pipeline.domain.risk.stops import WorkingStop
from trading_pipeline.domain.safety import SubmissionDecision, reduces_exposure


class Step(StrEnum):
    REBALANCE = "rebalance"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    intent: OrderIntent
    step: Step
    reduces_exposure: bool  # passes the kill switch and failed order-path checks


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
                 state: SessionState, policy: PlanPolicy) -> SessionPlan:
    """The whole plan for the session after D's close. Raises what `build_target` raises
    (`PortfolioInputError`, `RiskLimitBreach`) when no target within the limits exists."""
    limits = policy.construction.limits
    held = dict(state.held)
    target = build_target(session, scores, closes, returns, state.equity, policy.construction, held,
                          frozen=state.frozen)
    frame = target.frame
    if state.kill_switch_engaged and policy.flatten_on_kill_switch:
        frame = frame.clear()
    prices = dict(zip(closes["symbol"].to_list(), closes["close"].to_list()))
    intents = rebalance_orders(session, policy.strategy, frame, held, prices,
                               limits.min_order_value, state.buying_power)
    failures = tuple(c.detail for c in check_orders(intents, prices, state.buying_power, limits, held)
                     if not c.passed)
    stops = plan_stops(session, policy.strategy, held, state.entry_prices, state.working_stops,
                       policy.stop_policy, rebalance_orders=intents)
    orders = [PlannedOrder(i, Step.REBALANCE, reduces_exposure(i, held)) for i in intents]
    orders += [PlannedOrder(i, Step.STOP, reduces_exposure(i, held)) for i in stops.place]
    return SessionPlan(session=session, target=target, cancels=tuple(stops.cancel),
                       orders=tuple(orders), failures=failures,
                       notes=(*target.notes, *stops.notes))


class PlanVenue(Protocol):
    """Where a plan is carried out: the broker through the ledger, or the backtest's venue."""

    def cancel(self, client_order_id: str) -> OrderStatusReport: ...

    def submit(self, intent: OrderIntent) -> OrderStatusReport: ...

    def hold(self, intent: OrderIntent, reason: str) -> None: ...


STOP_FILLED_FIRST = "its protective stop filled before it could be cancelled: those shares are sold already"


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
    outcomes: list[Outcome] = []
    for order in plan.orders:
        intent = order.intent
        if intent.side is Side.SELL and order.step is Step.REBALANCE and intent.symbol in blocked:
            venue.hold(intent, STOP_FILLED_FIRST)
            outcomes.append(Outcome(intent, None, STOP_FILLED_FIRST))
            continue
        decision = decide(order)
        if not decision.send:
            venue.hold(intent, decision.explanation)
            outcomes.append(Outcome(intent, None, decision.explanation))
            continue
        outcomes.append(Outcome(intent, venue.submit(intent), None))
    return outcomes
