"""The synthetic market: deterministic, well-formed, realistic enough, with a weak planted signal
and a regime shift that downstream drift detection can see."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from scipy import stats

from trading_pipeline.domain.calendar import sessions_back, sessions_between
from trading_pipeline.domain.market import (
    BAR_SCHEMA,
    MarketDataSource,
    SyntheticMarket,
    validate_bars,
)

SHIFT = date(2022, 1, 3)
YEARS_2019_2022 = sessions_between(date(2019, 1, 2), date(2022, 12, 30))


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, universe_size=50)


@pytest.fixture(scope="module")
def history(market) -> pl.DataFrame:
    """Four years of the default market with daily log returns."""
    return with_log_returns(market.bars(YEARS_2019_2022))


def with_log_returns(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.with_columns(
        (pl.col("close") / pl.col("close").shift(1)).log().over("symbol", order_by="session").alias("log_return")
    )


# ---------------------------------------------------------------- shape and determinism


def test_bars_have_the_schema_one_row_per_session_and_symbol_sorted(market, history):
    assert isinstance(market, MarketDataSource)
    assert history.drop("log_return").schema == pl.Schema(BAR_SCHEMA)
    assert history.height == len(YEARS_2019_2022) * 50
    assert history.select(pl.struct("session", "symbol").is_unique().all()).item()
    assert history.equals(history.sort("session", "symbol"))
    assert history["symbol"].unique().sort().to_list() == market.symbols()
    assert (history["adj_close"] == history["close"]).all()  # no splits in synthetic data


def test_only_xnys_sessions_from_the_origin_have_bars(market):
    asked = [date(2024, 6, 1), date(2024, 6, 2), date(2024, 7, 4), date(2014, 12, 31), date(2024, 6, 3)]
    got = market.bars(asked)
    assert got["session"].unique().to_list() == [date(2024, 6, 3)]  # Sat, Sun, holiday, pre-origin
    assert market.bars([]).schema == pl.Schema(BAR_SCHEMA)
    assert market.bars([date(2015, 1, 1)]).is_empty()
    assert market.bars([date(2015, 1, 2)]).height == 50  # the origin itself is the first session


def test_a_session_has_the_same_bars_however_it_is_asked_for():
    june_3 = date(2024, 6, 3)
    alone = SyntheticMarket(seed=7).bars([june_3])
    in_a_range = SyntheticMarket(seed=7).bars(sessions_between(date(2020, 1, 2), date(2024, 12, 31)))
    later_first = SyntheticMarket(seed=7)
    later_first.bars(sessions_between(date(2025, 1, 2), date(2025, 3, 31)))
    shuffled = list(reversed(sessions_between(date(2024, 5, 1), date(2024, 6, 30))))
    assert alone.height == 50
    assert in_a_range.filter(pl.col("session") == june_3).equals(alone)
    assert later_first.bars([june_3]).equals(alone)
    assert later_first.bars(shuffled).filter(pl.col("session") == june_3).equals(alone)
    # datetimes (and pandas timestamps) name the same session
    assert later_first.bars([datetime(2024, 6, 3, 16, 0)]).equals(alone)


def test_the_seed_decides_the_market():
    session, origin = [date(2023, 3, 1)], date(2023, 1, 3)
    seven = SyntheticMarket(seed=7, origin=origin).bars(session)
    assert SyntheticMarket(seed=7, origin=origin).bars(session).equals(seven)
    eight = SyntheticMarket(seed=8, origin=origin).bars(session)
    assert not np.allclose(eight["close"].to_numpy(), seven["close"].to_numpy())


def test_universe_and_sectors_are_deterministic_and_complete(market):
    sectors = market.sectors()
    assert sectors.schema == pl.Schema({"symbol": pl.String, "sector": pl.String})
    assert sectors["symbol"].to_list() == market.symbols() == [f"SYM{i:04d}" for i in range(1, 51)]
    assert 8 <= sectors["sector"].n_unique() <= 11
    assert sectors["sector"].value_counts()["count"].min() >= 3  # every sector has members
    assert sectors.equals(SyntheticMarket(seed=7).sectors())


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="universe_size"):
        SyntheticMarket(universe_size=1)
    with pytest.raises(TypeError, match="dates"):
        SyntheticMarket().bars(["2024-06-03"])


def test_a_universe_of_a_thousand_symbols_works():
    big = SyntheticMarket(seed=3, universe_size=1000, origin=date(2022, 6, 1))
    sessions = sessions_between(date(2023, 1, 3), date(2023, 3, 31))
    got = validate_bars(big.bars(sessions), "synthetic")
    assert got.height == 1000 * len(sessions)
    assert got["symbol"].n_unique() == 1000
    assert big.sectors()["sector"].n_unique() == 11


# ---------------------------------------------------------------- realism


def test_bars_pass_validation_with_consistent_positive_prices(history):
    checked = validate_bars(history.drop("log_return"), "synthetic")
    assert checked.height == history.height
    prices = history.select("open", "high", "low", "close").to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert (history["low"] <= history["open"]).all() and (history["open"] <= history["high"]).all()
    assert (history["low"] <= history["close"]).all() and (history["close"] <= history["high"]).all()
    assert (history["high"] > history["low"]).all()
    assert (history["volume"] > 0).all() and (history["volume"] == history["volume"].round()).all()


def test_opens_gap_from_the_previous_close(history):
    gaps = history.with_columns(
        (pl.col("open") / pl.col("close").shift(1)).log().over("symbol", order_by="session").alias("gap")
    ).drop_nulls("gap")
    assert (gaps["gap"].abs() > 1e-6).mean() > 0.99
    # the gap is part of the day's move: it leans the same way as the close-to-close return
    assert np.corrcoef(gaps["gap"], gaps["log_return"])[0, 1] > 0.3


def test_returns_have_fat_tails(history):
    kurtosis = (
        history.drop_nulls("log_return")
        .group_by("symbol")
        .agg(pl.col("log_return").kurtosis(fisher=False).alias("kurtosis"))["kurtosis"]
    )
    assert kurtosis.median() > 4.0  # a normal distribution has 3
    assert (kurtosis > 3.0).mean() > 0.9


def test_volatility_clusters(history):
    by_symbol = history.drop_nulls("log_return").group_by("symbol").agg(pl.col("log_return"))
    autocorr, shuffled_autocorr = [], []
    rng = np.random.default_rng(0)
    for returns in by_symbol["log_return"].to_list():
        size = np.abs(np.asarray(returns))
        autocorr.append(np.corrcoef(size[1:], size[:-1])[0, 1])
        shuffled = rng.permutation(size)
        shuffled_autocorr.append(np.corrcoef(shuffled[1:], shuffled[:-1])[0, 1])
    assert np.mean(autocorr) > 0.05
    assert np.mean(autocorr) > np.mean(shuffled_autocorr) + 0.04  # not an artefact of the measure


def test_volume_rises_with_the_size_of_the_move(history):
    moves = history.drop_nulls("log_return").with_columns(
        pl.col("log_return").abs().alias("size"), pl.col("volume").log().alias("log_volume")
    )
    per_symbol = moves.group_by("symbol").agg(pl.corr("size", "log_volume").alias("corr"))["corr"]
    assert per_symbol.median() > 0.1


def sector_correlations(bars: pl.DataFrame, sectors: pl.DataFrame) -> tuple[float, float]:
    """Mean pairwise correlation of daily returns: within a sector, and across sectors."""
    wide = bars.drop_nulls("log_return").pivot(on="symbol", index="session", values="log_return").drop("session")
    sector_of = dict(sectors.iter_rows())
    corr = np.corrcoef(wide.to_numpy().T)
    names = wide.columns
    pairs = [(i, j) for i in range(len(names)) for j in range(i)]
    same = [corr[i, j] for i, j in pairs if sector_of[names[i]] == sector_of[names[j]]]
    across = [corr[i, j] for i, j in pairs if sector_of[names[i]] != sector_of[names[j]]]
    return float(np.mean(same)), float(np.mean(across))


def test_stocks_move_together_more_within_a_sector(market, history):
    same, across = sector_correlations(history, market.sectors())
    assert across > 0.1  # the market factor
    assert same > across + 0.05  # the sector factors


# ---------------------------------------------------------------- regime shift


@pytest.fixture(scope="module")
def shifted() -> SyntheticMarket:
    return SyntheticMarket(seed=7, universe_size=50, regime_shift_date=SHIFT)


def test_bars_before_the_shift_are_those_of_the_unshifted_market(market, shifted):
    before = sessions_between(date(2021, 1, 4), date(2021, 12, 31))
    assert shifted.bars(before).equals(market.bars(before))
    after = shifted.bars([SHIFT]), market.bars([SHIFT])
    assert not np.allclose(after[0]["close"].to_numpy(), after[1]["close"].to_numpy())


def test_twenty_day_volatility_is_clearly_different_after_the_shift(shifted):
    sessions = sessions_between(date(2021, 1, 4), date(2022, 12, 30))
    vol = (
        with_log_returns(shifted.bars(sessions))
        .with_columns(pl.col("log_return").rolling_std(20).over("symbol", order_by="session").alias("vol_20"))
        .drop_nulls("vol_20")
    )
    before = vol.filter(pl.col("session") < SHIFT)["vol_20"].to_numpy()
    # windows that end 20 sessions after the shift hold only shifted returns
    after = vol.filter(pl.col("session") >= sessions_between(SHIFT, date(2022, 3, 1))[20])["vol_20"].to_numpy()
    ks = stats.ks_2samp(before, after)
    assert ks.pvalue < 1e-12 and ks.statistic > 0.5
    assert 2.0 < np.median(after) / np.median(before) < 3.5


def test_sectors_move_more_as_blocs_after_the_shift(shifted):
    bars = with_log_returns(shifted.bars(sessions_between(date(2021, 1, 4), date(2022, 12, 30))))
    same_before, across_before = sector_correlations(bars.filter(pl.col("session") < SHIFT), shifted.sectors())
    same_after, across_after = sector_correlations(bars.filter(pl.col("session") >= SHIFT), shifted.sectors())
    assert same_after - across_after > (same_before - across_before) + 0.1


def test_volume_level_changes_after_the_shift(shifted):
    bars = shifted.bars(sessions_between(date(2021, 7, 1), date(2022, 6, 30)))
    level = bars.group_by(pl.col("session") >= SHIFT).agg(pl.col("volume").log().mean())
    before, after = (level.filter(pl.col("session") == flag)["volume"].item() for flag in (False, True))
    assert after - before > np.log(1.5)


def test_the_planted_reversal_flips_sign_after_the_shift(shifted):
    """Rank IC of the last 5-session return against the next 5, before and after the shift."""
    sessions = sessions_between(date(2020, 1, 2), date(2023, 12, 29))
    bars = with_log_returns(shifted.bars(sessions)).with_columns(
        (pl.col("close") / pl.col("close").shift(5) - 1).over("symbol", order_by="session").alias("past_5"),
        (pl.col("close").shift(-5) / pl.col("close") - 1).over("symbol", order_by="session").alias("forward_5"),
    ).drop_nulls(["past_5", "forward_5"])
    per_session = (
        bars.group_by("session")
        .agg(pl.corr("past_5", "forward_5", method="spearman").alias("ic"))
        .with_columns((pl.col("session") >= SHIFT).alias("shifted"))
        .group_by("shifted")
        .agg(pl.col("ic").mean())
    )
    calm = per_session.filter(~pl.col("shifted"))["ic"].item()
    flipped = per_session.filter(pl.col("shifted"))["ic"].item()
    assert calm < -0.02  # short-term reversal
    assert flipped > 0.02  # after the shift: continuation


# ---------------------------------------------------------------- the planted signal

FEATURES = ["ret_1", "ret_5", "ret_20", "ret_60", "vol_20", "range_1", "range_5", "volume_1_20", "volume_5_20"]


def point_in_time_features(bars: pl.DataFrame) -> pl.DataFrame:
    """Generic bar features known at each session's close, their per-session ranks, and the
    label: the next 5 sessions' return (which only the label may look at)."""
    close, volume = pl.col("close"), pl.col("volume")
    frame = (
        bars.sort("symbol", "session")
        .with_columns(
            *[(close / close.shift(k) - 1).over("symbol").alias(f"ret_{k}") for k in (1, 5, 20, 60)],
            ((pl.col("high") - pl.col("low")) / close).alias("range_1"),
            (volume / volume.rolling_mean(20)).over("symbol").alias("volume_1_20"),
            (volume.rolling_mean(5) / volume.rolling_mean(20)).over("symbol").alias("volume_5_20"),
            (close.shift(-5) / close - 1).over("symbol").alias("forward_5"),
        )
        .with_columns(
            pl.col("ret_1").rolling_std(20).over("symbol").alias("vol_20"),
            pl.col("range_1").rolling_mean(5).over("symbol").alias("range_5"),
        )
    )
    ranks = [(pl.col(f).rank() / pl.len()).over("session").alias(f"{f}_rank") for f in FEATURES]
    return frame.with_columns(ranks).drop_nulls()


