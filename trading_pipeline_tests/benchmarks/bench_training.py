"""The whole `train_model` (walk-forward folds, shuffled-label controls, Ridge baseline, final
fit) on random-walk bars: wall and CPU seconds, peak memory, rows, fits and where the time goes.

    python -m trading_pipeline_tests.benchmarks.bench_training [--size smoke medium full]
                                                              [--threads 1 2] [--repeats 1]

Sizes: smoke 50 symbols x 1 year, medium 500 x 5, full 3,000 x 20 (about 15 M training rows).
Inputs are made as the loop makes them (`services.modeling.training_frames`): the small feature
set from `compute_features`, rank labels from `forward_return_labels`, the bars dropped before
training. Each measurement runs in a fresh process, thread counts alternating (a change in the
machine's load touches both); a watchdog stops a child when the machine runs short of memory.
Time split (exclusive seconds; nested calls count once): feature matrix (polars -> numpy),
LightGBM fits, control fits (shuffled labels), Ridge (fit of the baseline pipeline), other
(joins, fold rows, predictions, metrics). Peak MB is the process's resident peak, inputs
included; "inputs MB" is the resident size before `train_model`; the step's peak is the
resident peak seen while each part ran. The digest of the out-of-sample predictions and the
final model's trees shows two runs produced the same outputs. Prints figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import multiprocessing
import os
import resource
import threading
import time
from collections import defaultdict

import polars as pl

SESSIONS_PER_YEAR = 252
# "large" (2.5 M rows) compares memory before and after a change where "full" would not fit;
# "window": the daily loop's trained_model step at 3,000 symbols (default window, 500 sessions)
SIZES = {"smoke": (50, 1), "medium": (500, 5), "large": (1000, 10), "window": (3000, 2), "full": (3000, 20)}
LOW_MEMORY_MB = 700  # the watchdog stops a child when the machine has less than this available


def training_inputs(symbols: int, years: float, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and labels the way the loop's training step builds them from stored bars."""
    from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
    from trading_pipeline.domain.labels import forward_return_labels
    from trading_pipeline_tests.benchmarks.bench_features import synthetic_bars

    bars = synthetic_bars(symbols, int(years * SESSIONS_PER_YEAR) + MIN_HISTORY_SESSIONS, seed)
    first = bars["session"].unique().sort()[MIN_HISTORY_SESSIONS]
    features = compute_features(bars, "small").filter(pl.col("session") >= first)
    labels = forward_return_labels(bars, horizon=5)
    return features, labels


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Split:
    """Exclusive wall seconds and the resident peak per part of `train_model`, by wrapping the
    training module's own functions (those that exist: the module may change)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.peak_mb: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[list] = []  # [part, started, time spent in nested parts]
        self._running = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self._running:
            part = self.stack[-1][0] if self.stack else "other"
            self.peak_mb[part] = max(self.peak_mb[part], _rss_mb())
            time.sleep(0.05)

    def wrap(self, part_of, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            part = part_of(*args, **kwargs)
            self.calls[part] += 1
            self.stack.append([part, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, started, nested = self.stack.pop()
                spent = time.perf_counter() - started
                self.seconds[part] += spent - nested
                if self.stack:
                    self.stack[-1][2] += spent
        return timed

    def install(self, training) -> list[tuple[str, object]]:
        def lightgbm_part(*args, **kwargs):
            return "control fits" if kwargs.get("label") == "shuffled_label" else "lightgbm fits"

        wrapped = {"feature_matrix": lambda *a, **k: "feature matrix", "_fit_lgbm": lightgbm_part,
                   "_fit_pair": lambda *a, **k: "ridge"}
        originals = [(name, getattr(training, name)) for name in wrapped if hasattr(training, name)]
        for name, function in originals:
            setattr(training, name, self.wrap(wrapped[name], function))
        self._sampler.start()
        return originals

    def stop(self, training, originals) -> None:
        self._running = False
        for name, function in originals:
            setattr(training, name, function)


def _digest(result) -> str:
    oos = result.oos_predictions
    digest = hashlib.sha256()
    for column in sorted(c for c in oos.columns if c.endswith("prediction") or c.startswith("control")):
        digest.update(oos[column].to_numpy().tobytes())
    # the trees only: the parameters section names num_threads, which must not change the trees
    digest.update(result.model.booster_.model_to_string().split("end of trees")[0].encode())
    return digest.hexdigest()[:12]


def measure_here(symbols: int, years: float, threads: int | None = None) -> dict:
    """`train_model` in this process; its peak is this process's resident peak."""
    import gc

    from trading_pipeline.domain.model import training

    features, labels = training_inputs(symbols, years)
    gc.collect()
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    params = {} if threads is None else {"num_threads": threads}
    inputs_mb = _rss_mb()
    split = _Split()
    originals = split.install(training)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = training.train_model(features, labels, horizon=5, feature_columns=columns, params=params)
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        split.stop(training, originals)
    split.seconds["other"] = wall - sum(split.seconds.values())
    fits = split.calls["lightgbm fits"] + split.calls["control fits"]
    threads_used = result.params.get("num_threads")
    parts = ("feature matrix", "lightgbm fits", "control fits", "ridge", "other")
    return {
        "seconds": wall, "cpu_seconds": cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "inputs_mb": inputs_mb, "rows": result.n_rows, "folds": len(result.folds), "fits": fits,
        "ridge_fits": split.calls["ridge"], "threads": threads_used, "load_average": load,
        "split_seconds": {p: round(split.seconds[p], 2) for p in parts},
        "split_peak_mb": {p: round(split.peak_mb[p]) for p in parts if p in split.peak_mb},
        "digest": _digest(result),
        "check": f"digest {_digest(result)}",
        "detail": f"{result.n_rows:,} rows, {len(result.folds)} folds, {fits} LightGBM fits on "
                  f"{threads_used} thread(s), split " + ", ".join(f"{p} {split.seconds[p]:.1f} s" for p in parts)
                  + f"; inputs {inputs_mb:.0f} MB; load {load:.1f}",
    }


