"""Interactive Brokers through ib_insync and a running TWS or IB Gateway.

ib_insync itself is imported only when a connection is made or an order translated.
"""

from trading_pipeline.brokers.ibkr.config import IbkrConfig, default_port

__all__ = ["IbkrBroker", "IbkrConfig", "default_port"]


def __getattr__(name: str):
    # keep `import trading_pipeline.brokers.ibkr` light: ib_insync pulls in numpy and eventkit
    if name == "IbkrBroker":
        from trading_pipeline.brokers.ibkr.broker import IbkrBroker

        return IbkrBroker
    raise AttributeError(name)
