"""Model quality on real prices: the StockNet set (88 US stocks, 2012-09 to 2017-09).

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_real_signal \\
        [--data ../shared/data/stocknet-prices] [--feature-sets small,alpha] [--labels rank,excess]
        [--seeds 5] [--nested] [--fit-seconds]

For each test year, the models train on the `--train-years` before it (purged and embargoed
walk-forward inside: `train_model`), then score the test year out of sample: LightGBM, the
Ridge baseline, and the shuffled-label control (LightGBM on labels permuted within sessions).
Per test year and overall: mean daily rank IC, ICIR, hit rate, top-minus-bottom quintile, the
signal gate's t-statistic (LightGBM against the control) and training CPU seconds. With `--seeds N`
LightGBM and its control are seed ensembles (mean within-session rank of N members). The
`blend` column is LightGBM and Ridge averaged the same way (shown, never chosen).

`--nested` chooses the setup honestly: for each test year Y, every setup of NESTED_SETUPS is
scored on each earlier year (trained on the years before that one), the setup with the best
mean rank IC over those earlier years is chosen, and only then is Y's figure read. The last
`horizon + embargo` sessions before Y are left out of the choice (their labels reach into Y).

`--fit-seconds` times one LightGBM fit per feature set on StockNet (88 symbols) and on a
synthetic market of 500 symbols, both with 3 training years.
Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import polars as pl  # noqa: E402

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features  # noqa: E402
from trading_pipeline.domain.labels import forward_return_labels  # noqa: E402
from trading_pipeline.domain.model.signal import signal_test  # noqa: E402
from trading_pipeline.domain.model.training import (  # noqa: E402
    PARAM_GRID,
    _fit_lgbm,
    _fit_members,
    _fit_pair,
    _training_rows,
    choose_params,
    ensemble_scores,
    feature_matrix,
    predict_members,
    shuffle_within_sessions,
)
from trading_pipeline.domain.model.training import DEFAULT_LGBM_PARAMS  # noqa: E402
from trading_pipeline.domain.model.validation import prediction_metrics  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stocknet-prices"
HORIZON, EMBARGO = 5, 5
TEST_YEARS = (2015, 2016, 2017)


def load_stocknet(folder: Path) -> pl.DataFrame:
    """The CSVs (Date, Open, High, Low, Close, Adj Close, Volume) as bars; rows with a missing
    or non-positive price are left out."""
    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pl.read_csv(path, null_values=["null", "NA", ""], try_parse_dates=True)
        frames.append(frame.select(
            pl.col("Date").cast(pl.Date).alias("session"), pl.lit(path.stem).alias("symbol"),
            *(pl.col(c).cast(pl.Float64).alias(c.lower()) for c in ("Open", "High", "Low", "Close")),
            pl.col("Volume").cast(pl.Float64).alias("volume"),
            pl.col("Adj Close").cast(pl.Float64).alias("adj_close")))
    bars = pl.concat(frames).drop_nulls()
    return bars.filter(pl.all_horizontal(pl.col("open", "high", "low", "close", "adj_close") > 0))


def year_split(rows: pl.DataFrame, year: int, train_years: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training rows whose labels end before the test year starts; the test year's rows."""
    sessions = rows["session"].unique().sort()
    test_start = date(year, 1, 1)
    before = sessions.filter(sessions < test_start)
    # the last `horizon + embargo` sessions before the test year would share returns with it
    train_sessions = before[:-(HORIZON + EMBARGO)].tail(int(round(train_years * 252)))
    train = rows.filter(pl.col("session").is_in(train_sessions.implode()))
    test = rows.filter(pl.col("session").is_between(test_start, date(year, 12, 31)))
    return train, test


