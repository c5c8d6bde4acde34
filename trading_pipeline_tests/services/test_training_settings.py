"""Training settings reach the loop's own training path (settings -> TrainingOptions ->
train_as_of): TRADING_ENSEMBLE_SEEDS registers an ensemble of that many LightGBM models, which
the registry loads back; TRADING_TRAINING_WORKERS reaches train_model (which fits on that many
threads: domain/test_training_workers). Real DuckDB warehouse and MLflow store; 8 symbols."""

from datetime import date

import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.services import modeling
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.noise_market import noise_bars

AS_OF = date(2024, 1, 31)


def _train_with_settings(tmp_path, monkeypatch, variables: dict[str, str]):
    """The options the environment gives, and a version trained with them on a noise market."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    options = TradingSettings().model.training_options()
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, noise_bars(sessions_between(date(2023, 1, 3), AS_OF),
                                                      n_symbols=8, seed=5))
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "training_settings", tmp_path / "mlartifacts")
    outcome = modeling.train_as_of(warehouse, Ledger(warehouse), registry, AS_OF, window=150, horizon=5,
                                   why="test", options=options)
    return options, registry, outcome


def test_ensemble_seeds_train_and_register_that_many_members(tmp_path, monkeypatch):
    options, registry, outcome = _train_with_settings(tmp_path, monkeypatch, {"TRADING_ENSEMBLE_SEEDS": "2"})
    assert options.ensemble_seeds == 2
    loaded = registry.load(outcome.version)
    assert len(loaded.members) == 2
    assert loaded.members[0].model_to_string() != loaded.members[1].model_to_string()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_training_workers_reach_the_loops_training(tmp_path, monkeypatch, workers):
    # that train_model fits on that many threads, each LightGBM on one: domain/test_training_workers
    seen = []
    train_model = modeling.train_model

    def recording(*args, **kwargs):
        seen.append(kwargs["workers"])
        return train_model(*args, **kwargs)

    monkeypatch.setattr(modeling, "train_model", recording)
    options, _, outcome = _train_with_settings(tmp_path, monkeypatch, {"TRADING_TRAINING_WORKERS": workers})
    assert outcome.version and seen == [options.workers] == [int(workers)]
