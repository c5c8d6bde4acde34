"""Plausibility: what the rules quarantine, on real bars and on known corruptions of them."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.market.plausibility import PlausibilityRules, assess_bars, suspect_share
from trading_pipeline_tests.conftest import stocknet_prices

YAHOO = {"Date": "session", "Open": "open", "High": "high", "Low": "low", "Close": "close",
         "Adj Close": "adj_close", "Volume": "volume"}
# FB's earnings gap of 2013-07-25 (+30 %, real), SPLP's and PTR's unchanged bars on zero volume
# (illiquid, real), and ordinary large caps; nine months of them
SYMBOLS = ("AAPL", "AMZN", "BAC", "FB", "GE", "JPM", "MSFT", "PTR", "SPLP", "XOM")
FIRST, LAST = date(2013, 4, 1), date(2013, 12, 31)


def real_bars() -> pl.DataFrame:
    folder = stocknet_prices()
    frames = [
        pl.read_csv(folder / f"{symbol}.csv", null_values=["null"]).rename(YAHOO).select(
            pl.col("session").str.strptime(pl.Date, "%Y-%m-%d"), pl.lit(symbol).alias("symbol"),
            *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "adj_close")))
        for symbol in SYMBOLS
    ]
    return pl.concat(frames).filter(pl.col("session").is_between(FIRST, LAST)).drop_nulls().sort("session", "symbol")


REAL = real_bars()
SESSIONS = REAL["session"].unique().sort().to_list()
DAY = SESSIONS[150]  # 2013-10-31, with 150 sessions of history before it


def corrupt(bars: pl.DataFrame, symbol: str, first: date, last: date | None = None, **columns) -> pl.DataFrame:
    """Apply `columns` (name -> function of the column expression) to symbol's bars in [first, last]."""
    last = last or first
    hit = (pl.col("symbol") == symbol) & pl.col("session").is_between(first, last)
    return bars.with_columns(pl.when(hit).then(f(pl.col(c))).otherwise(pl.col(c)).alias(c) for c, f in columns.items())


def kinds_on(found: pl.DataFrame, symbol: str) -> dict[date, str]:
    rows = found.filter((pl.col("symbol") == symbol) & pl.col("quarantined"))
    return dict(zip(rows["session"].to_list(), rows["kind"].to_list()))


def test_clean_real_bars_are_rarely_quarantined_and_each_case_is_an_unchanged_bar():
    found = assess_bars(REAL)
    quarantined = found.filter(pl.col("quarantined"))
    # SPLP is thinly traded (21 sessions without a trade in these 9 months); PTR has one
    assert quarantined.filter(pl.col("symbol") != "SPLP").height / REAL.height < 0.001
    assert set(quarantined["kind"]) == {"stale"}
    assert set(quarantined["symbol"]) == {"SPLP", "PTR"}
    assert all("no trade" in r for r in quarantined["reason"])


def test_an_earnings_gap_backed_by_volume_is_real_and_not_refused():
    # FB 2013-07-25: +30 % on results, on about 4x its usual volume
    gap = REAL.filter((pl.col("symbol") == "FB") & (pl.col("session") == date(2013, 7, 25)))
    assert gap["close"][0] / 26.51 == pytest.approx(1.296, abs=0.01)
    assert kinds_on(assess_bars(REAL), "FB") == {}


@pytest.mark.parametrize("factor, direction", [(100.0, "x100"), (0.01, "/100")])
def test_a_unit_error_is_named_and_the_next_correct_bar_passes(factor, direction):
    bad = corrupt(REAL, "AAPL", DAY, **{c: (lambda e, f=factor: e * f) for c in ("open", "high", "low", "close", "adj_close")})
    found = assess_bars(bad)
    assert kinds_on(found, "AAPL") == {DAY: "unit_error"}
    reason = found.filter((pl.col("symbol") == "AAPL") & (pl.col("session") == DAY))["reason"][0]
    assert "unit error" in reason and "last good close" in reason


def test_a_unit_error_in_the_close_alone_is_named():
    found = assess_bars(corrupt(REAL, "XOM", DAY, close=lambda e: e * 100, high=lambda e: e * 100))
    assert kinds_on(found, "XOM") == {DAY: "unit_error"}


