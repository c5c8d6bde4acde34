"""The order path at size: one session's plan of N orders through the checks (target, limits,
order checks), the ledger (the plan recorded; the orders marked `submitting` and answered, a
batch of up to `SEND_BATCH` per commit) and the paper simulator (each batch accepted into its
tables in one transaction), as `submitted_orders` runs it.

    python -m trading_pipeline_tests.benchmarks.bench_order_path [--orders 1000]

A top-N/2 book on N/2 symbols from an empty account: N/2 buys, each with the protective stop
that goes with its entry, so exactly N orders (the smoke test's 100 orders: 50 and 50). Timed
apart: deciding
(`trading.decide_session`: target, checks, plan recorded) and sending (`trading.send_session`).
The check: every planned order is acknowledged by the simulator and recorded as such.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import PortfolioConfig, RiskConfig, StrategyResource
from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.services import trading
from trading_pipeline.services.replay import store_predictions
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.benchmarks.bench_backtest import random_walk_market

SESSION = date(2024, 6, 3)
LOOKBACK = 20


def _strategy(orders: int) -> StrategyResource:
    # every limit wide enough for N positions: the path's cost is measured, not a limit's refusal
    return StrategyResource(
        portfolio=PortfolioConfig(top_k=orders, no_trade_band=0.0),
        risk=RiskConfig(max_positions=orders, max_orders_per_day=2 * orders, max_position_weight=0.9 / orders + 1e-6,
                        var_lookback=LOOKBACK, min_order_value=1.0, max_position_var=1.0, max_portfolio_var=1.0))


def order_path_account(warehouse: Warehouse, orders: int) -> tuple[PaperSimulator, Ledger, StrategyResource]:
    """A fresh paper account on a random-walk market scored for SESSION, whose plan for SESSION
    is `orders` orders: orders/2 buys, each with its protective stop. The clock is not moved."""
    entries = orders // 2
    bars = random_walk_market(entries, sessions_back(SESSION, LOOKBACK + 5))
    market_store.append_history(warehouse, bars)
    scores = bars.filter(pl.col("session") == SESSION).select(
        "session", "symbol", (pl.col("close").rank() / entries).alias("score"))
    store_predictions(warehouse, scores, model_version="bench")
    simulator = PaperSimulator(warehouse, lambda s: market_store.read_bars(warehouse, [s]),
                               SimulatorConfig(initial_cash=float(entries) * 10_000.0))
    return simulator, Ledger(warehouse), _strategy(entries)


def measure(orders: int = 1000) -> dict:
    entries = orders // 2  # every entry carries its stop
    with tempfile.TemporaryDirectory() as folder:
        warehouse = Warehouse(Path(folder) / "warehouse.duckdb")
        simulator, ledger, strategy = order_path_account(warehouse, orders)
        with warehouse.held():
            simulator.advance_to(SESSION)
            opener = trading.already_open(simulator)
            start = time.perf_counter()
            cpu = time.process_time()
            trading.decide_session(ledger, simulator.name, SESSION, strategy, opener)
            decided = time.perf_counter()
            summary = trading.send_session(ledger, simulator.name, SESSION, strategy, opener)
            end, cpu = time.perf_counter(), time.process_time() - cpu
        sent = summary.outcomes
        accepted = sent.filter(pl.col("status").is_in(["new", "accepted", "filled", "partially_filled"])).height
        at_venue = len(simulator.open_orders())
        stops = summary.stops_placed
    return {"seconds": end - start, "cpu_seconds": cpu,
            "check": (f"all {sent.height} acknowledged" if sent.height == orders == accepted == at_venue
                      and stops == entries
                      else f"MISMATCH: {sent.height} planned ({stops} stops), {accepted} acknowledged, "
                           f"{at_venue} at the venue"),
            "detail": f"{sent.height} orders ({sent.height - stops} entries, {stops} stops): "
                      f"decide {decided - start:.2f} s (target, checks, plan recorded), "
                      f"send {end - decided:.2f} s (simulator and ledger)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1000])
    args = parser.parse_args()
    for orders in args.orders:
        row = measure(orders)
        print(f"{orders} orders: {row['seconds']:.2f} s wall, CPU {row['cpu_seconds']:.2f} s; "
              f"{row['detail']} ({row['check']})")


if __name__ == "__main__":
    main()
