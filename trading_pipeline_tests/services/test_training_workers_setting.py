"""TRADING_TRAINING_WORKERS reaches training: the loop's own training path (settings ->
TrainingOptions -> train_as_of) fits on that many threads (1: the caller's own), each LightGBM
on one thread. Real
DuckDB warehouse and MLflow store; 8 symbols."""

import threading
from datetime import date

import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.model import ModelRegistry, training
from trading_pipeline.services import modeling
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.noise_market import noise_bars

AS_OF = date(2024, 1, 31)


@pytest.mark.parametrize(("workers", "threads_seen"), [("1", {"MainThread"}), ("2", {"training_0", "training_1"})])
def test_the_setting_fits_the_loops_training_on_that_many_threads(tmp_path, monkeypatch, workers, threads_seen):
    monkeypatch.setenv("TRADING_TRAINING_WORKERS", workers)
    options = TradingSettings().model.training_options()
    assert options.workers == int(workers)
    threads = []
    fit = training._fit_lgbm

    def recording(rows, columns, params, *args, **kwargs):
        threads.append((threading.current_thread().name, params["num_threads"]))
        return fit(rows, columns, params, *args, **kwargs)

    monkeypatch.setattr(training, "_fit_lgbm", recording)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, noise_bars(sessions_between(date(2023, 1, 3), AS_OF),
                                                      n_symbols=8, seed=5))
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "workers_setting", tmp_path / "mlartifacts")
    outcome = modeling.train_as_of(warehouse, Ledger(warehouse), registry, AS_OF, window=150, horizon=5,
                                   why="test", options=options)
    assert outcome.version
    assert {name for name, _ in threads} == threads_seen
    assert {count for _, count in threads} == {1}
