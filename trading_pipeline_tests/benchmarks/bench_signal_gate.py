"""The signal gate's false accepts on noise and its power on real prices, for candidate rules.

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_signal_gate \\
        [--noise-seeds 24] [--stocknet-noise-seeds 20] [--symbols 20 40 88] [--first-seed 0]
        [--real] [--loop] [--demo 2023-12-29 ...] [--controls 8] [--records PREFIX] [--data ...]

Every candidate reads the same fits: one model and `--controls` shuffled-label controls (each
its own shuffle and seeds, as `train_model` builds them), and 200 random no-skill scorers on the
same out-of-sample rows (`signal.random_scorer_daily_ics`: random linear combinations of the
features' within-session ranks, no fit), so the rules differ only in the statistic. Candidates,
each passing at t >= 2.0:

  c1 nw{h}        the gate without scorers: model minus ONE control, Newey-West, `horizon` lags
  c1 rnd          the same over an error of at least the scorers' sd * sqrt(2)
  c1 rnd&zero     both c1 rnd and zero rnd
  k{K} spread     model minus the mean of K controls (3, 5, 8), error at least the controls'
                  spread * sqrt(1 + 1/K) (TRADING_SIGNAL_CONTROLS=K without scorers)
  k{K} rnd        the mean of K controls, error at least the scorers' sd * sqrt(1 + 1/K)
  zero rnd        the model's rank IC over the larger of its Newey-West error and the scorers'
                  spread about zero (root mean square of their mean ICs)
  q rnd           the model's rank IC against the scorers' 97.7 % quantile (t 2 there)
  c1 nw5&q rnd    both c1 nw5 and q rnd
  c1 nw5&zero rnd both c1 nw5 and zero rnd: the gate (TRADING_SIGNAL_RANDOM_SCORERS=200)

Noise (the false-accept rate, to keep at or under 5 %):
  - the noise market (`noise_market.noise_bars`: i.i.d. returns, nothing to find), one market per
    seed, the small feature set, `train_model` with 3 folds;
  - StockNet with labels shuffled within sessions (a model of real features that learnt nothing,
    scored on real forward returns, whose factor tilts persist for months): `--symbols` stocks
    drawn per seed (one run per size; 88: all of them, the seeds then differ only in shuffles
    and fits), 2013-2015, `train_model` with 3 folds.
  Single-control rules are read once per control (seeds x controls verdicts).
Real (`--real`): StockNet, each test year 2015-2017 scored by models trained on the years
before it (as `bench_real_signal`): alpha features, 3 years, tuned; and the small set, 2 years.
`--loop`: the gate as the loop applies it, `train_model` (4 folds, tuned) on StockNet's 3 years
(alpha features) to the end of 2015 and of 2016.
`--demo DATE ...`: the embedded demo market (SyntheticMarket seed 7, 50 symbols, with the planted
signal's SIGNAL_STRENGTH at 0.10), the loop's default training on 500-session windows to each date.
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
    control_column,
    daily_signal_series,
    newey_west_t_stat,
    no_skill_spread,
    random_scorer_daily_ics,
    random_scorer_means,
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
SCORERS = 200  # random scorers per run (see signal.random_scorer_daily_ics)


def spread_t(ic: np.ndarray, controls: list[np.ndarray], lags: int) -> float:
    """Model minus the controls' mean over the larger of two standard errors: Newey-West's, and
    the one the controls' own spread says (each control's mean IC is one draw of what a noise
    model scores over these sessions, its chance tilt included)."""
    difference = ic - np.mean(controls, axis=0)
    nw_error = abs(difference.mean() / newey_west_t_stat(difference, lags))
    spread_error = np.std([c.mean() for c in controls], ddof=1) * np.sqrt(1 + 1 / len(controls))
    return float(difference.mean() / max(nw_error, spread_error))


def random_floor_t(ic: np.ndarray, controls: list[np.ndarray], lags: int, scorer_spread: float) -> float:
    """Model minus the controls' mean over the larger of Newey-West's error and the random
    scorers' spread scaled to a difference of one no-skill draw and the mean of K: sd * sqrt(1 + 1/K)."""
    difference = ic - np.mean(controls, axis=0)
    nw_error = abs(difference.mean() / newey_west_t_stat(difference, lags))
    return float(difference.mean() / max(nw_error, scorer_spread * np.sqrt(1 + 1 / len(controls))))


