import math
import statistics
from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.features import (
    FEATURE_COLUMNS,
    MIN_HISTORY_SESSIONS,
    BarsError,
    compute_features,
)
from trading_pipeline_tests.domain.conftest import make_bars


def _bars(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"session": pl.Date, "symbol": pl.String, "open": pl.Float64, "high": pl.Float64,
                "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64,
                "adj_close": pl.Float64},
        orient="row",
    )


def test_tiny_example_by_hand():
    d1, d2 = date(2024, 1, 2), date(2024, 1, 3)
    bars = _bars([
        # session, symbol, open, high, low, close, volume, adj_close
        (d1, "AAA", 100, 105, 95, 100, 1000, 50),
        (d2, "AAA", 100, 121, 99, 110, 2000, 55),  # adj +10%, range 22/110 = 0.2
        (d1, "BBB", 10, 11, 9, 10, 500, 10),
        (d2, "BBB", 10, 10, 8, 8, 500, 8),  # adj -20%, range 2/8 = 0.25
        (d1, "CCC", 20, 21, 19, 20, 100, 20),
        (d2, "CCC", 20, 21, 20, 21, 100, 21),  # adj +5%, range 1/21
    ])
    features = compute_features(bars)
    day2 = {row["symbol"]: row for row in features.filter(pl.col("session") == d2).iter_rows(named=True)}
    assert day2["AAA"]["ret_1"] == pytest.approx(0.10)
    assert day2["BBB"]["ret_1"] == pytest.approx(-0.20)
    assert day2["CCC"]["ret_1"] == pytest.approx(0.05)
    assert day2["AAA"]["range_rel"] == pytest.approx(0.2)
    assert day2["BBB"]["range_rel"] == pytest.approx(0.25)
    # two sessions are too few for any 5-session or 20-session feature
    assert day2["AAA"]["ret_5"] is None and day2["AAA"]["vol_20"] is None
    day1 = features.filter(pl.col("session") == d1)
    assert day1["ret_1"].null_count() == 3
    assert day1["range_rel"].to_list() == pytest.approx([10 / 100, 2 / 10, 2 / 20])


def test_cross_sectional_rank_by_hand():
    bars = make_bars(n_symbols=3, n_sessions=30, seed=3)
    features = compute_features(bars)
    last = features.filter(pl.col("session") == features["session"].max()).sort("ret_5")
    # three names: lowest ret_5 ranks 0, the middle 0.5, the highest 1
    assert last["rank_ret_5"].to_list() == [0.0, 0.5, 1.0]
    # rank_ret_20 is null where ret_20 is (too little history)
    first_rows = features.filter(pl.col("ret_20").is_null())
    assert first_rows.height > 0 and first_rows["rank_ret_20"].null_count() == first_rows.height


def _reference_values(bars: pl.DataFrame, symbol: str) -> dict[str, float]:
    """The last session's raw features of `symbol`, computed with plain Python."""
    rows = bars.filter(pl.col("symbol") == symbol).sort("session")
    adj, close = rows["adj_close"].to_list(), rows["close"].to_list()
    high, low, vol = rows["high"].to_list(), rows["low"].to_list(), rows["volume"].to_list()
    returns = [adj[i] / adj[i - 1] - 1 for i in range(1, len(adj))]
    ranges = [(h - lo) / c for h, lo, c in zip(high, low, close)]
    dollar = [c * v for c, v in zip(close, vol)]
    return {
        "ret_1": adj[-1] / adj[-2] - 1,
        "ret_5": adj[-1] / adj[-6] - 1,
        "ret_20": adj[-1] / adj[-21] - 1,
        "ret_60": adj[-1] / adj[-61] - 1,
        "vol_20": statistics.stdev(returns[-20:]),
        "vol_60": statistics.stdev(returns[-60:]),
        "volume_ratio_20": vol[-1] / statistics.fmean(vol[-20:]),
        "log_dollar_volume_20": math.log1p(statistics.fmean(dollar[-20:])),
        "range_rel": ranges[-1],
        "range_rel_20": statistics.fmean(ranges[-20:]),
        "dist_high_20": adj[-1] / max(adj[-20:]) - 1,
    }