def score_year(rows: pl.DataFrame, columns: tuple[str, ...], year: int, train_years: float,
               tune: bool, halflife: int | None, seed: int = 0, seeds: int = 1) -> tuple[pl.DataFrame, dict]:
    """The test year's rows scored by LightGBM (a `seeds` ensemble), Ridge and the control
    (built as LightGBM is), all trained on the `train_years` before it; and the fit's facts."""
    train, test = year_split(rows, year, train_years)
    start = time.process_time()  # CPU: the machine is shared, wall time says little
    params = {**DEFAULT_LGBM_PARAMS, "random_state": seed}
    if tune:
        params = choose_params(train, columns, params, PARAM_GRID, HORIZON + EMBARGO, halflife)
    models, ridge, _ = _fit_pair(train, columns, params, halflife, seeds)
    noise = train.with_columns(shuffle_within_sessions(train, seed + 1))
    controls = _fit_members(noise, columns, params, seeds, label="shuffled_label", halflife=halflife)
    seconds = time.process_time() - start
    x = feature_matrix(test, columns)
    scored = test.select("session", "symbol", "forward_return").with_columns(
        pl.Series("prediction", predict_members(models, x, test["session"])),
        pl.Series("baseline_prediction", ridge.predict(x)),
        pl.Series("control_prediction", predict_members(controls, x, test["session"])),
        *(pl.Series(f"member_{k}", m.predict(x)) for k, m in enumerate(models) if seeds > 1))
    facts = {"year": year, "train_rows": train.height, "train_start": train["session"].min(),
             "seconds": seconds, "leaves": params.get("num_leaves")}
    return scored, facts


def year_figures(scored: pl.DataFrame) -> dict:
    """Rank IC, ICIR, hit rate and top-minus-bottom of the three models, and the gate's t."""
    # LightGBM + Ridge: the mean of their within-session ranks (read only, never chosen)
    blend = scored.with_columns(pl.Series("blend_prediction", ensemble_scores(
        [scored["prediction"].to_numpy(), scored["baseline_prediction"].to_numpy()], scored["session"])))
    out = {"test_sessions": scored["session"].n_unique(),
           "t_stat": signal_test(scored, horizon=HORIZON).t_stat,
           "blend_rank_ic": prediction_metrics(blend, "blend_prediction")["rank_ic"]}
    # an ensemble against its own members alone: does averaging help, or was one seed lucky?
    members = [c for c in scored.columns if c.startswith("member_")]
    out["members_rank_ic"] = (sum(prediction_metrics(scored, c)["rank_ic"] for c in members) / len(members)
                              if members else float("nan"))
    for name, column in (("lgbm", "prediction"), ("ridge", "baseline_prediction"),
                         ("control", "control_prediction")):
        metrics = prediction_metrics(scored, column)
        out.update({f"{name}_{k}": metrics[k] for k in ("rank_ic", "ic_ir", "hit_rate", "top_minus_bottom")})
    return out


def evaluate(rows: pl.DataFrame, columns: tuple[str, ...], year: int, train_years: float,
             tune: bool, halflife: int | None, seed: int = 0, seeds: int = 1) -> dict:
    scored, facts = score_year(rows, columns, year, train_years, tune, halflife, seed, seeds)
    return {**facts, **year_figures(scored)}


@dataclass(frozen=True)
class Setup:
    name: str
    feature_set: str
    train_years: float
    tune: bool = False
    seeds: int = 1


# Kept small on purpose: every extra candidate makes the choice noisier on so few years.
NESTED_SETUPS = (
    Setup("small 2y", "small", 2.0),
    Setup("alpha 2y", "alpha", 2.0),
    Setup("alpha 3y", "alpha", 3.0),
    Setup("alpha 3y ens5", "alpha", 3.0, seeds=5),
    Setup("alpha 3y tune", "alpha", 3.0, tune=True),
    Setup("alpha 3y tune ens5", "alpha", 3.0, tune=True, seeds=5),
)
CHOICE_YEARS = (2014, 2015, 2016)  # years a setup can be validated on: trained on what precedes them


def feature_rows(bars: pl.DataFrame, feature_set: str, label_kind: str) -> tuple[pl.DataFrame, tuple[str, ...]]:
    features = compute_features(bars, feature_set)
    first = features["session"].unique().sort()[MIN_HISTORY_SESSIONS]
    features = features.filter(pl.col("session") >= first)
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    return _training_rows(features, forward_return_labels(bars, HORIZON, label_kind), columns), columns


