"""The drift report with performance decay on a real warehouse, MLflow store and Dagster asset."""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.defs.assets.model import drift_report
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.domain.decay import DecayPolicy
from trading_pipeline.services import drift as drift_service
from trading_pipeline_tests.conftest import SMALL_RUN
from trading_pipeline_tests.drift_scenario import DriftScenario

TRAINED_THROUGH = date(2023, 12, 29)
SESSIONS = 30  # the last one's decay window holds 20 sessions of the champion's predictions


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from trading_pipeline.settings import TradingSettings

    # conftest's small run, built once for the module
    settings = TradingSettings(_env_file=None, home=tmp_path_factory.mktemp("drift") / "home", **SMALL_RUN)
    return DriftScenario(settings, TRAINED_THROUGH, SESSIONS)


def stored_row(scenario, session) -> dict:
    rows = scenario.warehouse.read_partition(drift_service.DRIFT_TABLE, session)
    assert rows.height == 1
    return rows.row(0, named=True)


def test_the_row_holds_data_drift_prediction_drift_and_decay(scenario):
    session = scenario.sessions[-1]
    report = scenario.report(session, html=True)
    row = stored_row(scenario, session)
    assert set(drift_service.DRIFT_ROW_SCHEMA) <= set(row)
    assert row["model_version"] == scenario.version == report.model_version
    assert row["data_severity"] == report.drift.severity
    assert row["severity"] == report.severity
    assert row["prediction_drift_score"] == pytest.approx(report.drift.prediction_drift_score)
    assert row["prediction_drifted"] == report.drift.prediction_drifted
    # returns known through 5 sessions back; the champion scored every session since training
    assert row["decay_sessions"] == scenario.settings.decay.window_sessions == 20
    assert -1 < row["decay_rank_ic"] < 1 and row["decay_rank_ic"] == pytest.approx(report.decay.rank_ic)
    assert row["decay_breached"] is (row["decay_rank_ic"] < scenario.settings.decay.min_rank_ic)
    assert "of columns drifted" in row["reasons"] and "over 20 sessions" in row["reasons"]
    assert row["html_path"].endswith(f"drift_{session}.html")
    assert report.drift.html_path.exists()


def test_the_decay_uses_only_returns_known_on_the_day(scenario):
    # bars of later sessions are stored too; the report of an early session must not see them
    early = scenario.sessions[7]
    decay = scenario.decay(early)
    assert decay.sessions == 8 - 5 and not decay.judged and not decay.breached
    assert decay.daily["session"].max() == scenario.sessions[2]


def test_a_breached_decay_makes_the_report_severe_whatever_the_data_drift(scenario):
    session = scenario.sessions[-2]
    # any realised rank IC is below 1.0: the decay is breached by construction
    report = drift_service.drift_for_session(
        scenario.warehouse, scenario.registry, session, window=10, warn_share=0.3,
        severe_share=0.5, column_threshold=1.0, html_path=None,
        decay=DecayPolicy(window=20, min_sessions=10, min_rank_ic=1.0), horizon=5)
    row = stored_row(scenario, session)
    assert report.decay.breached and row["decay_breached"] is True
    assert row["severity"] == "severe"
    assert row["data_severity"] == report.drift.severity != "severe"  # the data alone was calmer
    assert "below 1.000" in row["reasons"] and row["html_path"] is None


def test_a_drift_table_from_an_earlier_version_gets_the_new_columns(scenario):
    warehouse = scenario.warehouse
    warehouse.execute(f"drop table if exists {drift_service.DRIFT_TABLE}")
    old = scenario.sessions[0]
    warehouse.replace_partition(drift_service.DRIFT_TABLE, old, pl.DataFrame({
        "session": [old], "model_version": ["1"], "severity": ["warn"], "drifted_share": [0.4],
        "drifted_count": [5], "html_path": ["old.html"]}))
    session = scenario.sessions[20]  # returns known for its first 16 sessions
    scenario.report(session)
    assert stored_row(scenario, session)["decay_sessions"] == 16
    kept = stored_row(scenario, old)
    assert kept["severity"] == "warn" and kept["html_path"] == "old.html"
    assert kept["decay_rank_ic"] is None and kept["reasons"] is None


def test_the_asset_shows_severity_reasons_decay_and_a_summary(scenario):
    session = scenario.sessions[-1]
    resources = resources_for(scenario.settings)
    result = dg.materialize([drift_report], resources=resources, partition_key=session.isoformat())
    assert result.success
    metadata = result.asset_materializations_for_node("drift_report")[0].metadata
    row = stored_row(scenario, session)
    assert metadata["severity"].value == row["severity"]
    assert metadata["data_severity"].value == row["data_severity"]
    assert metadata["reasons"].value == row["reasons"]
    assert metadata["decay_sessions"].value == 20
    assert metadata["decay_rank_ic"].value == pytest.approx(row["decay_rank_ic"])
    assert metadata["decay_min_rank_ic"].value == scenario.settings.decay.min_rank_ic
    assert metadata["prediction_drift_score"].value == pytest.approx(row["prediction_drift_score"])
    summary = metadata["summary"].value
    assert "| figure | value | rule |" in summary and "rank IC (decay)" in summary
    assert metadata["report"].value.endswith(f"drift_{session}.html")


def test_a_version_trained_on_the_alpha_set_is_judged_on_its_own_columns(tmp_path):
    # Before: the report computed the small set whatever the version was trained on, so a
    # version of the alpha set (TRADING_FEATURE_SET=alpha) failed to score its reference.
    from trading_pipeline.domain.calendar import next_session, sessions_between
    from trading_pipeline.domain.factors import FEATURE_SETS
    from trading_pipeline.domain.market import SyntheticMarket
    from trading_pipeline.domain.model import ModelRegistry
    from trading_pipeline.services import modeling
    from trading_pipeline.settings import TradingSettings
    from trading_pipeline.storage import market_store
    from trading_pipeline.storage.ledger import Ledger
    from trading_pipeline.storage.warehouse import Warehouse

    settings = TradingSettings(_env_file=None, home=tmp_path / "home", **{**SMALL_RUN, "feature_set": "alpha"})
    sessions = sessions_between(next_session(TRAINED_THROUGH), date(2024, 1, 31))
    warehouse = Warehouse(settings.resolved_warehouse_path)
    registry = ModelRegistry(settings.resolved_mlflow_uri, settings.model.model_name, settings.mlflow_artifact_root)
    market = SyntheticMarket(seed=settings.data.market_seed, universe_size=settings.data.universe_size)
    market_store.append_history(warehouse, market.bars(sessions_between(settings.data.history_start, sessions[-1])))
    trained = modeling.train_and_register(warehouse, Ledger(warehouse), registry, TRAINED_THROUGH,
                                          settings.model.train_window_sessions, settings.model.label_horizon,
                                          why="alpha set", options=settings.model.training_options())
    alpha_only = set(FEATURE_SETS["alpha"].columns) - set(FEATURE_SETS["small"].columns)
    assert alpha_only & set(registry.load(trained.version).feature_columns)

    report = drift_service.drift_for_session(
        warehouse, registry, sessions[-1], window=10, warn_share=0.3, severe_share=0.5,
        column_threshold=settings.drift.column_threshold, html_path=None,
        decay=settings.decay.policy(), horizon=settings.model.label_horizon, model_version=trained.version)
    judged = set(report.drift.per_column["column"].to_list())
    assert judged & alpha_only and not any(c.startswith("rank_") for c in judged)
