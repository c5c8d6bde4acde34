"""Alpaca (paper and live) through alpaca-py's TradingClient.

alpaca-py (and the pandas it imports) is loaded only when a broker is built or an order
translated, so importing this package for its config stays light.
"""

from trading_pipeline.brokers.alpaca.config import (
    ENV_BASE_URL,
    ENV_KEY_ID,
    ENV_SECRET_KEY,
    LIVE_URL,
    PAPER_URL,
    AlpacaConfig,
)

__all__ = [
    "ENV_BASE_URL",
    "ENV_KEY_ID",
    "ENV_SECRET_KEY",
    "LIVE_URL",
    "PAPER_URL",
    "AlpacaBroker",
    "AlpacaConfig",
]


def __getattr__(name: str):
    if name == "AlpacaBroker":
        from trading_pipeline.brokers.alpaca.broker import AlpacaBroker

        return AlpacaBroker
    raise AttributeError(name)
