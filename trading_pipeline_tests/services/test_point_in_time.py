"""A session is scored only by a model version trained on data that ended before it.

Seen before: May 2024 backfilled with a champion trained on later data, silently. Real DuckDB
warehouse, MLflow store, trained models and Dagster (materialize, training_job with run config).
"""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.defs.assets.model import features, predictions
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.model import TRAINING_END_TAG, NoQualifyingModel
from trading_pipeline.services import modeling
from trading_pipeline.storage import market_store

V1_AS_OF, V2_AS_OF = date(2024, 3, 28), date(2024, 8, 30)
BACKFILL = date(2024, 5, 1)  # after v1's training end, long before v2's
TOO_EARLY = date(2024, 3, 1)  # before every version's training end


@pytest.fixture(scope="module")
def two_eras(tmp_path_factory):
    """v1 trained as of 2024-03-28, v2 as of 2024-08-30 and made champion (as weekly training
    does later on); bars stored through 2024-09-30."""
    from trading_pipeline.settings import TradingSettings

    home = tmp_path_factory.mktemp("point_in_time")
    # too small a market for the signal gate to judge: its first model is traded (see SMALL_RUN)
    settings = TradingSettings(_env_file=None, home=home / "home", universe_size=10,
                               history_start=date(2023, 1, 3), train_window_sessions=120, top_k=4,
                               without_signal="trade")
    resources = resources_for(settings)
    wh, registry = resources["warehouse"], resources["model_store"].registry()
    market = SyntheticMarket(seed=settings.data.market_seed, universe_size=10)
    market_store.append_history(wh.warehouse, market.bars(sessions_between(date(2023, 1, 3),
                                                                           date(2024, 9, 30))))
    outcomes = [modeling.train_as_of(wh.warehouse, wh.ledger, registry, as_of, window=120, horizon=5,
                                     why="test", options=settings.model.training_options())
                for as_of in (V1_AS_OF, V2_AS_OF)]
    registry.set_alias(modeling.CHAMPION, outcomes[1].version, "operator: the later model")
    return {"settings": settings, "resources": resources, "wh": wh, "registry": registry,
            "outcomes": outcomes, "home": home}


def materialize_predictions(two_eras, session: date, **kwargs):
    return dg.materialize([features, predictions], resources=two_eras["resources"],
                          partition_key=session.isoformat(), **kwargs)


def test_the_training_end_is_the_last_label_plus_the_horizon_and_is_a_tag(two_eras):
    registry = two_eras["registry"]
    v1, v2 = two_eras["outcomes"]
    # labels of the last 5 sessions up to as_of need later prices: the last label is 5 back
    assert v1.training_end == V1_AS_OF and registry.training_window(v1.version)[1] == date(2024, 3, 21)
    assert registry.training_end(v1.version) == V1_AS_OF
    assert registry.training_end(v2.version) == V2_AS_OF
    tags = registry._version_or_raise(v2.version).tags
    assert tags[TRAINING_END_TAG] == "2024-08-30" and tags[modeling.AS_OF_TAG] == "2024-08-30"


def test_a_backfill_is_scored_by_the_older_champion_not_the_later_one(two_eras):
    wh, registry = two_eras["wh"], two_eras["registry"]
    assert registry.champion_version() == "2"
    result = materialize_predictions(two_eras, BACKFILL)
    assert result.success
    rows = wh.warehouse.read_partition("predictions", BACKFILL)
    assert rows.height == 10
    assert set(rows["model_version"]) == {"1"}
    assert set(rows[modeling.TRAINING_END_COLUMN]) == {V1_AS_OF}
    assert rows[modeling.TRAINING_END_COLUMN].max() < BACKFILL
    metadata = result.asset_materializations_for_node("predictions")[0].metadata
    assert metadata["model_version"].value == "1"
    assert "backfill" in metadata["model_choice"].value and "2024-08-30" in metadata["model_choice"].value


def test_the_champion_scores_sessions_after_its_training_end(two_eras):
    choice = modeling.model_for_session(two_eras["wh"].warehouse, two_eras["registry"], date(2024, 9, 3))
    assert (choice.version, choice.training_end) == ("2", V2_AS_OF)
    # the day of its training end is not after it
    assert modeling.model_for_session(two_eras["wh"].warehouse, two_eras["registry"],
                                      V2_AS_OF).version == "1"


