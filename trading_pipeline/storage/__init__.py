"""Persistence: the DuckDB warehouse (market data, asset outputs, the ledger)."""
