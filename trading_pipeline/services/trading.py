"""The daily trading steps after predictions: target, orders, reconciliation, performance."""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_pipeline.brokers.base import Broker
from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.portfolio import PortfolioLimits, build_target_portfolio
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.safety import SubmissionDecision, SubmissionKeys, may_submit
from trading_pipeline.services.reconcile import Reconciliation, reconcile
from trading_pipeline.services.submission import outcomes_frame, submit_intents
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

TARGETS = "target_portfolio"
ORDERS = "submitted_orders"
BREAKS = "reconciliation_breaks"
PERFORMANCE = "performance"


def closes(warehouse: Warehouse, session: date) -> pl.DataFrame:
    bars = market_store.read_bars(warehouse, [session])
    if bars.is_empty():
        raise RuntimeError(f"no bars stored for {session}: materialise market_bars for {session} first")
    return bars.select("symbol", "close")


def build_target(warehouse: Warehouse, broker: Broker, session: date,
                 limits: PortfolioLimits) -> tuple[pl.DataFrame, float]:
    scores = warehouse.read_partition("predictions", session)
    if scores.is_empty():
        raise RuntimeError(f"no predictions stored for {session}: materialise predictions first")
    equity = broker.account().equity
    target = build_target_portfolio(session, scores, closes(warehouse, session), equity, limits)
    warehouse.replace_partition(TARGETS, session, target)
    return target, equity


def submission_decision(ledger: Ledger, strategy) -> SubmissionDecision:
    engaged, _ = ledger.kill_switch_engaged()
    promotion = ledger.latest_promotion(strategy.strategy)
    return may_submit(SubmissionKeys(
        trading_env=strategy.trading_env,
        live_enabled=strategy.live_enabled,
        promotion_approved=bool(promotion and promotion["decision"] == "approved"
                                and promotion["stage_to"] == "live"),
        kill_switch_engaged=engaged,
        dry_run=strategy.dry_run,
    ))


def submit_rebalance(ledger: Ledger, broker: Broker, session: date,
                     strategy) -> tuple[pl.DataFrame, SubmissionDecision]:
    warehouse = ledger.warehouse
    target = warehouse.read_partition(TARGETS, session)
    if target.is_empty() and not warehouse.table_exists(TARGETS):
        raise RuntimeError(f"no target portfolio stored for {session}: materialise target_portfolio first")
    held = {p.symbol: p.quantity for p in broker.positions()}
    prices = dict(closes(warehouse, session).iter_rows())
    intents = rebalance_orders(session, strategy.strategy, target, held, prices,
                               strategy.min_order_value, broker.account().buying_power)
    decision = submission_decision(ledger, strategy)
    outcomes = outcomes_frame(submit_intents(intents, broker, ledger, decision))
    warehouse.replace_partition(ORDERS, session, outcomes.with_columns(pl.lit(session).alias("session")))
    return outcomes, decision


def reconcile_session(warehouse: Warehouse, ledger: Ledger, broker: Broker,
                      session: date) -> Reconciliation:
    result = reconcile(broker, ledger, session)
    warehouse.replace_partition(BREAKS, session,
                                result.breaks.with_columns(pl.lit(session).alias("session")))
    return result


def performance_through(warehouse: Warehouse, ledger: Ledger, broker_name: str,
                        session: date) -> tuple[pl.DataFrame, float]:
    history = ledger.account_history(broker_name, session)
    if history.is_empty():
        raise RuntimeError(f"no account snapshot up to {session}: materialise reconciled_positions first")
    initial = float(history["equity"][0])
    curve = perf.equity_curve(history, initial)
    warehouse.replace_partition(PERFORMANCE, session, curve.filter(pl.col("session") == session))
    return curve, initial
