"""The live-vs-backtest monitor over a track record with a missed session: it compares the
stretch after the gap instead of failing every later session. Real warehouse and simulator."""

from datetime import date

import polars as pl

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import PortfolioConfig, RiskConfig, StrategyResource
from trading_pipeline.domain.calendar import sessions_back, sessions_between, trailing_unbroken
from trading_pipeline.domain.features import compute_features
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.services.monitor import monitor_session
from trading_pipeline.services.replay import replay_daily_loop, store_predictions
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

WINDOW = sessions_between(date(2024, 3, 1), date(2024, 3, 19))  # 13 sessions
MISSED = WINDOW[6]


def test_trailing_unbroken_keeps_the_newest_run_without_a_missed_session():
    days = sessions_between(date(2024, 3, 25), date(2024, 4, 5))  # Good Friday 03-29 is no session
    assert trailing_unbroken(days) == days
    assert trailing_unbroken(days[:2] + days[3:]) == days[3:]
    assert trailing_unbroken(days[:-2] + days[-1:]) == days[-1:]
    assert trailing_unbroken([]) == []


def test_a_missed_session_restarts_the_comparison_instead_of_failing(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    market = SyntheticMarket(seed=7, universe_size=12)
    market_store.append_history(
        warehouse, market.bars(sessions_between(sessions_back(WINDOW[0], 100)[0], WINDOW[-1])))
    bars = market_store.read_bars_through(warehouse, WINDOW[-1])
    scores = compute_features(bars).filter(pl.col("session").is_in(WINDOW)).select(
        "session", "symbol", (-pl.col("ret_5") + 0.5 * pl.col("ret_60")).alias("score"))
    store_predictions(warehouse, scores.filter(pl.col("session") != MISSED), model_version="1")
    strategy = StrategyResource(portfolio=PortfolioConfig(top_k=4), risk=RiskConfig(var_lookback=20))
    simulator = PaperSimulator(warehouse, lambda s: market_store.read_bars(warehouse, [s]),
                               SimulatorConfig())
    # the loop runs, misses a session (the machine was off), then runs again
    before, after = WINDOW[:6], WINDOW[7:]
    replay_daily_loop(warehouse, simulator, before, strategy, ledger)
    replay_daily_loop(warehouse, simulator, after, strategy, ledger)
    assert MISSED not in set(ledger.account_history(simulator.name, WINDOW[-1])["session"])

    report = monitor_session(ledger, simulator.name, WINDOW[-1], strategy, strategy.monitor_thresholds())
    assert report.track["session"].to_list() == after == report.shadow["session"].to_list()
    assert report.shadow["equity"][0] == report.track["equity"][0]
    assert f"over the same {len(after)} sessions" in next(c.detail for c in report.checks if c.name == "return")
    stored = warehouse.read_partition("monitor_checks", WINDOW[-1])
    assert stored.height == len(report.checks) == 5