@pytest.mark.parametrize("ratio", [2.0, 3.0, 1.5, 10.0, 1 / 2, 1 / 10])
def test_an_unadjusted_split_stays_suspect_until_released(ratio):
    # from DAY on every price (and the adjusted close) divided by the ratio, volume multiplied
    prices = {c: (lambda e, r=ratio: e / r) for c in ("open", "high", "low", "close", "adj_close")}
    bad = corrupt(REAL, "MSFT", DAY, SESSIONS[-1], volume=lambda e, r=ratio: e * r, **prices)
    found = kinds_on(assess_bars(bad), "MSFT")
    assert found[DAY] == "unadjusted_split"
    assert set(found) == {s for s in SESSIONS if s >= DAY}  # the whole run, never silently accepted
    # a person releases the first session: the new level becomes the reference
    released = pl.DataFrame({"session": [DAY], "symbol": ["MSFT"], "quarantined": [False]})
    assert kinds_on(assess_bars(bad, known=released), "MSFT") == {}


def test_a_split_the_adjusted_close_already_reflects_is_recorded_not_quarantined():
    # 2:1 split: close halves, volume doubles, the adjusted close carries on
    bad = corrupt(REAL, "JPM", DAY, SESSIONS[-1], volume=lambda e: e * 2,
                  **{c: (lambda e: e / 2) for c in ("open", "high", "low", "close")})
    found = assess_bars(bad).filter(pl.col("symbol") == "JPM")
    assert found.filter(pl.col("quarantined")).is_empty()
    row = found.filter(pl.col("session") == DAY)
    assert row["kind"].to_list() == ["split_in_adj_close"] and "2:1 split" in row["reason"][0]


def test_a_stale_run_is_quarantined_session_by_session():
    # GE repeats one bar for three sessions
    first = REAL.filter((pl.col("symbol") == "GE") & (pl.col("session") == DAY)).row(0, named=True)
    bad = corrupt(REAL, "GE", SESSIONS[151], SESSIONS[153],
                  **{c: (lambda e, v=first[c]: pl.lit(v)) for c in ("open", "high", "low", "close", "adj_close", "volume")})
    assert kinds_on(assess_bars(bad), "GE") == {s: "stale" for s in SESSIONS[151:154]}


def test_a_spike_in_one_price_is_an_ohlc_outlier():
    found = assess_bars(corrupt(REAL, "BAC", DAY, high=lambda e: e * 3))
    assert kinds_on(found, "BAC") == {DAY: "ohlc_outlier"}


def test_a_bar_that_contradicts_itself_or_holds_no_number_is_named():
    bad = corrupt(REAL, "AMZN", DAY, low=lambda e: e * 1.5)
    bad = corrupt(bad, "XOM", DAY, close=lambda e: pl.lit(float("nan")))
    bad = corrupt(bad, "GE", DAY, open=lambda e: pl.lit(0.0))
    found = assess_bars(bad)
    assert kinds_on(found, "AMZN") == {DAY: "ohlc_inconsistent"}
    assert kinds_on(found, "XOM") == {DAY: "unusable_value"}
    assert kinds_on(found, "GE") == {DAY: "unusable_value"}


def test_an_adjusted_close_that_jumps_alone_is_named():
    found = assess_bars(corrupt(REAL, "AAPL", DAY, adj_close=lambda e: e * 1.7))
    assert kinds_on(found, "AAPL")[DAY] == "adj_close_inconsistent"


def test_an_unexplained_move_without_volume_is_suspect_but_the_markets_move_explains_itself():
    lone = assess_bars(corrupt(REAL, "XOM", DAY, **{c: (lambda e: e * 1.8) for c in ("open", "high", "low", "close", "adj_close")}))
    assert kinds_on(lone, "XOM") == {DAY: "unexplained_move"}
    # every symbol down 35 % that day: the market explains it
    everyone = REAL.with_columns(
        pl.when(pl.col("session") >= DAY).then(pl.col(c) * 0.65).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "adj_close"))
    found = assess_bars(everyone).filter(pl.col("quarantined") & (pl.col("session") == DAY))
    assert set(found["kind"]) <= {"stale"}


def test_suspect_share_counts_symbols_of_the_session():
    found = assess_bars(corrupt(REAL, "AAPL", DAY, close=lambda e: e * 100))
    today = found.filter(pl.col("session") == DAY)
    assert suspect_share(today, 10) == pytest.approx(0.1)


def test_rules_refuse_nonsense_settings():
    with pytest.raises(ValueError, match="sigma_multiple"):
        PlausibilityRules(sigma_multiple=-1)