def test_values_match_a_plain_python_reference():
    bars = make_bars(n_symbols=4, n_sessions=MIN_HISTORY_SESSIONS + 1, seed=11)
    features = compute_features(bars)
    last = features.filter(pl.col("session") == features["session"].max())
    for symbol in last["symbol"]:
        expected = _reference_values(bars, symbol)
        got = last.filter(pl.col("symbol") == symbol).row(0, named=True)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9), (symbol, name)
    # cross-sectional ranks of the last session, by hand: (position - 1) / (n - 1)
    order = last.sort("vol_20")["symbol"].to_list()
    ranks = dict(zip(last["symbol"], last["rank_vol_20"]))
    assert [ranks[s] for s in order] == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_min_history_sessions_is_exactly_what_a_complete_row_needs():
    bars = make_bars(n_symbols=3, n_sessions=MIN_HISTORY_SESSIONS + 1, seed=5)
    features = compute_features(bars)
    complete = features.drop_nulls(list(FEATURE_COLUMNS))
    assert complete["session"].unique().to_list() == [features["session"].max()]
    assert complete.height == 3
    assert len(FEATURE_COLUMNS) >= 10
    assert features.columns == ["session", "symbol", *FEATURE_COLUMNS]


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return make_bars(n_symbols=6, n_sessions=MIN_HISTORY_SESSIONS + 40, seed=21)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=MIN_HISTORY_SESSIONS + 38),
       seed=st.integers(min_value=0, max_value=2**32 - 1),
       drop_future=st.booleans())
def test_no_look_ahead(history, cut, seed, drop_future):
    """Changing or removing every bar after D leaves every feature on or before D unchanged."""
    sessions = history["session"].unique().sort()
    d = sessions[cut]
    before = compute_features(history).filter(pl.col("session") <= d)
    rng = np.random.default_rng(seed)
    future = pl.col("session") > d
    if drop_future:
        changed = history.filter(~future)
    else:
        factors = pl.Series(rng.uniform(0.2, 5.0, history.height))
        changed = history.with_columns(
            pl.when(future).then(pl.col(c) * factors).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close", "volume", "adj_close")
        )
    after = compute_features(changed).filter(pl.col("session") <= d)
    assert after.equals(before)


def test_the_perturbation_is_seen_on_the_day_it_happens(history):
    """The look-ahead test would catch a leak: changing bars *on* D does change D's features."""
    d = history["session"].unique().sort()[MIN_HISTORY_SESSIONS + 5]
    changed = history.with_columns(
        pl.when(pl.col("session") == d).then(pl.col("adj_close") * 1.5).otherwise(pl.col("adj_close"))
    )
    before = compute_features(history).filter(pl.col("session") == d)
    after = compute_features(changed).filter(pl.col("session") == d)
    assert not after.equals(before)


def test_row_order_does_not_matter(history):
    shuffled = history.sample(fraction=1.0, shuffle=True, seed=1)
    assert compute_features(shuffled).equals(compute_features(history))


def test_integer_volume_is_accepted(history):
    as_int = history.with_columns(pl.col("volume").cast(pl.Int64))
    assert compute_features(as_int).equals(compute_features(history))


def test_missing_column_is_named():
    with pytest.raises(BarsError, match=r"adj_close"):
        compute_features(make_bars(2, 5).drop("adj_close"))


def test_duplicate_bars_are_refused():
    bars = make_bars(2, 5)
    with pytest.raises(BarsError, match=r"repeat a \(session, symbol\) pair"):
        compute_features(pl.concat([bars, bars.head(1)]))


def test_zero_volume_gives_nulls_not_infinities():
    bars = make_bars(2, 30).with_columns(pl.lit(0.0).alias("volume"))
    features = compute_features(bars)
    assert features["volume_ratio_20"].null_count() == features.height
    numeric = features.select(FEATURE_COLUMNS)
    assert not any(numeric[c].is_infinite().any() for c in FEATURE_COLUMNS)


# -- the factor library ------------------------------------------------------------------------

from trading_pipeline.domain.factors import FEATURE_SETS  # noqa: E402
from trading_pipeline.domain.features import feature_columns  # noqa: E402

ALPHA = FEATURE_SETS["alpha"]


@pytest.fixture(scope="module")
def alpha_before(history) -> pl.DataFrame:
    return compute_features(history, "alpha")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=MIN_HISTORY_SESSIONS + 38),
       seed=st.integers(min_value=0, max_value=2**32 - 1), drop_future=st.booleans())
