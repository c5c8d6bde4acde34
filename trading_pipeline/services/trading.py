"""The daily trading steps after predictions: target, orders, reconciliation, performance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import polars as pl

from trading_pipeline.brokers.base import Broker
from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.orders import OrderIntent, OrderStatusReport, Side
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk import (
    LimitCheck,
    TargetResult,
    build_target as construct_target,
    check_orders,
    check_target,
    compute_var,
    evaluate_kill_switch,
    plan_stops,
    unconfirmed_cancels,
    working_stops_from,
)
from trading_pipeline.domain.safety import SubmissionDecision, SubmissionKeys, may_submit, reduces_exposure
from trading_pipeline.services.modeling import version_used
from trading_pipeline.services.reconcile import Reconciliation, reconcile
from trading_pipeline.services.submission import outcomes_frame, submit_intents
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

TARGETS = "target_portfolio"
TARGET_VAR = "target_var"
RISK_CHECKS = "risk_checks"
ORDERS = "submitted_orders"
BREAKS = "reconciliation_breaks"
PERFORMANCE = "performance"


def closes(warehouse: Warehouse, session: date) -> pl.DataFrame:
    bars = market_store.read_bars(warehouse, [session])
    if bars.is_empty():
        raise RuntimeError(f"no bars stored for {session}: materialise market_bars for {session} first")
    return bars.select("symbol", "close")


def returns_history(warehouse: Warehouse, session: date, lookback: int) -> pl.DataFrame:
    """Daily adjusted-close returns (session, symbol, return) of the `lookback` sessions to D."""
    sessions = sessions_back(session, lookback + 1)
    bars = market_store.read_bars_through(warehouse, session, sessions[0])
    return (
        bars.sort("symbol", "session")
        .with_columns((pl.col("adj_close") / pl.col("adj_close").shift(1).over("symbol") - 1).alias("return"))
        .filter(pl.col("session") > sessions[0])
        .select("session", "symbol", "return")
    )


def checks_frame(session: date, checks: list[LimitCheck] | tuple[LimitCheck, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        {"session": [session] * len(checks), "check": [c.name for c in checks],
         "limit": [float(c.limit) for c in checks], "actual": [float(c.actual) for c in checks],
         "passed": [c.passed for c in checks], "detail": [c.detail for c in checks]},
        schema={"session": pl.Date, "check": pl.String, "limit": pl.Float64, "actual": pl.Float64,
                "passed": pl.Boolean, "detail": pl.String},
    )


def build_target(warehouse: Warehouse, broker: Broker, session: date,
                 strategy) -> tuple[TargetResult, float]:
    """The risk-limited target for D+1, stored with its VaR figures and limit checks."""
    scores = warehouse.read_partition("predictions", session)
    if scores.is_empty():
        raise RuntimeError(f"no predictions stored for {session}: materialise predictions first")
    held = {p.symbol: p.quantity for p in broker.positions()}
    equity = broker.account().equity
    result = construct_target(session, scores.select("symbol", "score"), closes(warehouse, session),
                              returns_history(warehouse, session, strategy.var_lookback), equity,
                              strategy.construction(), held)
    warehouse.replace_partition(TARGETS, session, result.frame)
    warehouse.replace_partition(
        TARGET_VAR, session, result.var_figures.positions.with_columns(pl.lit(session).alias("session")))
    warehouse.replace_partition(RISK_CHECKS, session, checks_frame(session, result.checks))
    return result, equity


def _decider(keys: SubmissionKeys, held: dict[str, float]) -> Callable[[OrderIntent], SubmissionDecision]:
    return lambda intent: may_submit(keys, reduces_exposure=reduces_exposure(intent, held))


@dataclass(frozen=True)
class SubmissionSummary:
    outcomes: pl.DataFrame
    entries: SubmissionDecision  # what held back (or let through) orders that add exposure
    stops_placed: int
    stops_canceled: int
    risk_failures: tuple[str, ...]
    notes: tuple[str, ...]


def submit_rebalance(ledger: Ledger, broker: Broker, session: date, strategy) -> SubmissionSummary:
    """Cancel stale stops, send the rebalance, place protective stops: in that order."""
    warehouse = ledger.warehouse
    positions = broker.positions()
    held = {p.symbol: p.quantity for p in positions}
    keys = _keys(ledger, broker.name, strategy, session)
    recorded = ledger.intents_for_session(session, strategy.strategy)
    if recorded:
        # The session's decisions were made by an earlier run: a re-run never adds orders,
        # it only retries what that run left `submitting` or held back (`not_sent`).
        outcomes = outcomes_frame(submit_intents(recorded, broker, ledger, _decider(keys, held)))
        return SubmissionSummary(outcomes, may_submit(keys), 0, 0, (),
                                 (f"decisions for {session} were made by an earlier run",))
    if not warehouse.table_exists(TARGETS):
        raise RuntimeError(f"no target portfolio stored for {session}: materialise target_portfolio first")
    target = warehouse.read_partition(TARGETS, session)
    if keys.kill_switch_engaged and strategy.flatten_on_kill_switch:
        target = target.clear()
    account = broker.account()
    prices = dict(closes(warehouse, session).iter_rows())
    intents = rebalance_orders(session, strategy.strategy, target, held, prices,
                               strategy.min_order_value, account.buying_power)

    failures = _order_path_failures(warehouse, session, target, intents, held, prices, account, strategy)
    for failure in failures:
        ledger.record_risk_event(session, "order_path_check", failure)
    keys = replace(keys, risk_failures=failures)
    decide = _decider(keys, held)

    plan = plan_stops(session, strategy.strategy, held,
                      {p.symbol: p.avg_entry_price for p in positions},
                      working_stops_from(broker.open_orders()), strategy.stop_policy(),
                      rebalance_orders=intents)
    canceled: list[OrderStatusReport] = []
    if may_submit(keys, reduces_exposure=True).send:  # a dry run touches nothing at the broker
        for client_order_id in plan.cancel:
            report = broker.cancel(client_order_id)
            if ledger.order(client_order_id) is not None:
                ledger.record_status(report)
            canceled.append(report)
    blocked = unconfirmed_cancels(canceled)  # a stop that filled first already sold those shares
    intents = [i for i in intents if not (i.side is Side.SELL and i.symbol in blocked)]
    outcomes = submit_intents(intents, broker, ledger, decide)
    outcomes += submit_intents(plan.place, broker, ledger, decide)
    frame = outcomes_frame(outcomes)
    warehouse.replace_partition(ORDERS, session, frame.with_columns(pl.lit(session).alias("session")))
    return SubmissionSummary(frame, may_submit(keys), len(plan.place), len(canceled), failures,
                             tuple(plan.notes))


def _order_path_failures(warehouse: Warehouse, session: date, target: pl.DataFrame,
                         intents: list[OrderIntent], held: dict[str, float], prices: dict[str, float],
                         account, strategy) -> tuple[str, ...]:
    """The limits checked again just before sending (defence in depth)."""
    limits = strategy.risk_limits()
    weights = dict(zip(target["symbol"].to_list(), target["weight"].to_list())) if target.height else {}
    weights = {s: w for s, w in weights.items() if w}
    figures = compute_var(weights, returns_history(warehouse, session, limits.var_lookback),
                          account.equity, limits.var_confidence, limits.var_lookback) if weights else None
    checks = check_target(target, account.equity, limits, figures) if weights else []
    checks += check_orders(intents, prices, account.buying_power, limits, held)
    return tuple(c.detail for c in checks if not c.passed)


def _keys(ledger: Ledger, broker_name: str, strategy, session: date) -> SubmissionKeys:
    engaged, _ = ledger.kill_switch_engaged(broker_name)
    promotion = ledger.latest_promotion(strategy.strategy)
    in_use = version_used(ledger.warehouse, session)
    return SubmissionKeys(
        trading_env=strategy.trading_env,
        live_enabled=strategy.live_enabled,
        # the approval must be for live and for the very model version that made the scores
        promotion_approved=bool(promotion and promotion["decision"] == "approved"
                                and promotion["stage_to"] == "live"
                                and promotion["model_version"] == in_use),
        kill_switch_engaged=engaged,
        dry_run=strategy.dry_run,
    )


def reconcile_session(warehouse: Warehouse, ledger: Ledger, broker: Broker,
                      session: date) -> Reconciliation:
    result = reconcile(broker, ledger, session)
    warehouse.replace_partition(BREAKS, session,
                                result.breaks.with_columns(pl.lit(session).alias("session")))
    return result


@dataclass(frozen=True)
class PerformanceResult:
    curve: pl.DataFrame
    initial_equity: float
    kill_switch_engaged: bool
    kill_switch_reason: str | None
    kill_switch_newly_engaged: bool = False  # by this session's figures


def performance_through(ledger: Ledger, broker_name: str, session: date,
                        strategy) -> PerformanceResult:
    """The equity curve to D; a daily-loss or drawdown breach engages the kill switch."""
    history = ledger.account_history(broker_name, session)
    if history.is_empty():
        raise RuntimeError(f"no account snapshot up to {session}: materialise reconciled_positions first")
    initial = float(history["equity"][0])
    curve = perf.equity_curve(history, initial)
    ledger.warehouse.replace_partition(PERFORMANCE, session, curve.filter(pl.col("session") == session))
    breach = evaluate_kill_switch(history.select("session", "equity"), strategy.kill_switch_rules())
    engaged, reason = ledger.kill_switch_engaged(broker_name)
    newly = breach.engage and not engaged
    if newly:
        reason = "; ".join(breach.reasons)
        ledger.set_kill_switch(broker_name, True, reason, actor="risk monitor")
        ledger.record_risk_event(session, "kill_switch", reason)
        engaged = True
    return PerformanceResult(curve, initial, engaged, reason, newly)