def _child(symbols: int, years: float, threads: int | None, queue) -> None:
    queue.put(measure_here(symbols, years, threads))


def _available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def measure_in_fresh_process(symbols: int, years: float, threads: int | None = None) -> dict:
    context = multiprocessing.get_context("spawn")  # nothing imported or allocated beforehand
    queue = context.Queue()
    child = context.Process(target=_child, args=(symbols, years, threads, queue))
    child.start()
    while True:
        try:
            return queue.get(timeout=0.5)
        except Exception:  # queue.Empty: still running
            if not child.is_alive():
                return {"error": f"exit {child.exitcode}"}
            if _available_mb() < LOW_MEMORY_MB:
                child.kill()
                child.join()
                return {"error": f"stopped: the machine had less than {LOW_MEMORY_MB} MB available"}
        finally:
            if not child.is_alive():
                child.join()


def measure(symbols: int, years: float, threads: int | None = None) -> dict:
    """The runner's row (the runner already gives each row a fresh process)."""
    return measure_here(symbols, years, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", choices=list(SIZES), default=["smoke", "medium"])
    parser.add_argument("--threads", type=int, nargs="+", default=[None],
                        help="LightGBM threads, alternating (default: the training's own)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{'size':<8} {'threads':>7} {'rows':>11} {'fits':>4} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
          f"{'inputs MB':>9} {'load':>5}  split (s) / peak MB while in it  digest", flush=True)
    for size in args.size:
        symbols, years = SIZES[size]
        for _ in range(args.repeats):
            for threads in args.threads:
                row = measure_in_fresh_process(symbols, years, threads)
                if "error" in row:
                    print(f"{size:<8} {threads!s:>7} {row['error']}", flush=True)
                    continue
                split = ", ".join(f"{p} {s:.1f}/{row['split_peak_mb'].get(p, 0):.0f}"
                                  for p, s in row["split_seconds"].items())
                print(f"{size:<8} {row['threads']!s:>7} {row['rows']:>11,} {row['fits']:>4} {row['seconds']:8.1f} "
                      f"{row['cpu_seconds']:8.1f} {row['peak_mb']:8.0f} {row['inputs_mb']:9.0f} "
                      f"{row['load_average']:5.1f}  {split}  {row['digest']}", flush=True)


if __name__ == "__main__":
    main()
