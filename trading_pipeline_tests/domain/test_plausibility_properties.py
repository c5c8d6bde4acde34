"""Property: no corruption of a good bar frame leads to an order in the corrupted symbol.

Real bars (trimmed StockNet) are corrupted on the traded session (the last one) in every way a
data feed goes wrong; the plausibility rules' quarantine is passed to `build_target` as
`frozen`, and the rebalance that follows must hold no order in the corrupted symbol, whether
it is held or not, and though the model scores it best.
"""

from __future__ import annotations

import math

import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.market.plausibility import assess_bars, believed_returns
from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk.construction import ConstructionConfig, build_target
from trading_pipeline.domain.risk.limits import RiskLimits
from trading_pipeline_tests.domain.test_plausibility import REAL

SYMBOLS = ["AAPL", "AMZN", "BAC", "FB", "GE", "JPM", "MSFT", "XOM"]  # the liquid ones
BASE = REAL.filter(pl.col("symbol").is_in(SYMBOLS) & (pl.col("session") >= REAL["session"].unique().sort()[90]))
SESSIONS = BASE["session"].unique().sort().to_list()
LAST = SESSIONS[-1]
PRICES = ("open", "high", "low", "close", "adj_close")
LIMITS = RiskLimits(var_lookback=60, max_position_var=1.0, max_portfolio_var=1.0, max_position_weight=0.2)


def scaled(frame: pl.DataFrame, hit: pl.Expr, factors: dict[str, float]) -> pl.DataFrame:
    return frame.with_columns(pl.when(hit).then(pl.col(c) * f).otherwise(pl.col(c)).alias(c) for c, f in factors.items())


def set_value(frame: pl.DataFrame, hit: pl.Expr, column: str, value: float) -> pl.DataFrame:
    return frame.with_columns(pl.when(hit).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))


@st.composite
def corruptions(draw):
    symbol = draw(st.sampled_from(SYMBOLS))
    kind = draw(st.sampled_from(["spike", "unit", "split", "stale", "ohlc", "one_price", "bad_value"]))
    today = (pl.col("symbol") == symbol) & (pl.col("session") == LAST)
    if kind == "spike":  # every price of one bar moved far, volume as usual
        factor = draw(st.one_of(st.floats(1.7, 30.0), st.floats(0.03, 0.55)))
        return symbol, kind, lambda f: scaled(f, today, {c: factor for c in PRICES})
    if kind == "unit":
        factor = draw(st.sampled_from([100.0, 0.01]))
        columns = draw(st.sampled_from([PRICES, ("close",), ("close", "adj_close")]))
        return symbol, kind, lambda f: scaled(f, today, {c: factor for c in columns if c != "close"} | {"close": factor}
                                              | ({"high": factor} if factor > 1 else {"low": factor}))
    if kind == "split":  # a split or reverse split the adjusted close does not reflect, from some day on
        ratio = draw(st.sampled_from([2.0, 3.0, 1.5, 4.0, 5.0, 10.0, 1 / 2, 1 / 3, 1 / 5, 1 / 10, 1 / 20]))
        start = draw(st.sampled_from(SESSIONS[-5:]))
        since = (pl.col("symbol") == symbol) & (pl.col("session") >= start)
        return symbol, kind, lambda f: scaled(f, since, {c: 1 / ratio for c in PRICES} | {"volume": ratio})
    if kind == "stale":  # the last bars repeat the one before them
        days = draw(st.integers(1, 4))
        first = SESSIONS[-days - 1]

        def stale(f):
            frozen_bar = f.filter((pl.col("symbol") == symbol) & (pl.col("session") == first)).row(0, named=True)
            run = (pl.col("symbol") == symbol) & (pl.col("session") > first)
            for c in (*PRICES, "volume"):
                f = set_value(f, run, c, frozen_bar[c])
            return f
        return symbol, kind, stale
    if kind == "ohlc":  # the bar contradicts itself
        which = draw(st.sampled_from(["high_below_low", "close_above_high", "open_below_low"]))
        factors = {"high_below_low": {"high": 0.9, "low": 1.05}, "close_above_high": {"close": 1.2, "adj_close": 1.2},
                   "open_below_low": {"open": 0.85}}[which]
        return symbol, kind, lambda f: scaled(f, today, factors)
    if kind == "one_price":  # a spike in the high or low alone
        column, factor = draw(st.sampled_from([("high", 3.0), ("high", 10.0), ("low", 0.3), ("low", 0.05)]))
        return symbol, kind, lambda f: scaled(f, today, {column: factor})
    value = draw(st.sampled_from([math.nan, 0.0, -1.0, math.inf]))
    column = draw(st.sampled_from(["open", "high", "low", "close", "adj_close"]))
    return symbol, kind, lambda f: set_value(f, today, column, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corruption=corruptions(), held=st.booleans())
def test_no_corruption_leads_to_an_order_in_the_corrupted_symbol(corruption, held):
    symbol, kind, apply = corruption
    event(kind)
    bad = apply(BASE)
    found = assess_bars(bad)
    today = found.filter((pl.col("session") == LAST) & pl.col("quarantined"))
    frozen = dict(zip(today["symbol"].to_list(), today["reason"].to_list()))
    assert symbol in frozen, f"{kind} on {symbol} was not quarantined"
    # plan as the pipeline does: last good closes, returns that do not believe quarantined bars
    untrusted = found.filter(pl.col("quarantined") & (pl.col("kind") != "stale"))
    good_bars = bad.join(untrusted.select("session", "symbol"), on=["session", "symbol"], how="anti")
    prices = good_bars.sort("session").group_by("symbol").last().select("symbol", "close")
    returns = believed_returns(bad, untrusted)
    scores = pl.DataFrame({"symbol": SYMBOLS, "score": [10.0 if s == symbol else float(i) for i, s in enumerate(SYMBOLS)]})
    current = {symbol: 20.0, "GE": 100.0} if held else {"GE": 100.0}
    result = build_target(LAST, scores, prices, returns, 100_000.0,
                          ConstructionConfig(top_k=4, limits=LIMITS), current, frozen=frozen)
    orders = rebalance_orders(LAST, "s", result.frame, current, dict(prices.iter_rows()), 100.0)
    assert symbol not in {o.symbol for o in orders}
    assert orders, "the rest of the book still trades"


def test_the_uncorrupted_frame_would_buy_the_best_scored_symbol():
    """The counterpart: without a corruption the same plan buys the symbol the property guards."""
    found = assess_bars(BASE)
    assert found.filter(pl.col("session") == LAST)["quarantined"].sum() == 0
    prices = BASE.filter(pl.col("session") == LAST).select("symbol", "close")
    scores = pl.DataFrame({"symbol": SYMBOLS, "score": [10.0 if s == "MSFT" else float(i) for i, s in enumerate(SYMBOLS)]})
    result = build_target(LAST, scores, prices, believed_returns(BASE, found.clear()), 100_000.0,
                          ConstructionConfig(top_k=4, limits=LIMITS), {"GE": 100.0})
    orders = rebalance_orders(LAST, "s", result.frame, {"GE": 100.0}, dict(prices.iter_rows()), 100.0)
    assert "MSFT" in {o.symbol for o in orders}
