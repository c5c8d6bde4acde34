"""Fault soak against the fake venues: randomised faults through the real order path, with the
ledger compared against each fake's own record. `python -m trading_pipeline_tests.benchmarks.soak`."""
