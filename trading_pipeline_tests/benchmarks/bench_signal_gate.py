"""The signal gate's false accepts on noise and its power on real prices, for candidate rules.

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_signal_gate \\
        [--noise-seeds 24] [--stocknet-noise-seeds 20] [--real] [--controls 5] [--data ...]

Every candidate reads the same fits: one model and `--controls` shuffled-label controls (each
its own shuffle and seeds, as `train_model` builds them), so the rules differ only in the
statistic. Candidates, each passing at t >= 2.0:

  c1 nw{h}      today's gate: model minus ONE control, Newey-West with `horizon` lags
  c1 auto       one control, lags chosen from the data (Andrews' plug-in, at least `horizon`)
  k{K} nw{h}    model minus the mean of K controls, `horizon` lags
  k{K} nw20     the same, 20 lags
  k{K} auto     the mean of K controls, lags from the data
  k{K} cbb      the mean of K controls; standard error from a circular block bootstrap (blocks of 20)
  zero auto     the model's rank IC against zero (no control), lags from the data
  k5 auto&zero  both k5 auto and zero auto
  k5 spread&zero both k5 spread and zero auto

Noise (the false-accept rate, to keep at or under 5 %):
  - the noise market (`noise_market.noise_bars`: i.i.d. returns, nothing to find), one market per
    seed, the small feature set, `train_model` with 3 folds;
  - StockNet with labels shuffled within sessions (a model of real features that learnt nothing,
    scored on real forward returns, whose factor tilts persist for months): 40 symbols drawn per
    seed, 2013-2015, `train_model` with 3 folds.
  Single-control rules are read once per control (seeds x controls verdicts).
Real (`--real`): StockNet, each test year 2015-2017 scored by models trained on the years
before it (as `bench_real_signal`): alpha features, 3 years, tuned; and the small set, 2 years.
`--loop`: the gate as the loop applies it, `train_model` (4 folds, tuned) on StockNet's 3 years
(alpha features) to the end of 2015 and of 2016.
Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from trading_pipeline.domain.calendar import sessions_back  # noqa: E402
from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features  # noqa: E402
from trading_pipeline.domain.labels import forward_return_labels  # noqa: E402
from trading_pipeline.domain.model.signal import (  # noqa: E402
    SignalRules,
    bartlett_bandwidth_lags,
    control_column,
    daily_signal_series,
    newey_west_t_stat,
)
from trading_pipeline.domain.model.training import (  # noqa: E402
    CONTROL_SHUFFLE_STRIDE,
    DEFAULT_LGBM_PARAMS,
    PARAM_GRID,
    _fit_members,
    _fit_pair,
    choose_params,
    feature_matrix,
    predict_members,
    shuffle_within_sessions,
    train_model,
)
from trading_pipeline_tests.benchmarks.bench_real_signal import (  # noqa: E402
    DEFAULT_DATA,
    EMBARGO,
    HORIZON,
    TEST_YEARS,
    feature_rows,
    load_stocknet,
    year_split,
)
from trading_pipeline_tests.noise_market import noise_bars  # noqa: E402

MIN_T = 2.0
BLOCK = 20


def circular_block_bootstrap_t(values: np.ndarray, block: int = BLOCK, draws: int = 2000, seed: int = 0) -> float:
    """Mean over the standard deviation of the means of circular block resamples."""
    n = values.size
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, (draws, -(-n // block)))
    index = (starts[:, :, None] + np.arange(block)).reshape(draws, -1)[:, :n] % n
    error = values[index].mean(axis=1).std()
    return float(values.mean() / error) if error > 0 else float("nan")


def auto_t(values: np.ndarray) -> float:
    return newey_west_t_stat(values, bartlett_bandwidth_lags(values, HORIZON))


def spread_t(ic: np.ndarray, controls: list[np.ndarray], lags: int) -> float:
    """Model minus the controls' mean over the larger of two standard errors: Newey-West's, and
    the one the controls' own spread says (each control's mean IC is one draw of what a noise
    model scores over these sessions, its chance tilt included)."""
    difference = ic - np.mean(controls, axis=0)
    nw_error = abs(difference.mean() / newey_west_t_stat(difference, lags))
    spread_error = np.std([c.mean() for c in controls], ddof=1) * np.sqrt(1 + 1 / len(controls))
    return float(difference.mean() / max(nw_error, spread_error))


def candidates(daily: pl.DataFrame, controls: int) -> list[tuple[str, int | None, float]]:
    """(rule, control read alone or None, t) for every rule on one daily series frame."""
    ic = daily["rank_ic"].to_numpy()
    each = [daily[f"control_{k}"].to_numpy() for k in range(controls)]
    out: list[tuple[str, int | None, float]] = []
    for k in range(controls):
        out.append((f"c1 nw{HORIZON}", k, newey_west_t_stat(ic - each[k], HORIZON)))
        out.append(("c1 auto", k, auto_t(ic - each[k])))
    for count in sorted({3, controls} & set(range(2, controls + 1))):
        difference = ic - np.mean(each[:count], axis=0)
        out.append((f"k{count} nw{HORIZON}", None, newey_west_t_stat(difference, HORIZON)))
        out.append((f"k{count} nw20", None, newey_west_t_stat(difference, 20)))
        out.append((f"k{count} auto", None, auto_t(difference)))
        out.append((f"k{count} cbb", None, circular_block_bootstrap_t(difference)))
        out.append((f"k{count} spread", None, spread_t(ic, each[:count], HORIZON)))
    zero = auto_t(ic)
    out.append(("zero auto", None, zero))
    if controls >= 5:
        out.append(("k5 auto&zero", None, min(zero, auto_t(ic - np.mean(each[:5], axis=0)))))
        out.append(("k5 spread&zero", None, min(zero, spread_t(ic, each[:5], HORIZON))))
    return out


def noise_market_run(seed: int, controls: int) -> pl.DataFrame:
    sessions = sessions_back(date(2024, 6, 28), MIN_HISTORY_SESSIONS + 400)
    bars = noise_bars(sessions, n_symbols=20, seed=seed)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    result = train_model(features, forward_return_labels(bars, HORIZON), n_folds=3, seed=seed,
                         signal_rules=SignalRules(controls=controls))
    return daily_signal_series(result.oos_predictions)


def stocknet_noise_run(rows: pl.DataFrame, columns: tuple[str, ...], seed: int, controls: int) -> pl.DataFrame:
    symbols = rows["symbol"].unique().sort().sample(40, seed=seed)
    picked = rows.filter(pl.col("symbol").is_in(symbols.implode())
                         & pl.col("session").is_between(date(2013, 1, 1), date(2015, 12, 31)))
    noise = picked.with_columns(shuffle_within_sessions(picked, 10_000 + seed).alias("label"))
    result = train_model(noise.select("session", "symbol", *columns), noise.select(
        "session", "symbol", "forward_return", "label"), feature_columns=columns, n_folds=3, seed=seed,
        signal_rules=SignalRules(controls=controls))
    return daily_signal_series(result.oos_predictions)


def real_year(rows: pl.DataFrame, columns: tuple[str, ...], year: int, train_years: float, tune: bool,
              controls: int) -> pl.DataFrame:
    """The test year scored by the model and `controls` controls trained on the years before it,
    the controls seeded as train_model seeds them."""
    train, test = year_split(rows, year, train_years)
    params = {**DEFAULT_LGBM_PARAMS, "random_state": 0}
    if tune:
        params = choose_params(train, columns, params, PARAM_GRID, HORIZON + EMBARGO, None)
    models, _ = _fit_pair(train, columns, params)
    x = feature_matrix(test, columns)
    scored = test.select("session", "symbol", "forward_return").with_columns(
        pl.Series("prediction", predict_members([m.booster_ for m in models], x, test["session"])))
    for k in range(controls):
        noise = train.with_columns(shuffle_within_sessions(train, 1 + CONTROL_SHUFFLE_STRIDE * k))
        fitted = _fit_members(noise, columns, {**params, "random_state": k}, 1, label="shuffled_label")
        scored = scored.with_columns(pl.Series(control_column(k), fitted[0].booster_.predict(x)))
    return daily_signal_series(scored)


def loop_window(rows: pl.DataFrame, columns: tuple[str, ...], end_year: int, controls: int) -> pl.DataFrame:
    """What the loop's gate sees: `train_model` (4 folds, tuned) on the 3 years to `end_year`'s end."""
    window = rows.filter(pl.col("session").is_between(date(end_year - 2, 1, 1), date(end_year, 12, 31)))
    result = train_model(window.select("session", "symbol", *columns),
                         window.select("session", "symbol", "forward_return", "label"), feature_columns=columns,
                         param_grid=PARAM_GRID, signal_rules=SignalRules(controls=controls))
    return daily_signal_series(result.oos_predictions)


def loop_power(bars: pl.DataFrame, controls: int) -> pl.DataFrame:
    rows, columns = feature_rows(bars, "alpha", "rank")
    records = []
    for end_year in (2015, 2016):
        start = time.process_time()
        daily = loop_window(rows, columns, end_year, controls)
        for rule, control, t in candidates(daily, controls):
            records.append({"window_end": end_year, "rule": rule, "t": t, "rank_ic": daily["rank_ic"].mean(),
                            "control_ic": daily[f"control_{control}"].mean() if control is not None
                            else daily["control"].mean(), "sessions": daily.height})
        print(f"  loop window to {end_year}: {time.process_time() - start:.1f} s CPU", flush=True)
    return pl.DataFrame(records).group_by("window_end", "rule", maintain_order=True).agg(
        pl.col("sessions", "rank_ic").first(), pl.col("control_ic").mean(), pl.col("t").mean().alias("mean_t"),
        pl.col("t").min().alias("min_t"), pl.col("t").max().alias("max_t"),
        (pl.col("t") >= MIN_T).mean().alias("pass_rate"))


def false_accepts(name: str, runs: Callable[[int], pl.DataFrame], seeds: range, controls: int,
                  records_to: Path | None = None) -> pl.DataFrame:
    records = []
    for seed in seeds:
        start = time.process_time()
        daily = runs(seed)
        for rule, control, t in candidates(daily, controls):
            records.append({"market": name, "seed": seed, "rule": rule, "control": control, "t": t})
        print(f"  {name} seed {seed}: {daily.height} sessions, model IC {daily['rank_ic'].mean():.4f}, "
              f"controls {daily['control'].mean():.4f}, {time.process_time() - start:.1f} s CPU", flush=True)
    table = pl.DataFrame(records)
    if records_to is not None:  # every verdict, to pool runs split over seeds
        table.write_csv(records_to)
    return summarise_false_accepts(table)


def summarise_false_accepts(table: pl.DataFrame) -> pl.DataFrame:
    return table.group_by("market", "rule", maintain_order=True).agg(
        pl.len().alias("verdicts"), (pl.col("t") >= MIN_T).sum().alias("accepted"),
        (pl.col("t") >= MIN_T).mean().alias("false_accept_rate"),
        pl.col("t").quantile(0.95).alias("t_p95"), pl.col("t").std().alias("t_sd"))


def real_power(bars: pl.DataFrame, controls: int) -> pl.DataFrame:
    records = []
    for setup, feature_set, train_years, tune in (("alpha 3y tuned", "alpha", 3.0, True),
                                                  ("small 2y", "small", 2.0, False)):
        rows, columns = feature_rows(bars, feature_set, "rank")
        for year in TEST_YEARS:
            start = time.process_time()
            daily = real_year(rows, columns, year, train_years, tune, controls)
            for rule, control, t in candidates(daily, controls):
                records.append({"setup": setup, "year": year, "rule": rule, "control": control, "t": t,
                                "rank_ic": daily["rank_ic"].mean(),
                                "control_ic": daily[f"control_{control}"].mean() if control is not None
                                else daily["control"].mean()})
            print(f"  {setup} {year}: {time.process_time() - start:.1f} s CPU", flush=True)
    table = pl.DataFrame(records)
    return table.group_by("setup", "rule", "year", maintain_order=True).agg(
        pl.col("rank_ic").first(), pl.col("control_ic").mean(), pl.col("t").mean().alias("mean_t"),
        pl.col("t").min().alias("min_t"), pl.col("t").max().alias("max_t"),
        (pl.col("t") >= MIN_T).mean().alias("pass_rate"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--controls", type=int, default=5)
    parser.add_argument("--noise-seeds", type=int, default=24)
    parser.add_argument("--stocknet-noise-seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="noise seeds start here")
    parser.add_argument("--records", type=Path, help="write every noise verdict to CSV files with this prefix")
    parser.add_argument("--pool", type=Path, nargs="*", help="summarise verdict CSVs written by --records, then stop")
    parser.add_argument("--real", action="store_true", help="power on StockNet's test years")
    parser.add_argument("--loop", action="store_true",
                        help="the loop's gate on StockNet: train_model on 3 years (alpha, tuned) to 2015 and 2016")
    args = parser.parse_args()
    if args.pool:
        with pl.Config(tbl_rows=-1, tbl_width_chars=200, float_precision=3):
            print(summarise_false_accepts(pl.concat([pl.read_csv(p) for p in args.pool])))
        return
    tables = []

    def records(market: str) -> Path | None:
        return args.records and args.records.with_name(f"{args.records.name}{market}-{args.first_seed}.csv")

    if args.noise_seeds:
        tables.append(("false accepts, noise market", false_accepts(
            "noise market", lambda seed: noise_market_run(seed, args.controls),
            range(args.first_seed, args.first_seed + args.noise_seeds), args.controls, records("noise"))))
    stocknet = args.data.is_dir()
    if not stocknet:
        print(f"StockNet parts skipped: the price folder {args.data} is absent (give it with --data)")
    if stocknet and args.stocknet_noise_seeds:
        bars = load_stocknet(args.data)
        rows, columns = feature_rows(bars, "small", "rank")
        tables.append(("false accepts, StockNet with shuffled labels", false_accepts(
            "stocknet shuffled", lambda seed: stocknet_noise_run(rows, columns, seed, args.controls),
            range(args.first_seed, args.first_seed + args.stocknet_noise_seeds), args.controls,
            records("stocknet"))))
    if stocknet and args.real:
        tables.append(("power on StockNet (single-control rules: mean, min, max and pass rate over "
                       "each control alone)", real_power(load_stocknet(args.data), args.controls)))
    if stocknet and args.loop:
        tables.append(("the loop's gate on StockNet, alpha 3 years tuned (single-control rules over each "
                       "control alone)", loop_power(load_stocknet(args.data), args.controls)))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, float_precision=3):
        for title, table in tables:
            print(f"\n{title}")
            print(table)


if __name__ == "__main__":
    main()
