"""Calibration of the drift report: false alarms without a regime shift, detection after one.

    .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_drift_calibration \\
        [--symbols 50] [--seed 7] [--sessions 60] [--decay-seeds 7,11,23] [--decay-sessions 250] [--decay-only]

A champion is trained (settings defaults) on the synthetic market through TRAINED_THROUGH and
scores every later session. The market shifts regime after the first `--sessions` sessions; bars
before a shift are identical to those of the unshifted market with the same seed, so the first
`--sessions` reports are the no-shift run and the next `--sessions` the shifted one. Prints each
report, the false-alarm rate, the sessions from the shift to the first severe report, the time
of one report with and without the HTML, and the distribution of the decay figure over a longer
calm stretch for several seeds. Nothing is asserted. Everything is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402

from trading_pipeline_tests.drift_scenario import (  # noqa: E402
    TRAINED_THROUGH,
    DriftScenario,
    scenario_settings,
    shift_after,
)

CANDIDATE_THRESHOLDS = (0.0, -0.02, -0.05, -0.08, -0.10, -0.15)


def print_reports(scenario: DriftScenario, sessions: list[date]) -> list:
    reports = []
    print(f"{'session':<11} {'severity':<8} {'data':<7} {'drifted':>7} {'pred':>6} "
          f"{'decay IC':>9} {'n':>3}  seconds")
    for session in sessions:
        start = time.perf_counter()
        report = scenario.report(session)
        seconds = time.perf_counter() - start
        decay = report.decay
        ic = "" if decay.rank_ic is None else f"{decay.rank_ic:9.3f}"
        print(f"{session!s:<11} {report.severity:<8} {report.drift.severity:<7} "
              f"{report.drift.drifted_share:7.0%} {report.drift.prediction_drift_score:6.2f} "
              f"{ic:>9} {decay.sessions:3d}  {seconds:5.2f}")
        reports.append(report)
    return reports


def false_alarms(reports: list) -> None:
    n = len(reports)
    severe = sum(r.severity == "severe" for r in reports)
    warn = sum(r.severity == "warn" for r in reports)
    decay_breaches = sum(r.decay.breached for r in reports)
    judged = [r.decay.rank_ic for r in reports if r.decay.judged]
    print(f"no shift, {n} sessions: severe {severe}/{n} = {severe / n:.1%}, "
          f"warn {warn}/{n} = {warn / n:.1%}, decay breaches {decay_breaches}, "
          f"max drifted share {max(r.drift.drifted_share for r in reports):.0%}")
    if judged:
        print(f"  decay IC on the {len(judged)} judged sessions: min {min(judged):.3f}, "
              f"median {np.median(judged):.3f}, max {max(judged):.3f}")


def detection(reports: list, shift: date) -> None:
    def first(predicate) -> str:
        hits = [i for i, r in enumerate(reports) if predicate(r)]
        return f"{hits[0]} sessions (on {reports[hits[0]].row['session'][0]})" if hits else "never"

    print(f"regime shift on {shift}: first severe report after {first(lambda r: r.severity == 'severe')}; "
          f"first severe data drift after {first(lambda r: r.drift.severity == 'severe')}; "
          f"first decay breach after {first(lambda r: r.decay.breached)}; "
          f"first warn or worse after {first(lambda r: r.severity != 'none')}")


def time_one_report(scenario: DriftScenario, session: date) -> None:
    for html in (False, True, False, True):
        start = time.perf_counter()
        scenario.report(session, html=html)
        print(f"one drift report {'with' if html else 'without'} HTML: "
              f"{time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    scenario.decay(session)
    print(f"the decay figure alone: {time.perf_counter() - start:.3f} s")


def decay_distribution(folder: Path, seeds: list[int], symbols: int, sessions: int) -> None:
    """The decay figure on every judged session of a long calm stretch, per seed: where a
    threshold would raise false alarms."""
    print(f"\ndecay IC without a shift, {sessions} sessions after {TRAINED_THROUGH}, {symbols} symbols")
    print(f"{'seed':>5} {'judged':>6} {'min':>7} {'p1':>7} {'p5':>7} {'median':>7} {'mean':>7} "
          + " ".join(f"{'<' + format(t, '.2f'):>7}" for t in CANDIDATE_THRESHOLDS))
    everything = []
    for seed in seeds:
        settings = scenario_settings(folder / f"decay_{seed}", universe_size=symbols, market_seed=seed)
        scenario = DriftScenario(settings, TRAINED_THROUGH, sessions)
        values = np.array([d.rank_ic for d in map(scenario.decay, scenario.sessions) if d.judged])
        everything.append(values)
        print(f"{seed:>5} {values.size:>6} {values.min():7.3f} {np.quantile(values, 0.01):7.3f} "
              f"{np.quantile(values, 0.05):7.3f} {np.median(values):7.3f} {values.mean():7.3f} "
              + " ".join(f"{(values < t).sum():>7}" for t in CANDIDATE_THRESHOLDS)
              + f"   (training OOS rank IC {scenario.training.metrics['rank_ic']:.3f})")
    pooled = np.concatenate(everything)
    print(f"{'all':>5} {pooled.size:>6} {pooled.min():7.3f} {np.quantile(pooled, 0.01):7.3f} "
          f"{np.quantile(pooled, 0.05):7.3f} {np.median(pooled):7.3f} {pooled.mean():7.3f} "
          + " ".join(f"{(pooled < t).sum():>7}" for t in CANDIDATE_THRESHOLDS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--decay-seeds", default="7,11,23")
    parser.add_argument("--decay-sessions", type=int, default=250)
    parser.add_argument("--decay-only", action="store_true", help="only the decay distribution")
    args = parser.parse_args()
    seeds = [int(s) for s in args.decay_seeds.split(",") if s]

    with tempfile.TemporaryDirectory() as folder:
        if args.decay_only:
            decay_distribution(Path(folder), seeds, args.symbols, args.decay_sessions)
            return
        shift = shift_after(args.sessions)
        settings = scenario_settings(Path(folder) / "shift", universe_size=args.symbols,
                                     market_seed=args.seed, regime_shift_date=shift)
        start = time.perf_counter()
        scenario = DriftScenario(settings, TRAINED_THROUGH, 2 * args.sessions)
        print(f"{args.symbols} symbols, seed {args.seed}: champion v{scenario.version} trained through "
              f"{TRAINED_THROUGH} (OOS rank IC {scenario.training.metrics['rank_ic']:.3f}) in "
              f"{time.perf_counter() - start:.1f} s; decay {scenario.decay_policy}")
        calm, shifted = scenario.sessions[: args.sessions], scenario.sessions[args.sessions:]
        print(f"\nno shift: {calm[0]} to {calm[-1]}")
        false_alarms(print_reports(scenario, calm))
        print(f"\nshifted from {shift}: {shifted[0]} to {shifted[-1]}")
        detection(print_reports(scenario, shifted), shift)
        print()
        time_one_report(scenario, calm[-1])
        if seeds:
            decay_distribution(Path(folder), seeds, args.symbols, args.decay_sessions)


if __name__ == "__main__":
    main()
