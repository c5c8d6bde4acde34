"""A fake Robinhood on 127.0.0.1 for the robin_stocks adapter's tests."""

from trading_pipeline_tests.brokers.fakes.robinhood.market import API, FakeMarket
from trading_pipeline_tests.brokers.fakes.robinhood.server import FakeRobinhood
from trading_pipeline_tests.brokers.fakes.robinhood.wiring import (
    FAKE_PASSWORD,
    FAKE_TOTP_SECRET,
    FAKE_USERNAME,
    LoopbackTransport,
    RefuseNetwork,
    RobinhoodRig,
    VirtualClock,
    reset_robin_stocks,
)

__all__ = [
    "API",
    "FAKE_PASSWORD",
    "FAKE_TOTP_SECRET",
    "FAKE_USERNAME",
    "FakeMarket",
    "FakeRobinhood",
    "LoopbackTransport",
    "RefuseNetwork",
    "RobinhoodRig",
    "VirtualClock",
    "reset_robin_stocks",
]