def candidates(daily: pl.DataFrame, controls: int, scorer_means: np.ndarray) -> list[tuple[str, int | None, float]]:
    """(rule, control read alone or None, t) for every rule on one daily series frame;
    `scorer_means`: the random scorers' mean IC on the same sessions."""
    ic = daily["rank_ic"].to_numpy()
    scorer_spread = float(np.std(scorer_means, ddof=1))
    # the model's mean IC against the random scorers' upper 2.3 % (a normal's t = 2), as a t:
    # 2 at that quantile, 0 at their median
    median, upper = np.quantile(scorer_means, [0.5, 0.977])
    quantile_t = float(2 * (ic.mean() - median) / (upper - median))
    each = [daily[f"control_{k}"].to_numpy() for k in range(controls)]
    out: list[tuple[str, int | None, float]] = []
    zero_floor = float(ic.mean() / max(abs(ic.mean() / newey_west_t_stat(ic, HORIZON)),
                                       no_skill_spread(scorer_means)))
    for k in range(controls):
        out.append((f"c1 nw{HORIZON}", k, newey_west_t_stat(ic - each[k], HORIZON)))
        floor = random_floor_t(ic, [each[k]], HORIZON, scorer_spread)
        out.append(("c1 rnd", k, floor))
        out.append(("c1 rnd&zero", k, min(floor, zero_floor)))
    for count in sorted({3, 5, 8, controls} & set(range(2, controls + 1))):
        out.append((f"k{count} spread", None, spread_t(ic, each[:count], HORIZON)))
        out.append((f"k{count} rnd", None, random_floor_t(ic, each[:count], HORIZON, scorer_spread)))
    out.append(("zero rnd", None, zero_floor))
    out.append(("q rnd", None, quantile_t))
    for k in range(controls):
        out.append(("c1 nw5&q rnd", k, min(newey_west_t_stat(ic - each[k], HORIZON), quantile_t)))
        out.append(("c1 nw5&zero rnd", k, min(newey_west_t_stat(ic - each[k], HORIZON), zero_floor)))
    return out


def with_scorers(daily: pl.DataFrame, oos: pl.DataFrame, features: pl.DataFrame,
                 columns: tuple[str, ...], scorers: int) -> tuple[pl.DataFrame, np.ndarray]:
    """The daily series and the random scorers' mean ICs on its sessions (the OOS rows' features)."""
    rows = oos.select("session", "symbol", "forward_return").join(
        features.select("session", "symbol", *columns), on=["session", "symbol"])
    return daily, random_scorer_means(random_scorer_daily_ics(rows, columns, scorers), daily["session"])


Run = tuple[pl.DataFrame, np.ndarray]  # the daily series, and the random scorers' mean ICs on its sessions


def noise_market_run(seed: int, controls: int) -> Run:
    sessions = sessions_back(date(2024, 6, 28), MIN_HISTORY_SESSIONS + 400)
    bars = noise_bars(sessions, n_symbols=20, seed=seed)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    result = train_model(features, forward_return_labels(bars, HORIZON), n_folds=3, seed=seed,
                         signal_rules=SignalRules(controls=controls))
    return with_scorers(daily_signal_series(result.oos_predictions), result.oos_predictions, features,
                        result.feature_columns, SCORERS)


def stocknet_noise_run(rows: pl.DataFrame, columns: tuple[str, ...], seed: int, controls: int,
                       symbols: int) -> Run:
    """`symbols` StockNet stocks drawn by `seed` (all of them when there are no more), labels
    shuffled within sessions, 2013-2015, `train_model` with 3 folds."""
    universe = rows["symbol"].unique().sort()
    picked_symbols = universe.sample(min(symbols, universe.len()), seed=seed)
    picked = rows.filter(pl.col("symbol").is_in(picked_symbols.implode())
                         & pl.col("session").is_between(date(2013, 1, 1), date(2015, 12, 31)))
    noise = picked.with_columns(shuffle_within_sessions(picked, 10_000 + seed).alias("label"))
    result = train_model(noise.select("session", "symbol", *columns), noise.select(
        "session", "symbol", "forward_return", "label"), feature_columns=columns, n_folds=3, seed=seed,
        signal_rules=SignalRules(controls=controls))
    return with_scorers(daily_signal_series(result.oos_predictions), result.oos_predictions, picked,
                        columns, SCORERS)


def real_year(rows: pl.DataFrame, columns: tuple[str, ...], year: int, train_years: float, tune: bool,
              controls: int) -> Run:
    """The test year scored by the model and `controls` controls trained on the years before it,
    the controls seeded as train_model seeds them."""
    train, test = year_split(rows, year, train_years)
    params = {**DEFAULT_LGBM_PARAMS, "random_state": 0}
    if tune:
        params = choose_params(train, columns, params, PARAM_GRID, HORIZON + EMBARGO, None)
    models, _, _ = _fit_pair(train, columns, params)
    x = feature_matrix(test, columns)
    scored = test.select("session", "symbol", "forward_return").with_columns(
        pl.Series("prediction", predict_members(models, x, test["session"])))
    for k in range(controls):
        noise = train.with_columns(shuffle_within_sessions(train, 1 + CONTROL_SHUFFLE_STRIDE * k))
        fitted = _fit_members(noise, columns, {**params, "random_state": k}, 1, label="shuffled_label")
        scored = scored.with_columns(pl.Series(control_column(k), fitted[0].predict(x)))
    return with_scorers(daily_signal_series(scored), scored, test, columns, SCORERS)


