"""Speed and memory of `compute_features` against a plain pandas reference, same results.

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_features [--symbols 3000] [--years 20]
        [--sets small,alpha] [--no-reference]

Bars are random walks on weekdays (the shape of stored bars, sorted by session and symbol).
The reference computes the small set's 15 features with pandas groupby-rolling, the way one
would write them by hand; the benchmark checks that both give the same values (relative 1e-9,
on a 200,000-row sample) and prints wall and CPU seconds, peak memory and the ratio of CPU
seconds. Each measurement runs in a fresh process: its peak is that process's resident peak,
which includes the bars (and making them); "bars MB" is the resident size before the timed
call. Prints a table; nothing is asserted. `measure` is the row `runner` prints (make bench).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from datetime import date, timedelta

import numpy as np
import polars as pl

SESSIONS_PER_YEAR = 252


def synthetic_bars(symbols: int, sessions: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days, day = [], date(2005, 1, 3)
    while len(days) < sessions:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    close = 50 * np.exp(np.cumsum(0.015 * rng.standard_normal((sessions, symbols)), axis=0))
    opens = close * np.exp(0.004 * rng.standard_normal(close.shape))
    spread = np.abs(0.01 * rng.standard_normal(close.shape))
    return pl.DataFrame({
        "session": np.repeat(np.array(days, dtype="datetime64[D]"), symbols),
        "symbol": [f"S{i:04d}" for i in range(symbols)] * sessions,
        "open": opens.ravel(), "high": (np.maximum(opens, close) * (1 + spread)).ravel(),
        "low": (np.minimum(opens, close) * (1 - spread)).ravel(), "close": close.ravel(),
        "volume": np.round(1e6 * np.exp(0.4 * rng.standard_normal(close.shape))).ravel(),
        "adj_close": (close * 0.98).ravel(),
    }).with_columns(pl.col("session").cast(pl.Date))


def pandas_reference(bars: pl.DataFrame):
    """The small set with pandas: groupby-shift and groupby-rolling per symbol, ranks per session."""
    frame = bars.to_pandas().sort_values(["symbol", "session"])
    by = frame.groupby("symbol", sort=False)
    adj = by["adj_close"]
    out = frame[["session", "symbol"]].copy()
    out["ret_1"] = frame["adj_close"] / adj.shift(1) - 1
    for n in (5, 20, 60):
        out[f"ret_{n}"] = frame["adj_close"] / adj.shift(n) - 1

    def rolling(series, window, how):
        grouped = series.groupby(frame["symbol"], sort=False).rolling(window)
        return getattr(grouped, how)().reset_index(level=0, drop=True)

    out["vol_20"] = rolling(out["ret_1"], 20, "std")
    out["vol_60"] = rolling(out["ret_1"], 60, "std")
    out["volume_ratio_20"] = frame["volume"] / rolling(frame["volume"], 20, "mean")
    out["log_dollar_volume_20"] = np.log1p(rolling(frame["close"] * frame["volume"], 20, "mean"))
    out["range_rel"] = (frame["high"] - frame["low"]) / frame["close"]
    out["range_rel_20"] = rolling(out["range_rel"], 20, "mean")
    out["dist_high_20"] = frame["adj_close"] / rolling(frame["adj_close"], 20, "max") - 1
    out = out.replace([np.inf, -np.inf], np.nan)
    for name in ("ret_5", "ret_20", "vol_20", "volume_ratio_20"):
        ranks = out.groupby("session")[name].rank(method="average")
        counts = out.groupby("session")[name].transform("count")
        out[f"rank_{name}"] = np.where(counts > 1, (ranks - 1) / (counts - 1), 0.5)
        out.loc[out[name].isna(), f"rank_{name}"] = np.nan
    return out.sort_values(["session", "symbol"]).reset_index(drop=True)


def _measure(kind: str, symbols: int, sessions: int, feature_set: str, queue) -> None:
    bars = synthetic_bars(symbols, sessions)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "polars":
        from trading_pipeline.domain.features import compute_features

        result = compute_features(bars, feature_set)
    else:
        result = pandas_reference(bars)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if kind == "pandas":
        result = pl.from_pandas(result).with_columns(pl.col("session").cast(pl.Date))
    # a fingerprint of the values for the equality check (the frames may be too big to ship)
    sample = result.gather(np.random.default_rng(1).integers(0, result.height, 200_000)).sort("session", "symbol")
    queue.put({"kind": kind, "set": feature_set, "rows": bars.height, "columns": result.width - 2,
               "wall_s": wall, "cpu_s": cpu, "peak_mb": peak, "bars_mb": before, "sample": sample})


def measure_in_fresh_process(kind: str, symbols: int, sessions: int, feature_set: str = "small") -> dict:
    # spawn, not fork: a fork of a process whose polars thread pool is running can hang (it did
    # under pytest), and a fresh interpreter's peak is its own
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(kind, symbols, sessions, feature_set, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def same_values(polars_sample: pl.DataFrame, pandas_sample: pl.DataFrame) -> bool:
    joined = polars_sample.join(pandas_sample, on=["session", "symbol"], suffix="_pd")
    for column in polars_sample.columns[2:]:
        a, b = joined[column].to_numpy().astype(float), joined[f"{column}_pd"].to_numpy().astype(float)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return False
        both = ~np.isnan(a)
        if not np.allclose(a[both], b[both], rtol=1e-9, atol=1e-12):
            return False
    return True


def measure(symbols: int, years: float, feature_set: str = "small", with_reference: bool = True) -> dict:
    """The runner's row: ours and the pandas reference, each in a fresh process, one after the other."""
    sessions = int(years * SESSIONS_PER_YEAR)
    ours = measure_in_fresh_process("polars", symbols, sessions, feature_set)
    row = {"seconds": ours["wall_s"], "cpu_seconds": ours["cpu_s"], "peak_mb": ours["peak_mb"],
           "detail": f"{ours['rows']:,} rows, {ours['columns']} features ({feature_set}), bars {ours['bars_mb']:.0f} MB"}
    if with_reference and feature_set == "small":
        reference = measure_in_fresh_process("pandas", symbols, sessions)
        row.update(reference="pandas groupby-rolling", reference_seconds=reference["wall_s"],
                   reference_cpu_seconds=reference["cpu_s"], reference_peak_mb=reference["peak_mb"],
                   check="equal" if same_values(ours["sample"], reference["sample"]) else "DIFFERENT")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3000)
    parser.add_argument("--years", type=float, default=20)
    parser.add_argument("--sets", default="small")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    sessions = int(args.years * SESSIONS_PER_YEAR)
    rows = []
    reference = None if args.no_reference else measure_in_fresh_process("pandas", args.symbols, sessions)
    for feature_set in args.sets.split(","):
        rows.append(measure_in_fresh_process("polars", args.symbols, sessions, feature_set))
    print(f"features, {args.symbols} symbols x {sessions} sessions = {args.symbols * sessions:,} rows "
          "(peak: the process's resident peak, bars included)")
    print(f"{'engine':<8} {'set':<6} {'columns':>7} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
          f"{'bars MB':>8} {'x pandas (CPU)':>15} {'same values':>12}")
    for row in ([reference] if reference else []) + rows:
        ratio = equal = ""
        if reference and row is not reference and row["set"] == "small":
            ratio = f"{reference['cpu_s'] / row['cpu_s']:.1f}"
            equal = "yes" if same_values(row["sample"], reference["sample"]) else "NO"
        print(f"{row['kind']:<8} {row['set']:<6} {row['columns']:>7} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} "
              f"{row['peak_mb']:8.0f} {row['bars_mb']:8.0f} {ratio:>15} {equal:>12}")


if __name__ == "__main__":
    main()
