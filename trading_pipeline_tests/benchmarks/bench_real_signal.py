"""Model quality on real prices: the StockNet set (88 US stocks, 2012-09 to 2017-09).

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_real_signal \\
        [--data ../shared/data/stocknet-prices] [--feature-sets small,alpha] [--labels rank,excess]

For each test year, the models train on the `--train-years` before it (purged and embargoed
walk-forward inside: `train_model`), then score the test year out of sample: LightGBM, the
Ridge baseline, and the shuffled-label control (LightGBM on labels permuted within sessions).
Per test year and overall: mean daily rank IC, ICIR, hit rate, top-minus-bottom quintile, the
signal gate's t-statistic (LightGBM against the control) and training time. Prints tables;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import polars as pl  # noqa: E402

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features  # noqa: E402
from trading_pipeline.domain.labels import forward_return_labels  # noqa: E402
from trading_pipeline.domain.model.signal import signal_test  # noqa: E402
from trading_pipeline.domain.model.training import (  # noqa: E402
    PARAM_GRID,
    _fit_lgbm,
    _fit_pair,
    _training_rows,
    choose_params,
    feature_matrix,
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


def evaluate(rows: pl.DataFrame, columns: tuple[str, ...], year: int, train_years: float,
             tune: bool, halflife: int | None, seed: int = 0) -> dict:
    train, test = year_split(rows, year, train_years)
    start = time.perf_counter()
    params = {**DEFAULT_LGBM_PARAMS, "random_state": seed}
    if tune:
        params = choose_params(train, columns, params, PARAM_GRID, HORIZON + EMBARGO, halflife)
    model, ridge = _fit_pair(train, columns, params, halflife)
    noise = train.with_columns(shuffle_within_sessions(train, seed + 1))
    control = _fit_lgbm(noise, columns, params, label="shuffled_label", halflife=halflife)
    seconds = time.perf_counter() - start
    x = feature_matrix(test, columns)
    scored = test.select("session", "symbol", "forward_return").with_columns(
        pl.Series("prediction", model.booster_.predict(x)),
        pl.Series("baseline_prediction", ridge.predict(x)),
        pl.Series("control_prediction", control.booster_.predict(x)))
    verdict = signal_test(scored, horizon=HORIZON)
    out = {"year": year, "train_rows": train.height, "test_sessions": scored["session"].n_unique(),
           "seconds": seconds, "t_stat": verdict.t_stat, "leaves": params.get("num_leaves")}
    for name, column in (("lgbm", "prediction"), ("ridge", "baseline_prediction"),
                         ("control", "control_prediction")):
        metrics = prediction_metrics(scored, column)
        out.update({f"{name}_{k}": metrics[k] for k in ("rank_ic", "ic_ir", "hit_rate", "top_minus_bottom")})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--feature-sets", default="small,alpha")
    parser.add_argument("--labels", default="rank,excess_vol")
    parser.add_argument("--train-years", type=float, default=2.0)
    parser.add_argument("--halflife", type=int, default=0, help="recency half-life in sessions; 0: none")
    parser.add_argument("--tune", action="store_true", help="choose LightGBM parameters on the training years")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: the StockNet price folder {args.data} is absent (give it with --data)")
        return
    bars = load_stocknet(args.data)
    print(f"StockNet: {bars['symbol'].n_unique()} symbols, {bars['session'].min()}..{bars['session'].max()}, "
          f"{bars.height:,} bars; horizon {HORIZON}, {args.train_years} training years before each "
          f"test year, tune={args.tune}, halflife={args.halflife or None}")
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
                row = evaluate(rows, columns, year, args.train_years, args.tune, args.halflife or None)
                results.append({"features": feature_set, "n_features": len(columns), "label": label_kind,
                                "feature_s": round(feature_seconds, 2), **row})
    table = pl.DataFrame(results)
    shown = ["features", "label", "year", "test_sessions", "lgbm_rank_ic", "lgbm_ic_ir", "ridge_rank_ic",
             "ridge_ic_ir", "control_rank_ic", "t_stat", "lgbm_hit_rate", "lgbm_top_minus_bottom",
             "ridge_top_minus_bottom", "seconds"]
    with pl.Config(tbl_cols=-1, tbl_rows=-1, tbl_width_chars=250, float_precision=4):
        print(table.select(shown))
        print("\nmean over test years")
        print(table.group_by("features", "label", maintain_order=True).agg(
            pl.col("n_features").first(),
            pl.col("lgbm_rank_ic", "lgbm_ic_ir", "ridge_rank_ic", "ridge_ic_ir", "control_rank_ic",
                   "t_stat", "lgbm_hit_rate", "lgbm_top_minus_bottom").mean(),
            (pl.col("lgbm_rank_ic") > pl.col("control_rank_ic")).sum().alias("years_above_control"),
            pl.col("feature_s").first(), pl.col("seconds").sum().alias("train_s")))


if __name__ == "__main__":
    main()