def loop_window(rows: pl.DataFrame, columns: tuple[str, ...], end_year: int, controls: int) -> Run:
    """What the loop's gate sees: `train_model` (4 folds, tuned) on the 3 years to `end_year`'s end."""
    window = rows.filter(pl.col("session").is_between(date(end_year - 2, 1, 1), date(end_year, 12, 31)))
    result = train_model(window.select("session", "symbol", *columns),
                         window.select("session", "symbol", "forward_return", "label"), feature_columns=columns,
                         param_grid=PARAM_GRID, signal_rules=SignalRules(controls=controls))
    return with_scorers(daily_signal_series(result.oos_predictions), result.oos_predictions, window,
                        columns, SCORERS)


def demo_window(end: date, controls: int) -> Run:
    """The synthetic demo market (seed 7, 50 symbols, the lead's SIGNAL_STRENGTH 0.10): the
    loop's default training (small features, 500-session window to `end`): a planted signal."""
    import trading_pipeline.domain.market.simulation as simulation
    from trading_pipeline.domain.market.synthetic import SyntheticMarket

    simulation.SIGNAL_STRENGTH = 0.10
    market = SyntheticMarket(seed=7, universe_size=50, origin=date(2020, 1, 2))
    sessions = sessions_back(end, 500 + MIN_HISTORY_SESSIONS + HORIZON)
    bars = market.bars(sessions)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= sessions[MIN_HISTORY_SESSIONS])
    labels = forward_return_labels(bars, HORIZON)
    result = train_model(features, labels, signal_rules=SignalRules(controls=controls))
    return with_scorers(daily_signal_series(result.oos_predictions), result.oos_predictions, features,
                        result.feature_columns, SCORERS)


def power_rows(key: dict, run: Run, controls: int) -> list[dict]:
    daily, means = run
    return [{**key, "rule": rule, "control": control, "t": t, "rank_ic": daily["rank_ic"].mean(),
             "control_ic": daily[f"control_{control}"].mean() if control is not None else daily["control"].mean(),
             "scorer_sd": float(np.std(means, ddof=1)), "sessions": daily.height}
            for rule, control, t in candidates(daily, controls, means)]