def test_no_factor_of_the_alpha_set_looks_ahead(history, alpha_before, cut, seed, drop_future):
    """Every factor of the library: changing or removing every bar after D changes nothing on or
    before D."""
    d = history["session"].unique().sort()[cut]
    future = pl.col("session") > d
    if drop_future:
        changed = history.filter(~future)
    else:
        factors = pl.Series(np.random.default_rng(seed).uniform(0.2, 5.0, history.height))
        changed = history.with_columns(
            pl.when(future).then(pl.col(c) * factors).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close", "volume", "adj_close"))
    after = compute_features(changed, "alpha").filter(pl.col("session") <= d)
    assert after.equals(alpha_before.filter(pl.col("session") <= d))


def test_every_factor_is_null_before_its_lookback_and_set_from_it(history):
    features = compute_features(history, "alpha")
    symbol = features.filter(pl.col("symbol") == features["symbol"][0])
    for factor in ALPHA.factors:
        values = symbol[factor.name]
        assert values.head(factor.lookback - 1).null_count() == factor.lookback - 1, factor.name
        assert values.slice(factor.lookback - 1).null_count() == 0, factor.name
    assert ALPHA.lookback == MIN_HISTORY_SESSIONS + 1


def test_the_alpha_set_extends_the_small_one_and_every_column_varies(history):
    assert set(FEATURE_COLUMNS) < set(feature_columns("alpha"))
    assert len(set(feature_columns("alpha"))) == len(feature_columns("alpha")) >= 100
    features = compute_features(history, "alpha")
    small = compute_features(history, "small")
    assert features.select("session", "symbol", *FEATURE_COLUMNS).equals(small)
    complete = features.filter(pl.col("session") == features["session"].max())
    flat = [c for c in feature_columns("alpha") if complete[c].n_unique() < 2]
    assert not flat, f"columns constant across symbols: {flat}"


def test_alpha_factors_by_hand():
    bars = make_bars(n_symbols=3, n_sessions=MIN_HISTORY_SESSIONS + 1, seed=4)
    last = compute_features(bars, "alpha").filter(pl.col("session") == bars["session"].max())
    rows = bars.filter(pl.col("symbol") == "S001").sort("session")
    got = last.filter(pl.col("symbol") == "S001").row(0, named=True)
    adj, close, volume = rows["adj_close"].to_numpy(), rows["close"].to_numpy(), rows["volume"].to_numpy()
    high = rows["high"].to_numpy() * adj / close
    low = rows["low"].to_numpy() * adj / close
    assert got["roc_20"] == pytest.approx(adj[-21] / adj[-1])
    assert got["ma_10"] == pytest.approx(adj[-10:].mean() / adj[-1])
    assert got["std_30"] == pytest.approx(adj[-30:].std(ddof=1) / adj[-1])
    assert got["rsv_20"] == pytest.approx((adj[-1] - low[-20:].min()) / (high[-20:].max() - low[-20:].min()))
    assert got["cntp_5"] == pytest.approx(np.mean(np.diff(adj)[-5:] > 0))
    assert got["corr_60"] == pytest.approx(np.corrcoef(adj[-60:], np.log1p(volume[-60:]))[0, 1])
    assert got["kmid"] == pytest.approx((close[-1] - rows["open"][-1]) / rows["open"][-1])
    rel = last["rel_ret_20"].to_numpy()
    assert rel.sum() == pytest.approx(0, abs=1e-12)


def test_an_unknown_feature_set_names_the_choices():
    with pytest.raises(ValueError, match="small, alpha"):
        compute_features(make_bars(2, 5), "huge")


# -- regrouping by symbol changes no value ----------------------------------------------------

from trading_pipeline.domain.features import require_bar_frame  # noqa: E402


def _grouped_in_place(bars: pl.DataFrame, feature_set_name: str) -> pl.DataFrame:
    """Every feature as `compute_features` computed it before it regrouped the rows by symbol:
    each window `.over(symbol)` and each view `.over(session)` on rows left in session order."""
    from trading_pipeline.domain.factors import feature_set

    chosen = feature_set(feature_set_name)
    scale = pl.col("adj_close") / pl.col("close")
    inputs = [(pl.col("adj_close") / pl.col("adj_close").shift(1) - 1).over("symbol").alias("ret_1"),
              (pl.col("high") * scale).alias("adj_high"), (pl.col("low") * scale).alias("adj_low"),
              pl.col("volume").log1p().alias("log_volume")]

    def finite(name: str) -> pl.Expr:
        return pl.when(pl.col(name).is_finite()).then(pl.col(name)).otherwise(None).alias(name)

    def view(source: str, kind: str) -> pl.Expr:
        value, mean, std = pl.col(source), pl.col(source).mean(), pl.col(source).std()
        count, rank = value.count().over("session"), value.rank(method="average").over("session")
        if kind == "rank":
            return (pl.when(value.is_null()).then(None).when(count > 1).then((rank - 1) / (count - 1))
                    .otherwise(0.5))
        if kind == "demean":
            return value - mean.over("session")
        return pl.when(std.over("session") > 0).then(
            (value - mean.over("session")) / std.over("session")).otherwise(None)

    return (require_bar_frame(bars).lazy()
            .with_columns(inputs)
            .with_columns(f.build().over("symbol").alias(f.name) for f in chosen.factors if f.name != "ret_1")
            .with_columns(finite(f.name) for f in chosen.factors)
            .with_columns(view(v.source, v.kind).alias(v.name) for v in chosen.cross_sectional)
            .select("session", "symbol", *chosen.columns)
            .collect())


def _stocknet_bars(folder) -> pl.DataFrame:
    """StockNet's published rows, null rows kept (prices null inside windows); symbols start on
    different dates (BABA in 2014, ABBV in 2013)."""
    frames = [
        pl.read_csv(path, null_values=["null"]).select(
            pl.col("Date").str.strptime(pl.Date, "%Y-%m-%d").alias("session"), pl.lit(path.stem).alias("symbol"),
            *(pl.col(c).cast(pl.Float64).alias(c.lower()) for c in ("Open", "High", "Low", "Close", "Volume")),
            pl.col("Adj Close").cast(pl.Float64).alias("adj_close"))
        for path in sorted(folder.glob("*.csv"))
    ]
    return pl.concat(frames)


def _ragged_bars(seed: int) -> pl.DataFrame:
    """Random bars with late starts, early ends, missing bars, null prices, zero volumes and
    prices that repeat (tied ranks), in no particular row order."""
    rng = np.random.default_rng(seed)
    bars = make_bars(n_symbols=40, n_sessions=260, seed=seed)
    sessions = bars["session"].unique().sort()
    first = dict(zip([f"S{i:03d}" for i in range(40)], rng.integers(0, 150, 40)))
    position = pl.col("session").rank("dense").cast(pl.Int64) - 1
    bars = bars.filter(position >= pl.col("symbol").replace_strict(first, return_dtype=pl.Int64),
                       position < pl.col("symbol").replace_strict(
                           {s: 260 - int(rng.integers(0, 40)) for s in first}, return_dtype=pl.Int64))
    bars = bars.filter(pl.Series(rng.random(bars.height) > 0.03))  # missing bars
    hole = pl.Series(rng.random(bars.height) < 0.01)
    flat = pl.Series(rng.random(bars.height) < 0.05)
    bars = bars.with_columns(
        pl.when(hole).then(None).otherwise(pl.col("adj_close")).alias("adj_close"),
        pl.when(pl.Series(rng.random(bars.height) < 0.01)).then(None).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.Series(rng.random(bars.height) < 0.02)).then(0.0).otherwise(pl.col("volume")).alias("volume"),
        # a flat day repeats the bar's open as its close: equal returns across symbols tie in ranks
        pl.when(flat).then(pl.col("open")).otherwise(pl.col("close")).alias("close"),
    )
    assert sessions.len() == 260 and bars["adj_close"].null_count() > 0
    return bars.sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.mark.parametrize("feature_set_name", ["small", "alpha"])