def nested(bars: pl.DataFrame, label_kind: str, setups: tuple[Setup, ...] = NESTED_SETUPS) -> None:
    """Choose a setup per test year on earlier years only; print the choice and the test year."""
    by_set = {name: feature_rows(bars, name, label_kind) for name in {s.feature_set for s in setups}}
    scored: dict[tuple[str, int], pl.DataFrame] = {}
    facts: dict[tuple[str, int], dict] = {}
    for setup in setups:
        rows, columns = by_set[setup.feature_set]
        for year in sorted({*CHOICE_YEARS, *TEST_YEARS}):
            scored[setup.name, year], facts[setup.name, year] = score_year(
                rows, columns, year, setup.train_years, setup.tune, None, seeds=setup.seeds)
            print(f"  {setup.name:<20} {year}: trained {facts[setup.name, year]['train_start']}.. "
                  f"({facts[setup.name, year]['train_rows']:,} rows) in "
                  f"{facts[setup.name, year]['seconds']:.1f} s", flush=True)

    def choice_ic(name: str, years: list[int]) -> float:
        # the last horizon + embargo sessions before the test year share returns with it
        cut = sorted(scored[name, years[-1]]["session"].unique())[-(HORIZON + EMBARGO)]
        pooled = pl.concat([scored[name, y] for y in years]).filter(pl.col("session") < cut)
        return prediction_metrics(pooled, "prediction")["rank_ic"]

    every = pl.DataFrame([{"setup": name, **f, **year_figures(scored[name, year])}
                          for (name, year), f in facts.items()])
    chosen_rows = []
    for year in TEST_YEARS:
        earlier = [y for y in CHOICE_YEARS if y < year]
        for rule, years in (("earlier years", earlier), ("year before", [year - 1])):
            validation = {s.name: choice_ic(s.name, years) for s in setups}
            best = max(validation, key=validation.get)
            chosen_rows.append({"rule": rule, "year": year, "chosen": best,
                                "chosen_on": ",".join(map(str, years)), "validation_rank_ic": validation[best],
                                **year_figures(scored[best, year]), "seconds": facts[best, year]["seconds"]})
    chosen = pl.DataFrame(chosen_rows)
    with pl.Config(tbl_cols=-1, tbl_rows=-1, tbl_width_chars=250, float_precision=4, fmt_str_lengths=40):
        print("\nevery setup, every year (NOT a fair choice: for reading only)")
        print(every.select("setup", "year", "train_start", "lgbm_rank_ic", "lgbm_ic_ir", "control_rank_ic",
                           "ridge_rank_ic", "blend_rank_ic", "members_rank_ic", "t_stat",
                           "seconds").sort("setup", "year"))
        print("\nnested choice per test year (chosen on earlier years only)")
        print(chosen.select("rule", "year", "chosen", "chosen_on", "validation_rank_ic", "lgbm_rank_ic",
                            "lgbm_ic_ir", "control_rank_ic", "ridge_rank_ic", "t_stat",
                            "lgbm_hit_rate", "lgbm_top_minus_bottom", "seconds"))
        print("\nmean over test years of the nested choice")
        print(chosen.group_by("rule", maintain_order=True).agg(
            pl.col("lgbm_rank_ic", "lgbm_ic_ir", "control_rank_ic", "ridge_rank_ic", "t_stat").mean(),
            (pl.col("lgbm_rank_ic") > pl.col("control_rank_ic")).sum().alias("years_above_control"),
            (pl.col("t_stat") >= 2.0).sum().alias("years_passing_gate"),
            pl.col("seconds").sum().alias("train_s")))
        print("\nmean over test years, each setup fixed in advance (for comparison)")
        print(every.filter(pl.col("year").is_in(TEST_YEARS)).group_by("setup", maintain_order=True).agg(
            pl.col("lgbm_rank_ic", "lgbm_ic_ir", "control_rank_ic", "ridge_rank_ic", "blend_rank_ic",
                   "t_stat").mean(),
            (pl.col("lgbm_rank_ic") > pl.col("control_rank_ic")).sum().alias("years_above_control"),
            pl.col("seconds").sum().alias("train_s")))