def mean_rank_ic(frame: pl.DataFrame, predictions: np.ndarray) -> float:
    return (
        frame.with_columns(pl.Series("prediction", predictions))
        .group_by("session")
        .agg(pl.corr("prediction", "forward_5", method="spearman").alias("ic"))["ic"]
        .mean()
    )


def test_a_model_on_bar_features_finds_the_weak_planted_signal_out_of_sample():
    import lightgbm

    market = SyntheticMarket(seed=7, universe_size=100)
    data = point_in_time_features(market.bars(sessions_between(date(2018, 6, 1), date(2022, 12, 30))))
    columns = FEATURES + [f"{f}_rank" for f in FEATURES]
    # The last 5 sessions of 2021 are not trained on: their labels reach into the test year.
    last_train = sessions_back(date(2021, 12, 31), 6)[0]
    train = data.filter(pl.col("session").is_between(date(2019, 1, 1), last_train))
    test = data.filter(pl.col("session").is_between(date(2022, 1, 1), date(2022, 12, 31)))
    assert train["session"].max() < date(2022, 1, 1) and test.height > 200 * 100
    label = train.select((pl.col("forward_5").rank() / pl.len()).over("session"))["forward_5"].to_numpy()

    def out_of_sample_ic(target: np.ndarray) -> float:
        model = lightgbm.LGBMRegressor(
            n_estimators=100, learning_rate=0.05, num_leaves=15, min_child_samples=200,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=1, random_state=0, verbose=-1,
        )
        model.fit(train.select(columns).to_numpy(), target)
        return mean_rank_ic(test, model.predict(test.select(columns).to_numpy()))

    real = out_of_sample_ic(label)
    shuffled = out_of_sample_ic(np.random.default_rng(0).permutation(label))
    print(f"out-of-sample mean rank IC: {real:.4f}; with shuffled labels: {shuffled:.4f}")
    assert 0.01 < real < 0.2  # weak but real, like a decent equity signal
    assert abs(shuffled) < real


