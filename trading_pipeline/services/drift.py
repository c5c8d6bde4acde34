"""Drift of recent features and predictions against the champion's training reference."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.drift import DriftResult, evaluate_drift
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

REFERENCE_SESSIONS = 250
DRIFT_TABLE = "drift_reports"
# Cross-sectional ranks are uniform every session by construction: they cannot drift and
# would only dilute the drifted share.
DRIFT_COLUMNS = (*(c for c in FEATURE_COLUMNS if not c.startswith("rank_")), "score")
# Normalised Wasserstein distance: how far a column's distribution moved, in reference
# standard deviations. Calibrated on the synthetic market (50 symbols, 20-session window,
# 2024): without a regime shift the per-column median is 0.09-0.50 (max 1.35); after the
# shift 1.1-3.6. Evidently's default of 0.1 flagged 50-75 % of columns on quiet days.
DRIFT_METHOD = "wasserstein"


def _scored_features(warehouse: Warehouse, model, first: date, last: date) -> pl.DataFrame:
    lookback = sessions_back(first, MIN_HISTORY_SESSIONS + 1)[0]
    bars = market_store.read_bars_through(warehouse, last, lookback)
    features = compute_features(bars).filter(pl.col("session").is_between(first, last)).drop_nulls(FEATURE_COLUMNS)
    scores = model.predict(features.select("session", "symbol", *FEATURE_COLUMNS))
    return features.join(scores.select("session", "symbol", "score"), on=["session", "symbol"])


def drift_for_session(warehouse: Warehouse, registry: ModelRegistry, session: date, *,
                      window: int, warn_share: float, severe_share: float,
                      column_threshold: float, html_path: Path) -> tuple[str, DriftResult]:
    model = registry.load("champion")
    _, trained_through = registry.training_window(model.version)
    reference_sessions = sessions_back(trained_through, REFERENCE_SESSIONS)
    reference = _scored_features(warehouse, model, reference_sessions[0], trained_through)
    recent = sessions_back(session, window)
    current = _scored_features(warehouse, model, recent[0], session)
    result = evaluate_drift(reference, current, DRIFT_COLUMNS, warn_share=warn_share,
                            severe_share=severe_share, html_path=html_path,
                            method=DRIFT_METHOD, threshold=column_threshold)
    row = pl.DataFrame({
        "session": [session], "model_version": [model.version], "severity": [result.severity],
        "drifted_share": [result.drifted_share], "drifted_count": [result.drifted_count],
        "html_path": [str(html_path)],
    })
    warehouse.replace_partition(DRIFT_TABLE, session, row)
    return model.version, result