def fit_seconds(bars: pl.DataFrame) -> None:
    """One LightGBM fit (default parameters, 1 thread) per feature set: StockNet's 88 symbols,
    then 500 synthetic symbols, 3 training years each."""
    from trading_pipeline.domain.calendar import sessions_back
    from trading_pipeline.domain.market import SyntheticMarket

    import lightgbm  # noqa: F401  (its import is not a fit)

    synthetic = SyntheticMarket(seed=7, universe_size=500).bars(
        sessions_back(date(2024, 6, 28), 3 * 252 + MIN_HISTORY_SESSIONS + HORIZON))
    figures = []
    for market, frame in (("StockNet 88", bars), ("synthetic 500", synthetic)):
        for feature_set in ("small", "alpha"):
            rows, columns = feature_rows(frame, feature_set, "rank")
            last = rows["session"].max()
            rows = rows.filter(pl.col("session") > last - timedelta(days=365 * 3))
            start, wall = time.process_time(), time.perf_counter()
            _fit_lgbm(rows, columns, {**DEFAULT_LGBM_PARAMS, "random_state": 0})
            figures.append({"market": market, "features": feature_set, "n_features": len(columns),
                            "rows": rows.height, "fit_cpu_s": time.process_time() - start,
                            "fit_wall_s": time.perf_counter() - wall})
    table = pl.DataFrame(figures)
    with pl.Config(tbl_rows=-1, float_precision=2):
        print(table.with_columns(
            (pl.col("fit_cpu_s") / pl.col("fit_cpu_s").first().over("market")).alias("cpu_x_small")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--feature-sets", default="small,alpha")
    parser.add_argument("--labels", default="rank,excess_vol")
    parser.add_argument("--train-years", type=float, default=2.0)
    parser.add_argument("--halflife", type=int, default=0, help="recency half-life in sessions; 0: none")
    parser.add_argument("--tune", action="store_true", help="choose LightGBM parameters on the training years")
    parser.add_argument("--seeds", type=int, default=1, help="LightGBM seed ensemble size (1: one model)")
    parser.add_argument("--nested", action="store_true",
                        help="choose a setup per test year on earlier years only (NESTED_SETUPS)")
    parser.add_argument("--fit-seconds", action="store_true",
                        help="time one fit per feature set, StockNet and 500 synthetic symbols")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: the StockNet price folder {args.data} is absent (give it with --data)")
        return
    bars = load_stocknet(args.data)
    print(f"StockNet: {bars['symbol'].n_unique()} symbols, {bars['session'].min()}..{bars['session'].max()}, "
          f"{bars.height:,} bars; horizon {HORIZON}, {args.train_years} training years before each "
          f"test year, tune={args.tune}, halflife={args.halflife or None}, seeds={args.seeds}")
    if args.fit_seconds:
        fit_seconds(bars)
        return
    if args.nested:
        for label_kind in args.labels.split(","):
            print(f"\nnested choice, labels {label_kind}")
            nested(bars, label_kind)
        return
    results = []
    for feature_set in args.feature_sets.split(","):
        started = time.perf_counter()
        features = compute_features(bars, feature_set)
        feature_seconds = time.perf_counter() - started
        first = features["session"].unique().sort()[MIN_HISTORY_SESSIONS]
        features = features.filter(pl.col("session") >= first)
        columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
        for label_kind in args.labels.split(","):
            rows = _training_rows(features, forward_return_labels(bars, HORIZON, label_kind), columns)
            for year in TEST_YEARS:
                row = evaluate(rows, columns, year, args.train_years, args.tune, args.halflife or None,
                               seeds=args.seeds)
                results.append({"features": feature_set, "n_features": len(columns), "label": label_kind,
                                "feature_s": round(feature_seconds, 2), **row})
    table = pl.DataFrame(results)
    shown = ["features", "label", "year", "test_sessions", "lgbm_rank_ic", "members_rank_ic", "lgbm_ic_ir",
             "ridge_rank_ic", "ridge_ic_ir", "control_rank_ic", "t_stat", "lgbm_hit_rate",
             "lgbm_top_minus_bottom", "ridge_top_minus_bottom", "seconds"]
    with pl.Config(tbl_cols=-1, tbl_rows=-1, tbl_width_chars=250, float_precision=4):
        print(table.select(shown))
        print("\nmean over test years")
        print(table.group_by("features", "label", maintain_order=True).agg(
            pl.col("n_features").first(),
            pl.col("lgbm_rank_ic", "members_rank_ic", "lgbm_ic_ir", "ridge_rank_ic", "ridge_ic_ir",
                   "control_rank_ic", "t_stat", "lgbm_hit_rate", "lgbm_top_minus_bottom").mean(),
            (pl.col("lgbm_rank_ic") > pl.col("control_rank_ic")).sum().alias("years_above_control"),
            pl.col("feature_s").first(), pl.col("seconds").sum().alias("train_s")))


if __name__ == "__main__":
    main()
