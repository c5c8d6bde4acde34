"""A champion trained on the synthetic market, then drift reports for the sessions after it.

Shared by the drift calibration benchmark and its CI test. The warehouse holds bars through the
last session of the scenario, the champion's scores for every session after its training (as the
`predictions` asset would have written them) and one `drift_reports` row per reported session.
Each report reads bars only up to its own session.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import next_session, sessions_back, sessions_between
from trading_pipeline.domain.decay import DecayPolicy, DecayResult
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.services import drift as drift_service
from trading_pipeline.services import modeling
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

TRAINED_THROUGH = date(2023, 12, 29)


def shift_after(sessions: int, trained_through: date = TRAINED_THROUGH) -> date:
    """The first session of a shifted regime that follows `sessions` calm sessions after training."""
    return sessions_between(next_session(trained_through), date(2100, 1, 1))[sessions]


class DriftScenario:
    """`settings` (market, model and drift settings) in a fresh home; a champion trained on
    bars through `trained_through`; its scores for the `sessions` sessions after that."""

    def __init__(self, settings: TradingSettings, trained_through: date, sessions: int):
        self.settings = settings
        self.sessions = sessions_between(next_session(trained_through), date(2100, 1, 1))[:sessions]
        self.warehouse = Warehouse(settings.resolved_warehouse_path)
        self.registry = ModelRegistry(settings.resolved_mlflow_uri, settings.model.model_name,
                                      settings.mlflow_artifact_root)
        market = SyntheticMarket(seed=settings.data.market_seed, universe_size=settings.data.universe_size,
                                 regime_shift_date=settings.data.regime_shift_date)
        bars = market.bars(sessions_between(settings.data.history_start, self.sessions[-1]))
        market_store.append_history(self.warehouse, bars)
        self.training = modeling.train_and_register(
            self.warehouse, Ledger(self.warehouse), self.registry, trained_through,
            settings.model.train_window_sessions, settings.model.label_horizon, why="drift scenario",
            options=settings.model.training_options())
        self.version = self.training.version
        lookback = sessions_back(self.sessions[0], MIN_HISTORY_SESSIONS + 1)[0]
        features = compute_features(bars.filter(pl.col("session") >= lookback)).filter(
            pl.col("session").is_in(self.sessions))
        scores = self.registry.load(modeling.CHAMPION).predict(
            features.select("session", "symbol", *FEATURE_COLUMNS))
        self.warehouse.append(drift_service.PREDICTIONS_TABLE, scores)

    @property
    def decay_policy(self) -> DecayPolicy:
        return self.settings.decay.policy()

    def report(self, session: date, html: bool = False) -> drift_service.DriftReport:
        s = self.settings
        html_path = s.reports_dir / "drift" / f"drift_{session}.html" if html else None
        return drift_service.drift_for_session(
            self.warehouse, self.registry, session, window=s.drift.window_sessions,
            warn_share=s.drift.warn_share, severe_share=s.drift.severe_share,
            column_threshold=s.drift.column_threshold, html_path=html_path,
            decay=self.decay_policy, horizon=s.model.label_horizon)

    def decay(self, session: date) -> DecayResult:
        """The decay figure alone (no Evidently): cheap enough for every session of a year."""
        return drift_service.champion_decay(self.warehouse, self.version, session,
                                            horizon=self.settings.model.label_horizon,
                                            policy=self.decay_policy)


def scenario_settings(home: Path, **overrides) -> TradingSettings:
    """The settings' defaults (50 symbols, 500-session training window, 20-session drift
    window, ...), a fresh home, and `overrides`; no `.env` is read."""
    return TradingSettings(_env_file=None, home=home, **overrides)
