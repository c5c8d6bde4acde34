"""Speed of the drift report at size.

    python -m trading_pipeline_tests.benchmarks.bench_drift [--symbols 50 500]

`measure_statistics`: the per-column statistics on frames shaped as the daily report's (250
reference sessions and 20 recent sessions of every symbol, the report's 13 columns), computed on
the frames against Evidently computing them (the reference): equal method, threshold and
decision per column, scores to 1e-12. `measure_report`: the whole `drift_report` step (features
and scores of both windows, the statistics, the decay, the row, the HTML a calm day gets) for a
champion trained on the synthetic market; Evidently's HTML, which a drift day adds, is timed
apart. `runner` prints these; `bench_drift_calibration` is about false alarms, not speed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from trading_pipeline.domain import drift  # noqa: E402
from trading_pipeline.services.drift import DRIFT_COLUMNS, DRIFT_METHOD, REFERENCE_SESSIONS  # noqa: E402

RECENT_SESSIONS = 20
THRESHOLD = 1.0  # the settings' default drift_column_threshold


def report_shaped_frames(symbols: int, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fat-tailed columns, the recent window slightly moved and wider on a few of them."""
    rng = np.random.default_rng(seed)
    columns = list(DRIFT_COLUMNS)

    def frame(rows: int, moved: bool) -> pl.DataFrame:
        data = {}
        for i, column in enumerate(columns):
            values = rng.standard_t(4, size=rows) * (1 + 0.1 * i)
            if moved and i % 4 == 0:
                values = values * 1.5 + 2.0
            data[column] = values
        return pl.DataFrame(data)

    return frame(REFERENCE_SESSIONS * symbols, False), frame(RECENT_SESSIONS * symbols, True)


def measure_statistics(symbols: int) -> dict:
    reference, current = report_shaped_frames(symbols)
    columns = list(DRIFT_COLUMNS)
    import evidently.presets  # noqa: F401  both sides' imports are paid before the clocks start
    import scipy.stats  # noqa: F401
    start, cpu = time.perf_counter(), time.process_time()
    ours = drift.evaluate_drift(reference, current, columns, warn_share=0.3, severe_share=0.5,
                                method=DRIFT_METHOD, threshold=THRESHOLD)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    ref, cur = drift._checked_frames(reference, current, columns)
    snapshot = drift._evidently_snapshot(ref, cur, columns, 0.5, DRIFT_METHOD, THRESHOLD)
    theirs = drift._read_snapshot(snapshot.dict(), columns)[0]
    reference_seconds = time.perf_counter() - start
    equal = (ours.per_column.drop("score").equals(theirs.drop("score"))
             and np.allclose(ours.per_column["score"].to_numpy(), theirs["score"].to_numpy(), rtol=1e-12, atol=0))
    return {"seconds": seconds, "cpu_seconds": cpu, "reference": "Evidently", "reference_seconds": reference_seconds,
            "check": "equal" if equal else "DIFFERENT",
            "detail": f"{reference.height} reference x {current.height} recent rows, {len(columns)} columns, "
                      f"{ours.drifted_count} drifted"}


def measure_report(symbols: int) -> dict:
    from trading_pipeline.services import drift as drift_service
    from trading_pipeline_tests.drift_scenario import TRAINED_THROUGH, DriftScenario, scenario_settings

    with tempfile.TemporaryDirectory() as folder:
        settings = scenario_settings(Path(folder) / "home", universe_size=symbols)
        scenario = DriftScenario(settings, TRAINED_THROUGH, 5)
        session = scenario.sessions[-1]
        scenario.report(scenario.sessions[-2], html=True)  # first report pays one-off imports
        start, cpu = time.perf_counter(), time.process_time()
        report = scenario.report(session, html=True)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        model = scenario.registry.load(report.model_version)
        _, trained_through = scenario.registry.training_window(model.version)
        reference = drift_service._scored_features(
            scenario.warehouse, model,
            drift_service.sessions_back(trained_through, REFERENCE_SESSIONS)[0], trained_through)
        recent = drift_service.sessions_back(session, settings.drift.window_sessions)
        current = drift_service._scored_features(scenario.warehouse, model, recent[0], session)
        start = time.perf_counter()
        drift.write_evidently_html(reference, current, DRIFT_COLUMNS, Path(folder) / "drift_day.html",
                                   severe_share=settings.drift.severe_share, method=DRIFT_METHOD,
                                   threshold=settings.drift.column_threshold)
        evidently_html = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": cpu,
            "check": f"{report.drift.severity} data drift, row written",
            "detail": f"{report.drift.reference_rows} reference x {report.drift.current_rows} recent rows; "
                      f"a drift day adds Evidently's HTML: {evidently_html:.1f} s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--report", action="store_true", help="also the whole report (trains a champion)")
    args = parser.parse_args()
    for symbols in args.symbols:
        row = measure_statistics(symbols)
        print(f"statistics, {symbols} symbols: {row['seconds']:.3f} s (Evidently {row['reference_seconds']:.2f} s, "
              f"{row['check']}; {row['detail']})")
        if args.report:
            row = measure_report(symbols)
            print(f"report, {symbols} symbols: {row['seconds']:.2f} s, CPU {row['cpu_seconds']:.2f} s "
                  f"({row['check']}; {row['detail']})")


if __name__ == "__main__":
    main()
