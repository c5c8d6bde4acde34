"""Each session: the account's track record against the backtest of the same sessions (the newest
stretch without a missed session).

The shadow backtest trades the predictions the daily loop actually used, from the track
record's first session and its equity, with the strategy's modelled costs. It is recomputed
each session (a few seconds for a year of 50 symbols), so a rollback or a re-run is reflected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.backtest import BacktestResult
from trading_pipeline.domain.calendar import trailing_unbroken
from trading_pipeline.domain.monitor import (
    MonitorCheck,
    MonitorThresholds,
    breaches,
    checks_frame,
    evaluate_track_record,
)
from trading_pipeline.services import backtest
from trading_pipeline.services.modeling import read_predictions, unscored, version_used
from trading_pipeline.storage.account_tables import write_account_session
from trading_pipeline.storage.ledger import Ledger

MONITOR_TABLE = "monitor_checks"


@dataclass(frozen=True)
class MonitorReport:
    session: date
    checks: list[MonitorCheck]
    track: pl.DataFrame  # session, equity
    shadow: pl.DataFrame  # session, equity of the backtest over the same sessions
    model_version: str | None
    version_max_drawdown: float

    @property
    def breached(self) -> list[MonitorCheck]:
        return breaches(self.checks)


def shadow_backtest(ledger: Ledger, track: pl.DataFrame, strategy,
                    account: str | None = None) -> BacktestResult:
    """The backtest of the predictions `account` used on the track record's sessions (a session
    without them is refused by the backtest, naming it)."""
    warehouse = ledger.warehouse
    first, last = track["session"][0], track["session"][-1]
    scores = read_predictions(warehouse, account, first, last)
    scores = (scores.select("session", "symbol", "score") if scores.width
              else pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "score": pl.Float64}))
    return backtest.backtest_scores(warehouse, scores, strategy, execution=strategy.execution(),
                                    initial_cash=float(track["equity"][0]))


def monitor_session(ledger: Ledger, broker_name: str, session: date, strategy,
                    thresholds: MonitorThresholds) -> MonitorReport:
    track = ledger.account_history(broker_name, session).select("session", "equity")
    if track.is_empty():
        raise RuntimeError(f"no account snapshot up to {session}: materialise reconciled_positions first")
    stored = read_predictions(ledger.warehouse, broker_name, track["session"][0], session)
    predicted = set(stored["session"]) if stored.width else set()
    # The comparison covers the newest unbroken stretch of sessions the loop traded on stored
    # predictions: across a missed session the backtest cannot know what was held.
    stretch = trailing_unbroken([s for s in track["session"] if s in predicted])
    if session not in predicted and unscored(ledger.warehouse, session, broker_name) is not None:
        # holding cash, no model scored the session: no backtest to compare with, nothing judged
        return MonitorReport(session, [], track, track.clear(), None, 0.0)
    if not stretch:
        raise RuntimeError(f"no predictions stored for {session}: materialise predictions first")
    track = track.filter(pl.col("session").is_between(stretch[0], stretch[-1]))
    shadow = shadow_backtest(ledger, track, strategy, broker_name).daily.select("session", "equity")
    track = track.filter(pl.col("session") >= shadow["session"][0])
    version = version_used(ledger.warehouse, session, broker_name)
    try:
        version_drawdown = float(backtest.expectation(ledger.warehouse, version)["max_drawdown"])
    except backtest.ExpectationNotFound:
        version_drawdown = 0.0  # the shadow's own drawdown still bounds the track's
    checks = evaluate_track_record(track, shadow, version_drawdown, thresholds)
    frame = checks_frame(checks).with_columns(pl.lit(session).alias("session"),
                                              pl.lit(version).alias("model_version"))
    write_account_session(ledger.warehouse, MONITOR_TABLE, broker_name, session, frame)
    return MonitorReport(session, checks, track, shadow, version, version_drawdown)
