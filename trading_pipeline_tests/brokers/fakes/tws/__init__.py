"""A fake TWS / IB Gateway speaking enough of the TWS API for ib_insync 0.9.86."""

from trading_pipeline_tests.brokers.fakes.tws.server import FakeTws

__all__ = ["FakeTws"]
