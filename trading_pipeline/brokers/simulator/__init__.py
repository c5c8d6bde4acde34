"""The built-in paper broker local runs use: same `Broker` protocol as the real venues, fills
from daily bars with no look-ahead, state in the warehouse's `sim_` tables."""

from trading_pipeline.brokers.simulator.broker import (
    BarDataError,
    PaperSimulator,
    SimulatorClockError,
)
from trading_pipeline.brokers.simulator.config import CommissionModel, SimulatorConfig

__all__ = [
    "BarDataError",
    "CommissionModel",
    "PaperSimulator",
    "SimulatorClockError",
    "SimulatorConfig",
]
