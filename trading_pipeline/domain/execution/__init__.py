"""The simulated venue's pure rules: costs, fills, order acceptance and one session of trading.

One piece of code for both users of the simulated market: the paper simulator
(`brokers/simulator`, which adds persistence and the `Broker` protocol around these rules) and
the backtest (`domain/backtest.py`, which keeps the same state in memory). A change to how an
order fills or what it costs changes both at once.
"""

from trading_pipeline.domain.execution.acceptance import (
    AccountFigures,
    WorkingBook,
    account_figures,
    accept_order,
    cancel_order,
    rejection_reason,
)
from trading_pipeline.domain.execution.config import CommissionModel, ExecutionConfig
from trading_pipeline.domain.execution.fills import Bar, commission, slipped
from trading_pipeline.domain.execution.session import SessionOutcome, apply_fill, process_session
from trading_pipeline.domain.execution.venue import Position, SimOrder, close_utc

__all__ = [
    "AccountFigures",
    "Bar",
    "CommissionModel",
    "ExecutionConfig",
    "Position",
    "SessionOutcome",
    "SimOrder",
    "WorkingBook",
    "accept_order",
    "account_figures",
    "apply_fill",
    "cancel_order",
    "close_utc",
    "commission",
    "process_session",
    "rejection_reason",
    "slipped",
]
