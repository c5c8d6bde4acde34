"""Train, register and choose the champion; score a session with the champion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.backtest import BacktestConfig
from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.features import FEATURE_COLUMNS, MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import (
    ModelRegistry,
    SelectionRules,
    compare_on_recent_window,
    train_model,
)
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

CHAMPION = "champion"
CHALLENGER = "challenger"
OOS_TABLE = "model_oos_predictions"  # each version's walk-forward scores, for fair comparisons


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
                       through: date, window: int, horizon: int, why: str,
                       rules: SelectionRules = SelectionRules(), backtest=None) -> TrainingOutcome:
    """Train on the `window` sessions to `through`, register the version as `challenger`,
    backtest its out-of-sample scores (stored with the version: the monitor's expectation), and
    move `champion` to it only if there is none or it wins on the same recent sessions.
    `backtest`: the strategy as the daily loop runs it (a `StrategyResource` or a
    `BacktestConfig`); None backtests the default strategy."""
    features, labels = training_frames(warehouse, through, window, horizon)
    result = train_model(features, labels, horizon=horizon)
    version = registry.register(result)
    challenger_scores = result.oos_predictions.select(
        "session", "symbol", pl.col("prediction").alias("score"), "forward_return")
    warehouse.replace_where(OOS_TABLE, {"model_version": version},
                            challenger_scores.with_columns(pl.lit(version).alias("model_version")))
    metrics = dict(result.metrics)
    backtest_note = _backtest(warehouse, registry, version, challenger_scores, backtest)
    registry.set_alias(CHALLENGER, version, f"newly trained ({why})")
    ledger.record_model_event(registry.model_name, version, CHALLENGER, "registered",
                              f"newly trained ({why}); {backtest_note}", None, metrics)

    champion = registry.champion_version()
    if champion is None:
        became, reason, comparison = True, f"first model ({why})", {}
    else:
        verdict = compare_on_recent_window(
            challenger_scores, champion_oos_scores(warehouse, registry, champion, features, labels, horizon),
            rules, challenger_name=f"v{version}", champion_name=f"v{champion}")
        became, reason, comparison = verdict.promote, verdict.reason, verdict.metrics()
    if became:
        registry.set_alias(CHAMPION, version, reason)
    ledger.record_model_event(registry.model_name, version, CHAMPION if became else CHALLENGER,
                              "promoted" if became else "kept_challenger", reason, champion,
                              {**metrics, **comparison})
    return TrainingOutcome(version, metrics, became, reason,
                           features["session"].min(), features["session"].max())


def _backtest(warehouse: Warehouse, registry: ModelRegistry, version: str, scores: pl.DataFrame,
              strategy) -> str:
    """Backtest the version's out-of-sample scores; a window the backtest cannot trade (too
    little history for the VaR lookback) is noted, not fatal: the model is still usable, and the
    promotion gates ask for a review when no backtest is on record."""
    from trading_pipeline.services.backtest import BacktestError, backtest_version

    execution = strategy.execution() if hasattr(strategy, "execution") else None
    try:
        result = backtest_version(warehouse, registry, version, scores.select("session", "symbol", "score"),
                                  strategy or BacktestConfig(), execution=execution)
    except BacktestError as error:
        return f"no backtest: {error}"
    return (f"backtest {result.first_session}..{result.last_session}: Sharpe "
            f"{result.summary['sharpe']:.2f}, max drawdown {result.summary['max_drawdown']:.1%}")


def champion_oos_scores(warehouse: Warehouse, registry: ModelRegistry, champion: str,
                        features: pl.DataFrame, labels: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """The champion's out-of-sample scores: its own walk-forward predictions inside its training
    window, and the champion itself on sessions whose labels it never saw (after its last
    training session plus `horizon`; the sessions in between share returns with its labels)."""
    stored = (warehouse.query(f"select session, symbol, score, forward_return from {OOS_TABLE} "
                              "where model_version = ?", [champion])
              if warehouse.table_exists(OOS_TABLE) else pl.DataFrame())
    _, trained_through = registry.training_window(champion)
    later = features["session"].filter(features["session"] > trained_through).unique().sort()
    unseen = features.filter(pl.col("session").is_in(later[horizon:].implode()))
    if unseen.is_empty():
        return stored
    live = (registry.load(champion).predict(unseen.select("session", "symbol", *FEATURE_COLUMNS))
            .join(labels.select("session", "symbol", "forward_return"), on=["session", "symbol"])
            .drop_nulls("forward_return").select("session", "symbol", "score", "forward_return"))
    return pl.concat([stored, live], how="vertical_relaxed") if stored.height else live


def score_session(warehouse: Warehouse, registry: ModelRegistry, session: date) -> pl.DataFrame:
    """The champion's scores for `session`, with the version on every row."""
    features = market_store.read_table_range(warehouse, "features", session, session)
    if features.is_empty():
        raise RuntimeError(f"no features stored for {session}: materialise features for {session} first")
    model = registry.load(CHAMPION)
    return model.predict(features.select("session", "symbol", *FEATURE_COLUMNS))


def version_used(warehouse: Warehouse, session: date) -> str | None:
    """The model version whose scores the `predictions` asset stored for `session`, if any."""
    if not warehouse.table_exists("predictions"):
        return None
    return warehouse.scalar("select any_value(model_version) from predictions where session = ?", [session])


def rollback_champion(registry: ModelRegistry, ledger: Ledger, reason: str,
                      flagged: set[str] = frozenset(),
                      evidence: dict | None = None) -> tuple[str, str] | None:
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
    ledger.record_model_event(registry.model_name, candidate, CHAMPION, "rollback", reason, current,
                              evidence)
    return current, candidate