def summarise_power(table: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return table.group_by(*keys, "rule", maintain_order=True).agg(
        pl.col("sessions", "rank_ic", "scorer_sd").first(), pl.col("control_ic").mean(),
        pl.col("t").mean().alias("mean_t"), pl.col("t").min().alias("min_t"), pl.col("t").max().alias("max_t"),
        (pl.col("t") >= MIN_T).mean().alias("pass_rate"))


def loop_power(bars: pl.DataFrame, controls: int) -> pl.DataFrame:
    rows, columns = feature_rows(bars, "alpha", "rank")
    records = []
    for end_year in (2015, 2016):
        start = time.process_time()
        records += power_rows({"window_end": end_year}, loop_window(rows, columns, end_year, controls), controls)
        print(f"  loop window to {end_year}: {time.process_time() - start:.1f} s CPU", flush=True)
    return summarise_power(pl.DataFrame(records), ["window_end"])


def demo_power(ends: list[date], controls: int) -> pl.DataFrame:
    records = []
    for end in ends:
        start = time.process_time()
        records += power_rows({"window_end": end}, demo_window(end, controls), controls)
        print(f"  demo window to {end}: {time.process_time() - start:.1f} s CPU", flush=True)
    return summarise_power(pl.DataFrame(records), ["window_end"])


def false_accepts(name: str, runs: Callable[[int], Run], seeds: range, controls: int,
                  records_to: Path | None = None) -> pl.DataFrame:
    records = []
    for seed in seeds:
        start = time.process_time()
        daily, means = runs(seed)
        spread = float(np.std(means, ddof=1))
        control_means = [float(daily[f"control_{k}"].mean()) for k in range(controls)]
        for rule, control, t in candidates(daily, controls, means):
            records.append({"market": name, "seed": seed, "rule": rule, "control": control, "t": t,
                            "scorer_sd": spread, "controls_sd": float(np.std(control_means, ddof=1))
                            if controls > 1 else float("nan"), "model_ic": float(daily["rank_ic"].mean())})
        print(f"  {name} seed {seed}: {daily.height} sessions, model IC {daily['rank_ic'].mean():.4f}, "
              f"controls {daily['control'].mean():.4f}, scorers' sd {spread:.4f}, "
              f"{time.process_time() - start:.1f} s CPU", flush=True)
    table = pl.DataFrame(records)
    if records_to is not None:  # every verdict, to pool runs split over seeds
        table.write_csv(records_to)
    return summarise_false_accepts(table)


def summarise_false_accepts(table: pl.DataFrame) -> pl.DataFrame:
    """Per market and rule: verdicts, false accepts, the spread of t; and per market the
    calibration of the random scorers: the sd of the model's mean IC over seeds, the mean sd of
    the controls' means within a run, and the mean random scorers' sd."""
    return table.group_by("market", "rule", maintain_order=True).agg(
        pl.len().alias("verdicts"), (pl.col("t") >= MIN_T).sum().alias("accepted"),
        (pl.col("t") >= MIN_T).mean().alias("false_accept_rate"),
        pl.col("t").quantile(0.95).alias("t_p95"), pl.col("t").std().alias("t_sd"),
        pl.col("model_ic").std().alias("model_ic_sd"), pl.col("controls_sd").mean(),
        pl.col("scorer_sd").mean())


def real_power(bars: pl.DataFrame, controls: int) -> pl.DataFrame:
    records = []
    for setup, feature_set, train_years, tune in (("alpha 3y tuned", "alpha", 3.0, True),
                                                  ("small 2y", "small", 2.0, False)):
        rows, columns = feature_rows(bars, feature_set, "rank")
        for year in TEST_YEARS:
            start = time.process_time()
            records += power_rows({"setup": setup, "year": year},
                                  real_year(rows, columns, year, train_years, tune, controls), controls)
            print(f"  {setup} {year}: {time.process_time() - start:.1f} s CPU", flush=True)
    return summarise_power(pl.DataFrame(records), ["setup", "year"])


def show(titled: tuple[str, pl.DataFrame]) -> None:
    """Print a table as soon as it is measured: the runs are long."""
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3):
        print(f"\n{titled[0]}\n{titled[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--controls", type=int, default=5)
    parser.add_argument("--noise-seeds", type=int, default=24)
    parser.add_argument("--stocknet-noise-seeds", type=int, default=20)
    parser.add_argument("--symbols", type=int, nargs="+", default=[40],
                        help="StockNet noise: stocks drawn per seed, one run per size (88 or more: all)")
    parser.add_argument("--demo", type=date.fromisoformat, nargs="*",
                        help="power on the synthetic demo market: 500-session windows ending on these dates")
    parser.add_argument("--first-seed", type=int, default=0, help="noise seeds start here")
    parser.add_argument("--records", type=Path, help="write every noise verdict to CSV files with this prefix")
    parser.add_argument("--pool", type=Path, nargs="*", help="summarise verdict CSVs written by --records, then stop")
    parser.add_argument("--real", action="store_true", help="power on StockNet's test years")
    parser.add_argument("--loop", action="store_true",
                        help="the loop's gate on StockNet: train_model on 3 years (alpha, tuned) to 2015 and 2016")
    args = parser.parse_args()
    if args.pool:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3):
            print(summarise_false_accepts(pl.concat([pl.read_csv(p) for p in args.pool])))
        return
    def records(market: str) -> Path | None:
        return args.records and args.records.with_name(f"{args.records.name}{market}-{args.first_seed}.csv")

    if args.noise_seeds:
        show(("false accepts, noise market", false_accepts(
            "noise market", lambda seed: noise_market_run(seed, args.controls),
            range(args.first_seed, args.first_seed + args.noise_seeds), args.controls, records("noise"))))
    stocknet = args.data.is_dir()
    if not stocknet:
        print(f"StockNet parts skipped: the price folder {args.data} is absent (give it with --data)")
    if stocknet and args.stocknet_noise_seeds:
        bars = load_stocknet(args.data)
        rows, columns = feature_rows(bars, "small", "rank")
        for size in args.symbols:
            show((f"false accepts, StockNet with shuffled labels, {size} stocks", false_accepts(
                f"stocknet shuffled {size}",
                lambda seed, size=size: stocknet_noise_run(rows, columns, seed, args.controls, size),
                range(args.first_seed, args.first_seed + args.stocknet_noise_seeds), args.controls,
                records(f"stocknet{size}"))))
    if stocknet and args.real:
        show(("power on StockNet (single-control rules: mean, min, max and pass rate over "
                       "each control alone)", real_power(load_stocknet(args.data), args.controls)))
    if stocknet and args.loop:
        show(("the loop's gate on StockNet, alpha 3 years tuned (single-control rules over each "
                       "control alone)", loop_power(load_stocknet(args.data), args.controls)))
    if args.demo:
        show(("the loop's default training on the synthetic demo market (planted signal, "
                       "SIGNAL_STRENGTH 0.10)", demo_power(args.demo, args.controls)))


if __name__ == "__main__":
    main()
