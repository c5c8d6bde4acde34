"""Parity: the daily loop replayed through the paper simulator and the backtest of the same
scores on the same bars hold the same positions and the same equity after every session.

Setup. A real warehouse with 12 symbols of the synthetic market, loaded the way the
market_bars asset loads them. Scores for 16 consecutive sessions are the synthetic market's
planted signal (5-session reversal plus 60-session momentum), computed with the real feature
pipeline from the stored bars: deterministic, and they reshuffle the top of the book every few
sessions, so the book trades (random noise would only churn; a constant would never trade).
The replay calls the same services the daily assets call, session by session, with a
`StrategyResource` (the assets' own config object); the backtest gets the same strategy and
the simulator's own config.

The window is chosen to exercise the risky paths: 2 % protective stops fire several times
(the synthetic names move about 1.5 to 2 % a day), and a 1.2 % drawdown limit engages the kill
switch part-way, after which entries are held back while exits and stops still go.

Tolerance. Positions must be identical and equity, cash and every fill exactly equal: both
sides run the same decision code on the same float64 inputs (DuckDB stores doubles unchanged),
and the same venue code (`domain/execution`) for acceptance, fills, costs and valuation, with
positions summed in the same (symbol) order. Nothing is approximated on either side, so any
difference at all is a parity bug, not rounding.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.defs.resources import KillSwitchConfig, PortfolioConfig, RiskConfig, StopConfig, StrategyResource
from trading_pipeline.domain.backtest import _Returns, run_backtest
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.risk.var import wide_returns
from trading_pipeline.services import data_quality
from trading_pipeline.services.backtest import backtest_config
from trading_pipeline.services.replay import replay_daily_loop
from trading_pipeline_tests.scored_market import store_scored_market
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

WINDOW = sessions_between(date(2024, 3, 1), date(2024, 3, 22))  # 16 sessions
HISTORY_SESSIONS = 100  # features need 60 sessions; the VaR window needs 21


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    warehouse = Warehouse(tmp_path_factory.mktemp("parity") / "warehouse.duckdb")
    _, bars, scores = store_scored_market(warehouse, WINDOW, seed=7, universe_size=12,
                                          history_sessions=HISTORY_SESSIONS, model_version="parity")

    strategy = StrategyResource(portfolio=PortfolioConfig(top_k=4, no_trade_band=0.0), risk=RiskConfig(var_lookback=20),
                                stops=StopConfig(stop_loss_percent=0.02),
                                kill_switch=KillSwitchConfig(max_drawdown=0.012))
    simulator = PaperSimulator(warehouse, lambda s: market_store.read_bars(warehouse, [s]),
                               SimulatorConfig(initial_cash=100_000.0))
    replay = replay_daily_loop(warehouse, simulator, WINDOW, strategy)
    backtest = run_backtest(scores, bars, backtest_config(strategy, simulator.config))
    fills = warehouse.query(
        """select f.recorded_session as session, f.client_order_id, f.symbol, f.side, o.purpose,
                  f.quantity, f.price, f.commission
           from ledger_fills f join ledger_orders o using (client_order_id)
           order by session, f.filled_at, f.client_order_id""")
    return {"replay": replay, "backtest": backtest, "fills": fills, "warehouse": warehouse}


def test_positions_are_identical_after_every_session(parity):
    replay, backtest = parity["replay"], parity["backtest"]
    columns = ["session", "symbol", "quantity"]
    paper = replay.positions.select(columns).sort("session", "symbol")
    expected = backtest.positions.select(columns).sort("session", "symbol")
    for session in WINDOW:
        assert paper.filter(pl.col("session") == session).rows() == \
            expected.filter(pl.col("session") == session).rows(), session
    assert paper.height > 2 * len(WINDOW)  # the book held several names most of the window


def test_equity_and_cash_are_exactly_equal(parity):
    paper = parity["replay"].daily.select("session", "equity", "cash")
    expected = parity["backtest"].daily.select("session", "equity", "cash")
    assert paper["session"].to_list() == WINDOW
    assert paper.rows() == expected.rows()  # exact: see the module docstring
    assert paper["equity"].n_unique() > len(WINDOW) // 2  # it moved: positions were held


def test_every_fill_has_the_same_id_quantity_price_and_commission(parity):
    paper = parity["fills"].sort("session", "client_order_id")
    expected = parity["backtest"].fills.select(paper.columns).sort("session", "client_order_id")
    assert paper.rows() == expected.rows()
    # the summary adds commissions per session first: another order of the same float terms
    assert paper["commission"].sum() == pytest.approx(parity["backtest"].summary["total_commission"],
                                                      rel=1e-12)


def test_the_window_fires_stops_and_the_kill_switch_in_both(parity):
    replay, backtest = parity["replay"].daily, parity["backtest"].daily
    stop_fills = parity["fills"].filter(pl.col("purpose") == "stop_loss")
    assert stop_fills.height >= 1
    assert backtest["stop_fills"].sum() == stop_fills.height
    assert replay["kill_switch_engaged"].to_list() == backtest["kill_switch_engaged"].to_list()
    engaged = replay.filter(pl.col("kill_switch_engaged"))["session"]
    assert engaged.len() and engaged[0] < WINDOW[-2]  # engaged with sessions left to decide
    after = backtest.filter(pl.col("session") > engaged[0])
    assert after["orders_held_back"].sum() >= 1  # entries held back, as in the daily loop
    assert any("kill switch" in why for why in replay.filter(pl.col("session") > engaged[0])["entries"])
    assert replay["breaks"].sum() == 0


def test_the_backtests_var_window_is_the_daily_loops_even_with_missing_bars(tmp_path):
    """The backtest pivots returns once and slices each session's window; the daily loop reads
    a long window from the warehouse. Same values, including where a symbol misses bars: its
    first return after a gap that reaches back past the window start has no bar to measure from."""
    sessions = sessions_between(date(2024, 1, 2), date(2024, 3, 28))
    bars = SyntheticMarket(seed=11, universe_size=4).bars(sessions)
    missing = ((pl.col("symbol") == "SYM0001") & pl.col("session").is_in(sessions[30:33])) | \
              ((pl.col("symbol") == "SYM0002") & (pl.col("session") < sessions[25])) | \
              ((pl.col("symbol") == "SYM0003") & (pl.col("session") == sessions[50]))
    bars = bars.filter(~missing)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, bars)
    returns = _Returns(bars)
    for session in sessions[40:]:
        loop = wide_returns(data_quality.clean_returns_history(warehouse, session, 20))
        ours = returns.window(session, 20)
        assert ours.select(loop.columns).equals(loop), session
        extra = [c for c in ours.columns if c not in loop.columns]
        assert ours.select(extra).null_count().row(0) == (ours.height,) * len(extra), session
