"""Replay the daily loop over a run of sessions through the paper simulator, without Dagster.

Each session runs what the daily assets run, in their order, through the same services:
`trading.decide_session` (target_portfolio), `trading.send_session` (submitted_orders),
`trading.reconcile_session` (reconciled_positions) and `trading.performance_through`
(performance). Bars and predictions must already be stored for every session (the
market_bars and predictions assets, or `store_predictions`). Used by the backtest parity test
and for scripted paper runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.brokers.simulator import PaperSimulator
from trading_pipeline.domain.backtest import POSITIONS_SCHEMA  # the same frame as the backtest's
from trading_pipeline.services import trading
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

PREDICTIONS = "predictions"

DAILY_SCHEMA = {
    "session": pl.Date,
    "equity": pl.Float64,
    "cash": pl.Float64,
    "positions": pl.Int64,
    "orders": pl.Int64,  # decided after this session's close
    "stops_placed": pl.Int64,
    "stops_canceled": pl.Int64,
    "breaks": pl.Int64,
    "kill_switch_engaged": pl.Boolean,  # after this session's performance check
    "entries": pl.String,  # why entries were (not) sent
}


@dataclass(frozen=True)
class ReplayResult:
    daily: pl.DataFrame  # DAILY_SCHEMA, one row per session
    positions: pl.DataFrame  # POSITIONS_SCHEMA: the broker's positions at each session's close


def store_predictions(warehouse: Warehouse, scores: pl.DataFrame, model_version: str) -> list[date]:
    """Write `scores` (session, symbol, score) as the predictions of each of their sessions,
    as the predictions asset does; returns the sessions written."""
    missing = [c for c in ("session", "symbol", "score") if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack the columns {missing}: pass session, symbol, score")
    frame = scores.select("session", "symbol", pl.col("score").cast(pl.Float64),
                          pl.lit(str(model_version)).alias("model_version")).sort("session", "symbol")
    sessions = frame["session"].unique().sort().to_list()
    for session in sessions:
        warehouse.replace_partition(PREDICTIONS, session, frame.filter(pl.col("session") == session))
    return sessions


def replay_daily_loop(warehouse: Warehouse, simulator: PaperSimulator, sessions: Sequence[date],
                      strategy, ledger: Ledger | None = None) -> ReplayResult:
    """Run the daily loop's trading steps for each of `sessions`, in order, against `simulator`
    (whose clock moves to each session first). `strategy` is a `StrategyResource` or anything
    with its fields and methods."""
    ledger = ledger or Ledger(warehouse)
    days: list[dict] = []
    held: list[dict] = []
    for session in sorted(sessions):
        with warehouse.held():
            simulator.advance_to(session)
            broker = trading.already_open(simulator)
            trading.decide_session(ledger, simulator.name, session, strategy, broker)
            submitted = trading.send_session(ledger, simulator.name, session, strategy, broker)
            reconciled = trading.reconcile_session(warehouse, ledger, simulator.name, session, broker)
            performance = trading.performance_through(ledger, simulator.name, session, strategy)
        days.append({
            "session": session, "equity": reconciled.account.equity,
            "cash": reconciled.account.cash, "positions": len(reconciled.positions),
            "orders": submitted.outcomes.height, "stops_placed": submitted.stops_placed,
            "stops_canceled": submitted.stops_canceled, "breaks": reconciled.break_count,
            "kill_switch_engaged": performance.kill_switch_engaged,
            "entries": submitted.entries.explanation,
        })
        held += [{"session": session, "symbol": p.symbol, "quantity": p.quantity,
                  "avg_entry_price": p.avg_entry_price, "market_price": p.market_price}
                 for p in reconciled.positions]
    return ReplayResult(pl.DataFrame(days, schema=DAILY_SCHEMA),
                        pl.DataFrame(held, schema=POSITIONS_SCHEMA))
