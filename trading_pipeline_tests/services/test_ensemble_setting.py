"""TRADING_ENSEMBLE_SEEDS reaches training: the loop's own training path (settings ->
TrainingOptions -> train_as_of) registers an ensemble of that many LightGBM models, and the
registry loads all of them back. Real DuckDB warehouse and MLflow store; 8 symbols."""

from datetime import date

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.services import modeling
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.noise_market import noise_bars

AS_OF = date(2024, 1, 31)


def test_the_setting_trains_and_registers_that_many_members(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADING_ENSEMBLE_SEEDS", "2")
    options = TradingSettings().model.training_options()
    assert options.ensemble_seeds == 2
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, noise_bars(sessions_between(date(2023, 1, 3), AS_OF),
                                                      n_symbols=8, seed=5))
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "ensemble_setting", tmp_path / "mlartifacts")
    outcome = modeling.train_as_of(warehouse, Ledger(warehouse), registry, AS_OF, window=150, horizon=5,
                                   why="test", options=options)
    loaded = registry.load(outcome.version)
    assert len(loaded.members) == 2
    assert loaded.members[0].model_to_string() != loaded.members[1].model_to_string()
