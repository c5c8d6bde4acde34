"""The backtest on tiny hand-made bars, where every figure can be worked out by hand.

Two symbols. Over the 21 sessions before D0 both close alternately at 100 / 101 (A) and
50 / 50.5 (B), so their VaR is small and the book is sized by the 10 % weight cap alone:
100 shares of A (the higher score) at D0's close of 100. D1 and D2 are written per test.
Costs are the simulator's defaults: 5 bps slippage, $0.005 a share with $1 minimum a fill.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.backtest import BacktestConfig, BacktestError, run_backtest
from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.execution import ExecutionConfig
from trading_pipeline.domain.risk import ConstructionConfig, KillSwitchRules, RiskLimits, StopPolicy

D0, D1, D2 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)
LOOKBACK = 20
HISTORY = sessions_back(D0, LOOKBACK + 2)  # ends with D0
CONFIG = BacktestConfig(
    construction=ConstructionConfig(top_k=1, no_trade_band=0.02,
                                    limits=RiskLimits(var_lookback=LOOKBACK)),
    stop_policy=StopPolicy(stop_percent=0.05),
    execution=ExecutionConfig(),
    initial_cash=100_000.0,
)
FLAT_B = (50.5, 50.5, 50.5, 50.5, 1e6)


def bar(session, symbol, open_, high, low, close, volume=1e6):
    return {"session": session, "symbol": symbol, "open": open_, "high": high, "low": low,
            "close": close, "volume": volume, "adj_close": close}


def make_bars(d1_a, d2_a, d1_b=FLAT_B, d2_b=FLAT_B) -> pl.DataFrame:
    rows = []
    for i, session in enumerate(HISTORY):  # D0 is the last: A closes at 100
        a = 100.0 if (len(HISTORY) - 1 - i) % 2 == 0 else 101.0
        b = a / 2
        rows += [bar(session, "A", a, a * 1.005, a * 0.995, a),
                 bar(session, "B", b, b * 1.005, b * 0.995, b)]
    for session, a, b in ((D1, d1_a, d1_b), (D2, d2_a, d2_b)):
        rows += [bar(session, "A", *a), bar(session, "B", *b)]
    return pl.DataFrame(rows).with_columns(pl.col("session").cast(pl.Date))


def scores(sessions=(D0, D1, D2)) -> pl.DataFrame:
    return pl.DataFrame({"session": [s for s in sessions for _ in range(2)],
                         "symbol": ["A", "B"] * len(sessions),
                         "score": [1.0, 0.0] * len(sessions)})


def test_a_buy_pays_the_open_plus_slippage_and_a_stop_sells_at_its_price_minus_slippage():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(97.0, 97.5, 95.0, 95.5, 1e6))
    result = run_backtest(scores(), bars, CONFIG)

    fills = result.fills.select("session", "symbol", "side", "purpose", "quantity", "price",
                                "commission").rows()
    buy_price = 101.0 * 1.0005  # D1's open plus 5 bps
    # the stop goes with the entry, decided with it at D0: D0's close less 5 %, 100 x 0.95 =
    # 95.00; D2 opens above it (97) and trades down to it (low 95): it fills at 95 less 5 bps
    stop_price = 95.0 * 0.9995
    assert fills == [
        (D1, "A", "buy", "rebalance", 100.0, pytest.approx(buy_price), 1.0),  # 100 x 0.005 < $1
        (D2, "A", "sell", "stop_loss", 100.0, pytest.approx(stop_price), 1.0),
    ]
    cash_d1 = 100_000.0 - 100 * buy_price - 1.0
    equity = dict(result.daily.select("session", "equity").rows())
    assert equity[D0] == 100_000.0
    assert equity[D1] == pytest.approx(cash_d1 + 100 * 99.0, rel=1e-12)
    assert equity[D2] == pytest.approx(cash_d1 + 100 * stop_price - 1.0, rel=1e-12)
    held = result.positions.select("session", "symbol", "quantity").rows()
    assert held == [(D1, "A", 100.0)]  # nothing held at D0's close, sold by the stop on D2

    daily = {row["session"]: row for row in result.daily.iter_rows(named=True)}
    assert daily[D1]["turnover"] == pytest.approx(100 * buy_price / 100_000.0)
    assert daily[D2]["stop_fills"] == 1 and daily[D2]["positions"] == 0
    # D0: the buy and its attached stop; D1: the target is still 100 shares (10 % of 99,793.95
    # at 99 is 100.8) and the stop already stands, so no order
    assert (daily[D0]["orders_sent"], daily[D1]["orders_sent"]) == (2, 0)
    summary = result.summary
    assert summary["total_commission"] == 2.0 and summary["stop_fills"] == 1.0
    assert summary["total_return"] == pytest.approx(equity[D2] / 100_000.0 - 1.0)
    returns = [equity[D1] / equity[D0] - 1.0, equity[D2] / equity[D1] - 1.0]
    assert summary["daily_return_mean"] == pytest.approx(sum(returns) / 2)
    assert summary["max_drawdown"] == pytest.approx(equity[D2] / 100_000.0 - 1.0)  # below the start


def test_a_stop_gapped_through_fills_at_the_open_not_the_stop():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(94.0, 94.5, 93.0, 93.5, 1e6))
    result = run_backtest(scores(), bars, CONFIG)
    stop = result.fills.filter(pl.col("purpose") == "stop_loss")
    assert stop["price"].to_list() == [pytest.approx(94.0 * 0.9995)]


def test_the_volume_cap_fills_part_of_a_buy_and_the_rest_is_bought_later():
    # 10 % of D1's 600 shares: 60 of the 100 fill; the DAY order expires
    bars = make_bars(d1_a=(101.0, 103.0, 100.5, 102.0, 600.0), d2_a=(102.0, 104.0, 101.0, 103.0, 1e6))
    result = run_backtest(scores(), bars, CONFIG)
    # D1's equity: 100,000 - 60 x 101.0505 - 1 + 60 x 102 = 100,055.97; 10 % of it at 102 is 98
    # shares, so D1 buys the other 38 (60 shares are 6.1 %, outside the 2 % band)
    assert result.fills.select("session", "quantity", "price").rows() == [
        (D1, 60.0, pytest.approx(101.0 * 1.0005)), (D2, 38.0, pytest.approx(102.0 * 1.0005))]
    daily = {row["session"]: row for row in result.daily.iter_rows(named=True)}
    # the buy of 38 with its attached stop, and a stop for the 60 held (the entry's own stop
    # went with the rest of the DAY order when it expired)
    assert daily[D1]["orders_sent"] == 3
    assert daily[D1]["equity"] == pytest.approx(100_055.97, rel=1e-12)
    assert result.positions.filter(pl.col("session") == D2)["quantity"].to_list() == [98.0]


def test_commission_as_a_percent_of_notional():
    config = BacktestConfig(construction=CONFIG.construction, stop_policy=CONFIG.stop_policy,
                            execution=ExecutionConfig(commission_model="percent_of_notional",
                                                      commission_percent=0.1, slippage_bps=0.0))
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(99.0, 100.0, 98.0, 99.5, 1e6))
    fills = run_backtest(scores(), bars, config).fills
    assert fills.select("price", "commission").rows() == [(101.0, pytest.approx(100 * 101.0 * 0.001))]


def test_the_kill_switch_holds_back_entries_from_the_session_after_a_breach():
    # A falls from 100 to 97 on D1: 0.41 % of equity on a 10 % weight, over a 0.1 % limit
    config = BacktestConfig(construction=CONFIG.construction, stop_policy=CONFIG.stop_policy,
                            kill_switch=KillSwitchRules(max_daily_loss=0.001))
    d3 = date(2024, 3, 7)
    bars = make_bars(d1_a=(99.0, 99.5, 96.5, 97.0, 1e6), d2_a=(97.0, 97.5, 96.5, 97.0, 1e6))
    bars = pl.concat([bars, bars.filter(pl.col("session") == D2).with_columns(pl.lit(d3).alias("session"))])
    # on D2, B becomes the better score: the target sells A (an exit) and buys B (an entry)
    flipped = scores((D0, D1, D2, d3)).with_columns(
        pl.when(pl.col("session") >= D2).then(1.0 - pl.col("score")).otherwise(pl.col("score"))
        .alias("score"))
    result = run_backtest(flipped, bars, config)

    daily = {row["session"]: row for row in result.daily.iter_rows(named=True)}
    assert [daily[s]["kill_switch_engaged"] for s in (D0, D1, D2)] == [False, True, True]
    assert any(note.startswith("2024-03-05: kill switch engaged: daily loss") for note in result.notes)
    # D2: the buy of B and its attached stop are held back; the sale of A goes out (its stop
    # cancelled) and fills on D3
    assert (daily[D2]["orders_held_back"], daily[D2]["orders_sent"]) == (2, 1)
    assert result.fills.filter(pl.col("session") == d3).select("symbol", "side", "quantity").rows() \
        == [("A", "sell", 100.0)]
    assert result.positions.filter(pl.col("session") == d3).is_empty()


def test_scores_with_a_missing_session_are_refused():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(97.0, 97.5, 95.0, 95.5, 1e6))
    with pytest.raises(BacktestError, match=r"scores skip 1 sessions .*2024-03-05"):
        run_backtest(scores((D0, D2)), bars, CONFIG)


def test_bars_too_short_for_the_var_window_are_refused():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(97.0, 97.5, 95.0, 95.5, 1e6))
    with pytest.raises(BacktestError, match="load more history"):
        run_backtest(scores(), bars.filter(pl.col("session") > HISTORY[3]), CONFIG)


def test_a_session_without_any_usable_score_names_the_session():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(97.0, 97.5, 95.0, 95.5, 1e6))
    broken = scores().with_columns(
        pl.when(pl.col("session") == D1).then(float("nan")).otherwise(pl.col("score")).alias("score"))
    with pytest.raises(BacktestError, match="session 2024-03-05: the daily loop could not build"):
        run_backtest(broken, bars, CONFIG)


def test_predictions_must_be_renamed_to_score():
    bars = make_bars(d1_a=(101.0, 102.0, 98.5, 99.0, 1e6), d2_a=(97.0, 97.5, 95.0, 95.5, 1e6))
    with pytest.raises(BacktestError, match="rename `prediction` to `score`"):
        run_backtest(scores().rename({"score": "prediction"}), bars, CONFIG)


@pytest.mark.parametrize(
    ("construction", "execution", "message"),
    [
        (ConstructionConfig(allow_fractional=True), ExecutionConfig(), "every fractional order"),
        (ConstructionConfig(mode="long_short"), ExecutionConfig(), "needs execution.allow_short"),
    ],
)
def test_configs_the_venue_cannot_trade_are_refused(construction, execution, message):
    with pytest.raises(BacktestError, match=message):
        BacktestConfig(construction=construction, execution=execution)
