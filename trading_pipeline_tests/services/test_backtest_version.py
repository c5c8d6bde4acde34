"""A version's backtest stored with it: warehouse tables, MLflow metrics and artifact, and the
expectation the monitor reads. Real DuckDB, a real MLflow SQLite store, a real trained model
whose walk-forward out-of-sample predictions are the scores (as training will pass them)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from trading_pipeline.defs.resources import PortfolioConfig, RiskConfig, StrategyResource
from trading_pipeline.domain.calendar import sessions_back, sessions_between
from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.model import ModelNotFound, ModelRegistry, train_model
from trading_pipeline.domain.backtest import BacktestError
from trading_pipeline.services.backtest import (
    BACKTEST_EQUITY,
    BACKTEST_SUMMARY,
    ExpectationNotFound,
    backtest_version,
    expectation,
)
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

SESSIONS = sessions_between(date(2023, 1, 3), date(2023, 9, 29))
SMALL_STRATEGY = StrategyResource(portfolio=PortfolioConfig(top_k=4), risk=RiskConfig(var_lookback=20))


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    home = tmp_path_factory.mktemp("backtest_version")
    warehouse = Warehouse(home / "warehouse.duckdb")
    market_store.append_history(warehouse, SyntheticMarket(seed=3, universe_size=12).bars(SESSIONS))
    bars = market_store.read_bars_through(warehouse, SESSIONS[-1])
    features = compute_features(bars).filter(pl.col("session") >= SESSIONS[MIN_HISTORY_SESSIONS])
    result = train_model(features, forward_return_labels(bars), n_folds=2, seed=0,
                         params={"n_estimators": 20})
    previous = Path.cwd()
    os.chdir(home)  # MLflow writes nothing outside the registry's folders
    try:
        registry = ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "bt_ranker", home / "mlartifacts")
        version = registry.register(result)
        # walk-forward scores with their fold: each made by a model whose labels ended before it
        scores = result.oos_predictions.select("session", "symbol", "fold",
                                               pl.col("prediction").alias("score"))
        strategy = SMALL_STRATEGY
        first = backtest_version(warehouse, registry, version, scores, strategy)
        yield {"warehouse": warehouse, "registry": registry, "version": version, "scores": scores,
               "first": first, "result": result}
    finally:
        os.chdir(previous)


def test_the_daily_frame_and_summary_are_stored_with_the_version(stored):
    warehouse, version, first = stored["warehouse"], stored["version"], stored["first"]
    equity = warehouse.query(f"select * from {BACKTEST_EQUITY} where model_version = ? order by session",
                             [version])
    assert equity.select("session", "equity").rows() == first.daily.select("session", "equity").rows()
    # the out-of-sample predictions start long after the bars: every scored session is used
    assert first.first_session == stored["scores"]["session"].min()
    assert first.last_session == stored["scores"]["session"].max()
    assert first.fills.height > 0 and first.summary["total_commission"] > 0

    expected = expectation(warehouse, version)
    assert expected["first_session"] == first.first_session
    for key in ("daily_return_mean", "daily_return_std", "sharpe", "max_drawdown",
                "annualised_return", "annualised_volatility", "annualised_turnover"):
        assert expected[key] == first.summary[key], key
    assert expected["daily_return_std"] > 0 and expected["max_drawdown"] <= 0


def test_the_summary_is_logged_on_the_versions_mlflow_run(stored):
    registry, version, first = stored["registry"], stored["version"], stored["first"]
    metrics = registry.metrics(version)
    assert metrics["backtest_sharpe"] == pytest.approx(first.summary["sharpe"])
    assert metrics["backtest_max_drawdown"] == pytest.approx(first.summary["max_drawdown"])
    assert "rank_ic" in metrics  # the training metrics are still there
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    run_id = client.get_model_version(registry.model_name, version).run_id
    assert [a.path for a in client.list_artifacts(run_id, "backtest")] == ["backtest/daily.csv"]


def test_a_rerun_replaces_the_versions_rows_and_drops_sessions_without_var_history(stored):
    warehouse, registry, version, scores = (stored[k] for k in ("warehouse", "registry", "version", "scores"))
    # a 150-session VaR window: the first scored sessions lack that much stored history
    again = backtest_version(warehouse, registry, version, scores,
                             StrategyResource(portfolio=PortfolioConfig(top_k=4), risk=RiskConfig(var_lookback=150)))
    first_usable = next(s for s in scores["session"].unique().sort()
                        if sessions_back(s, 151)[0] >= SESSIONS[0])
    assert again.first_session == first_usable > scores["session"].min()
    assert warehouse.scalar(f"select count(*) from {BACKTEST_EQUITY} where model_version = ?",
                            [version]) == again.daily.height
    assert warehouse.scalar(f"select count(*) from {BACKTEST_SUMMARY} where model_version = ?",
                            [version]) == 1
    assert expectation(warehouse, version)["first_session"] == first_usable
    assert registry.metrics(version)["backtest_sessions"] == again.daily.height


def test_missing_expectations_and_versions_are_named(stored):
    with pytest.raises(ExpectationNotFound, match="no backtest is stored for model version 99"):
        expectation(stored["warehouse"], "99")
    with pytest.raises(ModelNotFound):
        backtest_version(stored["warehouse"], stored["registry"], "99", stored["scores"],
                         StrategyResource())


def test_the_final_model_scoring_its_own_training_sessions_is_refused(stored):
    warehouse, registry, version, result = (stored[k] for k in ("warehouse", "registry", "version", "result"))
    end = registry.training_end(version)
    assert end == result.training_end <= SESSIONS[-1]
    bars = market_store.read_bars_through(warehouse, SESSIONS[-1])
    features = compute_features(bars).filter(pl.col("session").is_between(date(2023, 8, 1), end))
    in_sample = result.predict(features)  # the version itself on sessions whose prices it saw
    before = warehouse.query(f"select * from {BACKTEST_SUMMARY} where model_version = ?", [version])
    with pytest.raises(BacktestError, match=f"on or before v{version}'s training end {end} and are "
                       "not walk-forward out-of-sample scores"):
        backtest_version(warehouse, registry, version, in_sample, SMALL_STRATEGY)
    # walk-forward scores with a fold missing on some rows are refused too
    partly = stored["scores"].with_columns(pl.when(pl.col("session") == pl.col("session").max())
                                           .then(None).otherwise(pl.col("fold")).alias("fold"))
    with pytest.raises(BacktestError, match="not walk-forward"):
        backtest_version(warehouse, registry, version, partly, SMALL_STRATEGY)
    # nothing stored was replaced
    assert warehouse.query(f"select * from {BACKTEST_SUMMARY} where model_version = ?",
                           [version]).equals(before)
