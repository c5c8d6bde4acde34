"""The acceptance rules moved to `trading_pipeline.domain.execution.acceptance`, shared with the
backtest; this module keeps the old import path working."""

from trading_pipeline.domain.execution.acceptance import (  # noqa: F401 - re-exported
    cash_needed,
    rejection_reason,
    reserved_by_working_buys,
    shares_in_working_sells,
    worst_buy_price,
)