def test_regrouping_by_symbol_gives_the_grouped_values_bit_for_bit_on_real_prices(stocknet_dir, feature_set_name):
    bars = _stocknet_bars(stocknet_dir)
    assert bars["adj_close"].null_count() > 0 and bars.group_by("symbol").agg(pl.col("session").min())[
        "session"].n_unique() > 1
    assert compute_features(bars, feature_set_name).equals(_grouped_in_place(bars, feature_set_name))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("feature_set_name", ["small", "alpha"])
def test_regrouping_by_symbol_gives_the_grouped_values_bit_for_bit_on_ragged_bars(seed, feature_set_name):
    bars = _ragged_bars(seed)
    assert compute_features(bars, feature_set_name).equals(_grouped_in_place(bars, feature_set_name))


def test_bars_that_are_already_sorted_and_those_that_are_not_give_one_frame(history):
    reversed_rows = history.reverse()
    assert compute_features(reversed_rows).equals(compute_features(history))
    with pytest.raises(BarsError, match=r"repeat a \(session, symbol\) pair"):
        compute_features(pl.concat([history, history.tail(1)]).sort("session", "symbol"))


def test_no_bars_give_an_empty_frame_with_the_columns_and_types():
    empty = make_bars(2, 5).clear()
    for name in ("small", "alpha"):
        features = compute_features(empty, name)
        assert features.height == 0
        assert features.schema == _grouped_in_place(make_bars(2, 5), name).schema
