"""The fill rules moved to `trading_pipeline.domain.execution.fills`, shared with the backtest;
this module keeps the old import path working."""

from trading_pipeline.domain.execution.fills import (  # noqa: F401 - re-exported
    Bar,
    Match,
    Step,
    WorkingOrder,
    commission,
    limit_match,
    market_match,
    slipped,
    step,
    stop_limit_step,
    stop_match,
    tradable_quantity,
    trailing_stop_level,
    trailing_stop_step,
    volume_budget,
)
