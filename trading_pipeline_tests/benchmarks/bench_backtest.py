"""Speed of the backtest: 250 sessions of the daily loop's decisions. A script that prints
figures, not a test.

    python -m trading_pipeline_tests.benchmarks.bench_backtest [--symbols 50 500] [--sessions 250]

Scores are the synthetic market's planted signal computed with the real feature pipeline, so
the book turns over every few sessions as it would with a model. The strategy is the daily
loop's default (top 10, 252-session VaR window, 2 % no-trade band, 5 % stops).
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import polars as pl

from trading_pipeline.domain.backtest import BacktestConfig, run_backtest
from trading_pipeline.domain.calendar import sessions_back, sessions_between
from trading_pipeline.domain.features import compute_features
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.risk import ConstructionConfig, RiskLimits

LAST_SESSION = date(2024, 12, 31)
CONFIG = BacktestConfig(construction=ConstructionConfig(top_k=10, no_trade_band=0.02,
                                                        limits=RiskLimits()))


def run(symbols: int, sessions: int) -> None:
    window = sessions_back(LAST_SESSION, sessions)
    history = sessions_back(window[0], CONFIG.var_lookback + 1)[0]
    bars = SyntheticMarket(seed=5, universe_size=symbols).bars(sessions_between(history, window[-1]))
    scores = compute_features(bars).filter(pl.col("session") >= window[0]).select(
        "session", "symbol", (-pl.col("ret_5") + 0.5 * pl.col("ret_60")).alias("score"))
    start = time.perf_counter()
    result = run_backtest(scores, bars, CONFIG)
    seconds = time.perf_counter() - start
    summary = result.summary
    print(f"{sessions} sessions x {symbols:>4} symbols: {seconds:7.2f} s "
          f"({seconds / sessions * 1000:6.1f} ms a session; {result.fills.height} fills, "
          f"{int(summary['stop_fills'])} stop fills, Sharpe {summary['sharpe']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--sessions", type=int, default=250)
    args = parser.parse_args()
    for symbols in args.symbols:
        run(symbols, args.sessions)


if __name__ == "__main__":
    main()
