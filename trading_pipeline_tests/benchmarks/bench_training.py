"""The whole `train_model` (walk-forward folds, shuffled-label controls, Ridge baseline, final
fit) on random-walk bars: wall and CPU seconds, peak memory, rows, fits and where the time goes.

    python -m trading_pipeline_tests.benchmarks.bench_training [--size smoke medium full]
                                  [--threads 1 2] [--workers 1 2] [--code DIR ...] [--repeats 1]

Sizes: smoke 50 symbols x 1 year, medium 500 x 5, medium_10y 500 x 10, large 1,000 x 10,
window 3,000 x 2, full 3,000 x 20 (about 15 M training rows). `--workers`: the fits run at once
(`train_model(workers=...)`); `--code`: also measure another copy of the project (a checkout
of an earlier commit), alternating with this one, for a before/after in one run.
Inputs are made as the loop makes them (`services.modeling.training_frames`): the small feature
set from `compute_features`, rank labels from `forward_return_labels`, the bars dropped before
training. Each measurement runs in a fresh process, thread and worker counts and code copies
alternating (a change in the machine's load touches all); a watchdog stops a child when the
machine runs short of memory.
Time split (exclusive seconds; nested calls count once; with several workers, seconds summed
over the workers, and "other" is not told apart): feature matrix (polars -> numpy), LightGBM bins
(its datasets), LightGBM fits (the shuffled-label controls' included; code from before the bins
were shared tells the controls apart), Ridge (fit of the baseline pipeline), the signal gate's
random scorers, other (joins, fold rows, predictions, metrics). Peak MB is the process's
resident peak, inputs included; "inputs MB" is the resident size before `train_model`; the
step's peak is the resident peak seen while each part ran. The digest of the out-of-sample predictions and the
final model's trees shows two runs produced the same outputs. Prints figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import polars as pl

SESSIONS_PER_YEAR = 252
# "large" (2.5 M rows) compares memory before and after a change where "full" would not fit;
# "window": the daily loop's trained_model step at 3,000 symbols (default window, 500 sessions)
SIZES = {"smoke": (50, 1), "medium": (500, 5), "medium_10y": (500, 10), "large": (1000, 10),
         "window": (3000, 2), "full": (3000, 20)}
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
    training module's own functions (those that exist: the module may change). Each thread keeps
    its own stack of parts, so fits running at once are each counted in full."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.peak_mb: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stacks: dict[int, list[list]] = defaultdict(list)  # thread -> [part, started, nested]
        self._lock = threading.Lock()
        self._running = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self._running:
            parts = [stack[-1][0] for stack in list(self.stacks.values()) if stack] or ["other"]
            resident = _rss_mb()
            for part in parts:
                self.peak_mb[part] = max(self.peak_mb[part], resident)
            time.sleep(0.05)

    def wrap(self, part_of, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            part = part_of(*args, **kwargs)
            stack = self.stacks[threading.get_ident()]
            stack.append([part, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, started, nested = stack.pop()
                spent = time.perf_counter() - started
                with self._lock:
                    self.calls[part] += 1
                    self.seconds[part] += spent - nested
                if stack:
                    stack[-1][2] += spent
        return timed

    def install(self, training) -> list[tuple[str, object]]:
        def lightgbm_part(*args, **kwargs):  # code from before the binned rows were kept
            return "control fits" if kwargs.get("label") == "shuffled_label" else "lightgbm fits"

        wrapped = {"feature_matrix": lambda *a, **k: "feature matrix", "_fit_lgbm": lightgbm_part,
                   "_member_datasets": lambda *a, **k: "lightgbm bins",
                   "_train_members": lambda *a, **k: "lightgbm fits",
                   "_fit_pair": lambda *a, **k: "ridge",
                   "random_scorer_daily_ics": lambda *a, **k: "random scorers"}
        if hasattr(training, "_train_members"):  # _fit_lgbm calls it: one fit, counted once
            del wrapped["_fit_lgbm"]
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
    digest.update(result.model.model_to_string().split("end of trees")[0].encode())
    return digest.hexdigest()[:12]


def measure_here(symbols: int, years: float, threads: int | None = None, workers: int | None = None,
                 params: dict | None = None) -> dict:
    """`train_model` in this process; its peak is this process's resident peak. `workers` None:
    the training's own default (passed only when given and known, so an older copy of the code
    runs too)."""
    import gc
    import inspect

    from trading_pipeline.domain.model import training

    if "workers" not in inspect.signature(training.train_model).parameters:  # code from before workers
        if workers not in (None, 1):
            raise ValueError("this copy of the code fits one model at a time: only --workers 1")
        workers = None

    features, labels = training_inputs(symbols, years)
    gc.collect()
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    params = {**(params or {}), **({} if threads is None else {"num_threads": threads})}
    inputs_mb = _rss_mb()
    split = _Split()
    originals = split.install(training)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = training.train_model(features, labels, horizon=5, feature_columns=columns, params=params,
                                      **({} if workers is None else {"workers": workers}))
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        split.stop(training, originals)
    load_after = os.getloadavg()[0]
    parts = ("feature matrix", "lightgbm bins", "lightgbm fits", "control fits", "ridge", "random scorers",
             "other")
    if workers is None or workers == 1:
        split.seconds["other"] = wall - sum(split.seconds.values())
    fits = split.calls["lightgbm fits"] + split.calls["control fits"]
    threads_used = result.params.get("num_threads")
    return {
        "seconds": wall, "cpu_seconds": cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "inputs_mb": inputs_mb, "rows": result.n_rows, "folds": len(result.folds), "fits": fits,
        "ridge_fits": split.calls["ridge"], "threads": threads_used, "workers": workers or 1,
        "load_average": load, "load_average_after": load_after,
        "split_seconds": {p: round(split.seconds[p], 2) for p in parts if p in split.seconds},
        "split_peak_mb": {p: round(split.peak_mb[p]) for p in parts if p in split.peak_mb},
        "digest": _digest(result),
        "check": f"digest {_digest(result)}",
        "detail": f"{result.n_rows:,} rows, {len(result.folds)} folds, {fits} LightGBM fits on "
                  f"{threads_used} thread(s), {workers or 1} worker(s), split "
                  + ", ".join(f"{p} {split.seconds[p]:.1f} s" for p in parts if p in split.seconds)
                  + f"; inputs {inputs_mb:.0f} MB; load {load:.1f}",
    }


def _available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def measure_in_fresh_process(symbols: int, years: float, threads: int | None = None,
                             workers: int | None = None, params: dict | None = None,
                             code: Path | None = None) -> dict:
    """`measure_here` in a new interpreter (nothing imported or allocated beforehand) that
    imports the project from `code` (default: this copy; another copy must hold this file)."""
    root = Path(code) if code else Path(__file__).resolve().parents[2]
    request = json.dumps({"symbols": symbols, "years": years, "threads": threads, "workers": workers,
                          "params": params})
    child = subprocess.Popen([sys.executable, "-m", __spec__.name if __spec__ else
                              "trading_pipeline_tests.benchmarks.bench_training", "--child", request],
                             cwd=root, env={**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while child.poll() is None:
        if _available_mb() < LOW_MEMORY_MB:
            child.kill()
            child.wait()
            return {"error": f"stopped: the machine had less than {LOW_MEMORY_MB} MB available"}
        time.sleep(0.5)
    out, err = child.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        return {"error": f"exit {child.returncode}: {(err.strip().splitlines() or ['no output'])[-1]}"}
    return json.loads(lines[-1])


def measure(symbols: int, years: float, threads: int | None = None) -> dict:
    """The runner's row (the runner already gives each row a fresh process), with the loop's
    own number of workers."""
    from trading_pipeline.domain.model.training import TrainingOptions

    return measure_here(symbols, years, threads, workers=TrainingOptions().workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", choices=list(SIZES), default=["smoke", "medium"])
    parser.add_argument("--threads", type=int, nargs="+", default=[None],
                        help="LightGBM threads, alternating (default: the training's own)")
    parser.add_argument("--workers", type=int, nargs="+", default=[None],
                        help="fits at once, alternating (default: the training's own)")
    parser.add_argument("--params", type=json.loads, nargs="+", default=[None],
                        help="LightGBM parameter overrides as JSON objects, alternating")
    parser.add_argument("--code", type=Path, nargs="+", default=[None],
                        help="copies of the project holding this benchmark, alternating (default: this one)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_here(**json.loads(args.child))), flush=True)
        return
    print(f"{'size':<10} {'code':<12} {'threads':>7} {'workers':>7} {'rows':>11} {'fits':>4} {'wall s':>8} "
          f"{'CPU s':>8} {'peak MB':>8} {'inputs MB':>9} {'load':>9}  split (s) / peak MB while in it  digest",
          flush=True)
    for size in args.size:
        symbols, years = SIZES[size]
        for _ in range(args.repeats):
            for code, threads, workers, params in itertools.product(args.code, args.threads, args.workers,
                                                                    args.params):
                row = measure_in_fresh_process(symbols, years, threads, workers, params, code)
                name = (code.name if code else "this")[:12]
                if params:
                    print(f"{'':<10} params {json.dumps(params)}", flush=True)
                if "error" in row:
                    print(f"{size:<10} {name:<12} {threads!s:>7} {workers!s:>7} {row['error']}", flush=True)
                    continue
                split = ", ".join(f"{p} {s:.1f}/{row['split_peak_mb'].get(p, 0):.0f}"
                                  for p, s in row["split_seconds"].items())
                print(f"{size:<10} {name:<12} {row['threads']!s:>7} {row['workers']!s:>7} {row['rows']:>11,} "
                      f"{row['fits']:>4} {row['seconds']:8.1f} {row['cpu_seconds']:8.1f} {row['peak_mb']:8.0f} "
                      f"{row['inputs_mb']:9.0f} {row['load_average']:4.1f}-{row['load_average_after']:<4.1f}  "
                      f"{split}  {row['digest']}", flush=True)


if __name__ == "__main__":
    main()
