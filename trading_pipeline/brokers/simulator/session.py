"""The session engine moved to `trading_pipeline.domain.execution.session`, shared with the
backtest; this module keeps the old import path working."""

from trading_pipeline.domain.execution.session import (  # noqa: F401 - re-exported
    QUANTITY_EPSILON,
    SessionOutcome,
    apply_fill,
    intrabar_time,
    process_session,
)