def test_a_session_no_version_qualifies_for_fails_saying_what_to_train(two_eras):
    wh, registry = two_eras["wh"], two_eras["registry"]
    with pytest.raises(NoQualifyingModel, match="no model version was trained on data ending before "
                       "2024-03-01.*train a model as of 2024-02-29") as raised:
        modeling.score_session(wh.warehouse, registry, TOO_EARLY)
    assert raised.value.as_of == date(2024, 2, 29)
    result = materialize_predictions(two_eras, TOO_EARLY, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "training_job" in message and '"as_of": "2024-02-29"' in message
    assert wh.warehouse.read_partition("predictions", TOO_EARLY).is_empty()


def test_training_job_as_of_gives_the_backfill_its_model_without_touching_the_champion(two_eras):
    settings, wh, registry = two_eras["settings"], two_eras["wh"], two_eras["registry"]
    job = build_definitions(settings).resolve_job_def("training_job")
    with dg.instance_for_test() as instance:
        bad = job.execute_in_process(run_config={"ops": {"trained_model": {"config": {
            "as_of": "2024-02-30"}}}}, instance=instance, raise_on_error=False)
        assert not bad.success and registry.versions() == ["1", "2"]
        run = job.execute_in_process(run_config={"ops": {"trained_model": {"config": {
            "as_of": "2024-02-29"}}}}, instance=instance)
    assert run.success
    metadata = run.asset_materializations_for_node("trained_model")[0].metadata
    version = metadata["version"].value
    assert version == "3" and metadata["training_end"].value == "2024-02-29"
    assert metadata["became_champion"].value is False and "point-in-time" in metadata["reason"].value
    assert registry.champion_version() == "2"
    assert registry._version_or_raise("3").tags[modeling.POINT_IN_TIME_TAG] == "true"
    assert materialize_predictions(two_eras, TOO_EARLY).success
    rows = wh.warehouse.read_partition("predictions", TOO_EARLY)
    assert set(rows["model_version"]) == {"3"}
    assert set(rows[modeling.TRAINING_END_COLUMN]) == {date(2024, 2, 29)}
    # the backfill of May keeps the version that was champion and ended later, not v3
    assert modeling.model_for_session(wh.warehouse, registry, BACKFILL).version == "1"


def test_an_as_of_that_has_not_closed_or_is_not_a_date_is_refused(two_eras):
    wh, registry = two_eras["wh"], two_eras["registry"]
    with pytest.raises(ValueError, match="is not a date: write it as YYYY-MM-DD"):
        modeling.parse_as_of("30/04/2024")
    with pytest.raises(ValueError, match="after the latest completed session"):
        modeling.train_as_of(wh.warehouse, wh.ledger, registry, date(2100, 1, 4), window=120,
                             horizon=5, why="test")
    with pytest.raises(modeling.NotEnoughHistory, match="no bars are stored on or before 2022-06-01"):
        modeling.train_as_of(wh.warehouse, wh.ledger, registry, date(2022, 6, 1), window=120,
                             horizon=5, why="test")


def test_a_version_rolled_back_for_drift_is_not_chosen_for_a_backfill(two_eras):
    wh, registry = two_eras["wh"], two_eras["registry"]
    # v1 demoted by a drift rollback (recorded as the rollback sensor does)
    wh.ledger.record_model_event(registry.model_name, "2", modeling.CHAMPION, "rollback",
                                 "test: severe drift", "1", None)
    try:
        records = {r.version: r for r in modeling.version_records(wh.warehouse, registry)}
        assert records["1"].rolled_back and records["1"].was_champion
        assert not records["2"].rolled_back
        # v3 (a point-in-time version) exists only if the training_job test ran first on this
        # worker: then it scores the backfill, else nothing qualifies; never v1
        try:
            chosen = modeling.model_for_session(wh.warehouse, registry, BACKFILL).version
        except NoQualifyingModel:
            chosen = None
        assert chosen != "1"
    finally:
        wh.warehouse.execute("delete from model_events where action = 'rollback'")
    assert modeling.model_for_session(wh.warehouse, registry, BACKFILL).version == "1"


def test_predictions_written_before_the_training_end_column_keep_their_rows(tmp_path):
    from trading_pipeline.storage.warehouse import Warehouse

    wh = Warehouse(tmp_path / "warehouse.duckdb")
    old, session = date(2024, 6, 3), date(2024, 9, 3)
    # the table as an earlier version of the loop made it
    wh.append("predictions", pl.DataFrame({"session": [old], "symbol": ["S000"], "score": [0.5],
                                           "model_version": ["1"]}))
    modeling.write_predictions(wh, session, pl.DataFrame({
        "session": [session], "symbol": ["S000"], "score": [0.1], "model_version": ["2"],
        modeling.TRAINING_END_COLUMN: [V2_AS_OF]}))
    kept = wh.read_partition("predictions", old).row(0, named=True)
    assert kept["model_version"] == "1" and kept[modeling.TRAINING_END_COLUMN] is None
    assert wh.read_partition("predictions", session)[modeling.TRAINING_END_COLUMN].to_list() == [V2_AS_OF]
