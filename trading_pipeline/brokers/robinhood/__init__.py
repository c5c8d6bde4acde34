"""Robinhood (live only) through robin_stocks, with a TOTP login via pyotp.

Importing this package does not import robin_stocks; building a `RobinhoodBroker` does.
"""

from trading_pipeline.brokers.robinhood.broker import RobinhoodBroker
from trading_pipeline.brokers.robinhood.config import (
    ENV_PASSWORD,
    ENV_TOTP_SECRET,
    ENV_USERNAME,
    RobinhoodConfig,
    RobinhoodLoginError,
    RobinhoodModeError,
    ensure_environment_allowed,
)
from trading_pipeline.brokers.robinhood.transport import robinhood_rate_limiter

__all__ = [
    "ENV_PASSWORD",
    "ENV_TOTP_SECRET",
    "ENV_USERNAME",
    "RobinhoodBroker",
    "RobinhoodConfig",
    "RobinhoodLoginError",
    "RobinhoodModeError",
    "ensure_environment_allowed",
    "robinhood_rate_limiter",
]
