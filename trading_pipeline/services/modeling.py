"""Train, register and choose the champion; score a session with the champion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import ModelRegistry, train_model
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

CHAMPION = "champion"


class NotEnoughHistory(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainingOutcome:
    version: str
    metrics: dict[str, float]
    became_champion: bool
    reason: str
    first_session: date
    last_session: date


def training_frames(warehouse: Warehouse, through: date, window: int,
                    horizon: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and labels for the `window` sessions up to `through`, from stored bars only."""
    sessions = sessions_back(through, window + MIN_HISTORY_SESSIONS)
    bars = market_store.read_bars_through(warehouse, through, sessions[0])
    if bars.is_empty() or bars["session"].n_unique() < MIN_HISTORY_SESSIONS + 60:
        have = 0 if bars.is_empty() else bars["session"].n_unique()
        raise NotEnoughHistory(
            f"training needs at least {MIN_HISTORY_SESSIONS + 60} sessions of bars up to {through}, "
            f"the warehouse has {have}: materialise market_bars for {through} first"
        )
    features = compute_features(bars).filter(pl.col("session") >= sessions[MIN_HISTORY_SESSIONS])
    # Labels of the last `horizon` sessions need bars after `through`: they stay null and
    # training drops them, so nothing from the future leaks in.
    return features, forward_return_labels(bars, horizon=horizon)


def train_and_register(warehouse: Warehouse, ledger: Ledger, registry: ModelRegistry,
                       through: date, window: int, horizon: int, why: str) -> TrainingOutcome:
    features, labels = training_frames(warehouse, through, window, horizon)
    result = train_model(features, labels, horizon=horizon)
    version = registry.register(result)
    metrics = dict(result.metrics)
    champion = registry.champion_version()
    champion_ic = _rank_ic_of(registry, champion) if champion else None
    new_ic = metrics.get("rank_ic")
    if champion is None:
        became, reason = True, f"first model ({why})"
    elif new_ic is not None and champion_ic is not None and new_ic > champion_ic:
        became, reason = True, f"rank IC {new_ic:.4f} beats champion v{champion}'s {champion_ic:.4f}"
    else:
        became, reason = False, f"rank IC {new_ic} does not beat champion v{champion}'s {champion_ic}"
    if became:
        registry.set_alias(CHAMPION, version, reason)
    ledger.record_model_event(registry.model_name, version, CHAMPION if became else "none",
                              "promoted" if became else "registered", reason, champion, metrics)
    return TrainingOutcome(version, metrics, became, reason,
                           features["session"].min(), features["session"].max())


def _rank_ic_of(registry: ModelRegistry, version: str) -> float | None:
    return registry.metrics(version).get("rank_ic")


def score_session(warehouse: Warehouse, registry: ModelRegistry, session: date) -> pl.DataFrame:
    """The champion's scores for `session`, with the version on every row."""
    features = market_store.read_table_range(warehouse, "features", session, session)
    if features.is_empty():
        raise RuntimeError(f"no features stored for {session}: materialise features for {session} first")
    model = registry.load(CHAMPION)
    return model.predict(features.select("session", "symbol", *FEATURE_COLUMNS))


def rollback_champion(registry: ModelRegistry, ledger: Ledger, reason: str,
                      flagged: set[str] = frozenset()) -> tuple[str, str] | None:
    """Move `champion` to the newest earlier version not itself flagged by severe drift;
    None when there is none (never below the first version)."""
    current = registry.champion_version()
    if current is None:
        return None
    candidate = registry.previous_version(current)
    while candidate is not None and candidate in flagged:
        candidate = registry.previous_version(candidate)
    if candidate is None:
        return None
    registry.set_alias(CHAMPION, candidate, reason)
    ledger.record_model_event(registry.model_name, candidate, CHAMPION, "rollback", reason, current)
    return current, candidate
