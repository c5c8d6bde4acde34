"""LightGBM with 1 and 2 threads on the training's own parameters, side by side (alternating,
so a change in the machine's load touches both): is `num_threads: 1` still the right default?

    python -m trading_pipeline_tests.benchmarks.bench_training_threads [--rows 250000 2500000] [--repeats 3]

Rows are 15 feature-like columns (a few informative) and a noisy label, the shape of the
training window (500 symbols x 500 sessions = 250,000 rows; 3,000 x 5,000 = 15 M). Both thread
counts must grow the same trees (`deterministic`); the check compares their predictions.
"""

from __future__ import annotations

import argparse
import os
import time

import lightgbm as lgb
import numpy as np

from trading_pipeline.domain.model.training import DEFAULT_LGBM_PARAMS


def _data(rows: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.standard_t(5, size=(rows, 15)).astype(np.float64)
    label = 0.02 * features[:, 0] - 0.01 * features[:, 3] + rng.normal(0, 1, rows)
    return features, label


def measure(rows: int, repeats: int = 3) -> dict:
    features, label = _data(rows)
    load_before = os.getloadavg()[0]
    cpu_seconds = {1: [], 2: []}
    wall_seconds = {1: [], 2: []}
    predictions = {}
    for _ in range(repeats):
        for threads in (1, 2):
            model = lgb.LGBMRegressor(**{**DEFAULT_LGBM_PARAMS, "num_threads": threads, "random_state": 7})
            wall, cpu = time.perf_counter(), time.process_time()
            model.fit(features, label)
            wall_seconds[threads].append(time.perf_counter() - wall)
            cpu_seconds[threads].append(time.process_time() - cpu)
            predictions[threads] = model.predict(features[:1000])
    one, two = min(wall_seconds[1]), min(wall_seconds[2])
    return {"seconds": two, "cpu_seconds": min(cpu_seconds[2]), "reference": "1 thread", "reference_seconds": one,
            "check": "same trees" if np.array_equal(predictions[1], predictions[2]) else "different predictions",
            "detail": f"{rows} rows, best of {repeats}: 1 thread {one:.2f} s ({min(cpu_seconds[1]):.2f} s CPU), "
                      f"2 threads {two:.2f} s ({min(cpu_seconds[2]):.2f} s CPU; more CPU than 1 thread is "
                      f"OpenMP spinning) (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
                      f"on {os.cpu_count()} CPUs)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for rows in args.rows:
        row = measure(rows, args.repeats)
        print(f"{row['detail']}; speed-up of 2 threads {row['reference_seconds'] / row['seconds']:.2f}x ({row['check']})")


if __name__ == "__main__":
    main()