@pytest.mark.parametrize("training_ends", [date(2025, 6, 3), date(2025, 12, 3)])
def test_the_demos_first_model_shows_signal_so_the_default_policy_trades_it(training_ends, tmp_path):
    """The embedded demo trains its first model on the default market and window and, under the
    default TRADING_WITHOUT_SIGNAL=hold_cash, trades it only if it passes the signal gate: the
    planted signal must be found wherever the demo starts (at half today's strength these two
    windows gave t 1.19 and 1.31, and the demo held cash)."""
    from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS
    from trading_pipeline.domain.model.training import train_model
    from trading_pipeline.services.modeling import training_frames
    from trading_pipeline.settings import TradingSettings
    from trading_pipeline.storage import market_store
    from trading_pipeline.storage.warehouse import Warehouse

    defaults = TradingSettings(_env_file=None)
    options, window, horizon = (defaults.model.training_options(), defaults.model.train_window_sessions,
                                defaults.model.label_horizon)
    market = SyntheticMarket(seed=defaults.data.market_seed, universe_size=defaults.data.universe_size)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, market.bars(sessions_back(training_ends, window + MIN_HISTORY_SESSIONS)))
    features, labels = training_frames(warehouse, training_ends, options.window_sessions(window), horizon, options)
    result = train_model(features, labels, horizon=horizon, signal_rules=options.signal,
                         feature_columns=[c for c in features.columns if c not in ("session", "symbol")])
    assert options.without_signal == "hold_cash"
    assert result.signal.passed, result.signal.reason
    # a margin, not a coin flip (the random scorers' test caps t near 3 with the small set's features)
    assert result.signal.t_stat > options.signal.min_t_stat + 0.5
