"""Out-of-sample rank IC on the synthetic market: LightGBM, the Ridge baseline, and LightGBM
trained on shuffled labels (a control that should find nothing), for several markets.

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_model_quality \\
        [--seeds 7,11,23] [--symbols 50,100] [--through 2024-06-28] [--window 500] [--shuffles 3]

Each market is the training data the `trained_model` asset would use (settings defaults: a
500-session window, 5-session horizon), scored by `train_model`'s walk-forward folds (purged,
with an embargo). The shuffled control permutes the training target (`label`) across rows and
keeps the real forward returns for scoring; it is repeated `--shuffles` times (its mean and
its largest absolute value are printed): one shuffle of a linear model lands on a random
direction, whose IC can be as large as the signal's. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from trading_pipeline.domain.calendar import sessions_back  # noqa: E402
from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features  # noqa: E402
from trading_pipeline.domain.labels import forward_return_labels  # noqa: E402
from trading_pipeline.domain.market import SyntheticMarket  # noqa: E402
from trading_pipeline.domain.model import train_model  # noqa: E402

# The floor planted in trading_pipeline_tests/domain/test_synthetic_market.py
# (test_a_model_on_bar_features_finds_the_weak_planted_signal_out_of_sample): a LightGBM on
# generic bar features must reach an out-of-sample mean rank IC above it (100 symbols, seed 7).
PLANTED_FLOOR = 0.01
HORIZON = 5


def market_frames(seed: int, symbols: int, through: date, window: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and labels as `services.modeling.training_frames` builds them from stored bars."""
    sessions = sessions_back(through, window + MIN_HISTORY_SESSIONS)
    bars = SyntheticMarket(seed=seed, universe_size=symbols).bars(sessions)
    features = compute_features(bars).filter(pl.col("session") >= sessions[MIN_HISTORY_SESSIONS])
    return features, forward_return_labels(bars, horizon=HORIZON)


def shuffled(labels: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The training target permuted across rows; forward returns (what is scored) untouched."""
    known = labels.filter(pl.col("label").is_not_null())
    permuted = np.random.default_rng(seed).permutation(known["label"].to_numpy())
    return known.with_columns(pl.Series("label", permuted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7,11,23")
    parser.add_argument("--symbols", default="50,100")
    parser.add_argument("--through", type=date.fromisoformat, default=date(2024, 6, 28))
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--shuffles", type=int, default=3)
    args = parser.parse_args()

    header = (f"{'symbols':>7} {'seed':>5} {'OOS sessions':>12} {'lightgbm':>9} {'ridge':>9} "
              f"{'shuffled':>9} {'max|shuf|':>9} {'shuf.ridge':>10} {'max|s.r.|':>9} "
              f"{'lgbm IC IR':>10} {'> floor':>7} {'seconds':>8}")
    print(f"out-of-sample mean daily rank IC, {args.window}-session window through {args.through}, "
          f"horizon {HORIZON}, 4 walk-forward folds; planted floor {PLANTED_FLOOR}")
    print(header)
    rows = []
    for symbols in (int(s) for s in args.symbols.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            features, labels = market_frames(seed, symbols, args.through, args.window)
            real = train_model(features, labels, horizon=HORIZON)
            controls = [train_model(features, shuffled(labels, 1000 * seed + k), horizon=HORIZON)
                        for k in range(args.shuffles)]
            shuffled_lgbm = np.array([c.metrics["rank_ic"] for c in controls])
            shuffled_ridge = np.array([c.baseline_metrics["rank_ic"] for c in controls])
            row = {
                "symbols": symbols, "seed": seed, "sessions": int(real.metrics["n_sessions"]),
                "lightgbm": real.metrics["rank_ic"], "ridge": real.baseline_metrics["rank_ic"],
                "shuffled": shuffled_lgbm.mean(), "shuffled_max": np.abs(shuffled_lgbm).max(),
                "shuffled_ridge": shuffled_ridge.mean(), "shuffled_ridge_max": np.abs(shuffled_ridge).max(),
                "ic_ir": real.metrics["ic_ir"],
            }
            rows.append(row)
            print(f"{symbols:>7} {seed:>5} {row['sessions']:>12} {row['lightgbm']:9.4f} {row['ridge']:9.4f} "
                  f"{row['shuffled']:9.4f} {row['shuffled_max']:9.4f} {row['shuffled_ridge']:10.4f} "
                  f"{row['shuffled_ridge_max']:9.4f} {row['ic_ir']:10.3f} "
                  f"{'yes' if row['lightgbm'] > PLANTED_FLOOR else 'NO':>7} {time.perf_counter() - start:8.1f}")
    table = pl.DataFrame(rows)
    print("\nmean over seeds")
    with pl.Config(tbl_cols=-1, tbl_width_chars=200):
        print(table.group_by("symbols").agg(
            pl.col("lightgbm", "ridge", "shuffled", "shuffled_ridge").mean().round(4),
            pl.col("shuffled_max").max().round(4),
            (pl.col("lightgbm") > pl.col("ridge")).sum().alias("lgbm_beats_ridge"),
            (pl.col("lightgbm") > PLANTED_FLOOR).sum().alias("above_floor"), pl.len().alias("markets"),
        ).sort("symbols"))


if __name__ == "__main__":
    main()
