"""Figures for features, labels, training, the MLflow registry and Evidently drift.

Run: .venv/bin/python -m trading_pipeline_tests.benchmarks.bench_model
Prints wall-clock seconds; nothing is asserted. Everything is written to a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import polars as pl  # noqa: E402

from trading_pipeline.domain.calendar import sessions_back  # noqa: E402
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features  # noqa: E402
from trading_pipeline.domain.labels import forward_return_labels  # noqa: E402
from trading_pipeline.domain.market import SyntheticMarket  # noqa: E402
from trading_pipeline_tests.domain.conftest import make_bars  # noqa: E402

THROUGH = date(2024, 6, 28)


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"{label:<58} {time.perf_counter() - start:8.3f} s")


def main() -> None:
    print(f"features: {len(FEATURE_COLUMNS)} columns, MIN_HISTORY_SESSIONS={MIN_HISTORY_SESSIONS}")
    big = make_bars(n_symbols=500, n_sessions=2520, seed=1)
    compute_features(big.head(1000))  # first polars call pays one-off setup
    with timed("compute_features 500 symbols x 2,520 sessions"):
        compute_features(big)
    with timed("forward_return_labels 500 x 2,520"):
        forward_return_labels(big)

    sessions = sessions_back(THROUGH, 500 + MIN_HISTORY_SESSIONS)
    with timed("SyntheticMarket bars 50 symbols x 560 sessions"):
        bars = SyntheticMarket(seed=7, universe_size=50).bars(sessions)
    with timed("compute_features + labels 50 x 560"):
        features = compute_features(bars).filter(pl.col("session") >= sessions[MIN_HISTORY_SESSIONS])
        labels = forward_return_labels(bars)

    with timed("import lightgbm + scikit-learn (first train_model call)"):
        import lightgbm  # noqa: F401
        import sklearn.linear_model  # noqa: F401

        from trading_pipeline.domain.model import ModelRegistry, train_model
    with timed("train_model 50 x 500 (4 folds + final, LightGBM and Ridge)"):
        result = train_model(features, labels)
    print("  OOS lightgbm:", {k: round(v, 4) for k, v in result.metrics.items()})
    print("  OOS ridge   :", {k: round(v, 4) for k, v in result.baseline_metrics.items()})

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        with timed("import mlflow"):
            import mlflow  # noqa: F401
        registry = ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "bench_model", home / "mlartifacts")
        with timed("register #1 (creates the SQLite store)"):
            first = registry.register(result)
        with timed("register #2"):
            second = registry.register(result)
        registry.set_alias("champion", second, "benchmark")
        with timed("load('champion')"):
            model = registry.load("champion")
        last_day = features.filter(pl.col("session") == features["session"].max())
        with timed("predict one session (50 rows)"):
            model.predict(last_day)
        with timed("set_alias rollback + load by models:/ URI"):
            registry.set_alias("champion", first, "benchmark rollback")
            registry.load("models:/bench_model@champion")

        reference = result.oos_predictions.select("session", "symbol").join(
            features, on=["session", "symbol"]).drop_nulls(list(FEATURE_COLUMNS))
        reference = reference.join(model.predict(reference).select("session", "symbol", "score"),
                                   on=["session", "symbol"])
        ref_sessions = reference["session"].unique().sort()
        current = reference.filter(pl.col("session") > ref_sessions[-21])
        reference = reference.filter(pl.col("session") <= ref_sessions[-21]).tail(250 * 50)
        with timed("import evidently"):
            import evidently  # noqa: F401

            from trading_pipeline.domain.drift import evaluate_drift
        columns = [*FEATURE_COLUMNS, "score"]
        html = home / "drift.html"
        with timed(f"evaluate_drift {len(columns)} cols, {reference.height} vs {current.height} rows + HTML"):
            drift = evaluate_drift(reference, current, columns, warn_share=0.3, severe_share=0.5,
                                   html_path=html)
        print(drift.per_column.filter(pl.col("drifted")).select("column", "score"))
        print(f"  severity={drift.severity} share={drift.drifted_share:.2f} "
              f"method={drift.per_column['method'][0]!r} html={html.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
