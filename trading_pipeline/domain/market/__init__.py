"""Market data: the bar frame, its validator, and the sources that produce bars."""

from trading_pipeline.domain.market.bars import (
    BAR_SCHEMA,
    BarValidationError,
    MarketDataError,
    MarketDataSource,
    validate_bars,
)
from trading_pipeline.domain.market.files import FileBarSource
from trading_pipeline.domain.market.synthetic import SyntheticMarket

__all__ = [
    "BAR_SCHEMA",
    "BarValidationError",
    "FileBarSource",
    "MarketDataError",
    "MarketDataSource",
    "SyntheticMarket",
    "validate_bars",
]
