"""approval_job on a real Dagster instance: a person's decision on a promotion is recorded beside
the sensor's; the live keys read it; a rejection changes nothing else."""

from datetime import date

import dagster as dg
import pytest

from trading_pipeline.defs.jobs import approval_job
from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.promotion import Decision
from trading_pipeline.services.approval import live_approval, waiting_for_person
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage import approval_store


def form(decision: str, version: str = "3", **overrides) -> dict:
    config = {"strategy": "daily_ml", "model_version": version, "decision": decision,
              "reason": "ten clean paper sessions, read the record", "name": "Grace", **overrides}
    return {"ops": {"record_human_decision": {"config": config}}}


@pytest.fixture
def home(tmp_path):
    settings = TradingSettings(_env_file=None, home=tmp_path / "home", history_start=date(2023, 1, 3))
    defs = build_definitions(settings)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield defs, instance, defs.resources["warehouse"].ledger


def test_a_needs_review_waits_for_a_person_and_approval_job_records_the_decision(home):
    defs, instance, ledger = home
    ledger.record_promotion("daily_ml", "3", "paper", "live", "needs_review", ["too early: 10 of 20"], 10)
    waiting = waiting_for_person(ledger, "daily_ml", "3", "live", Decision.NEEDS_REVIEW)
    assert "approval_job" in waiting and "not_sent" in waiting
    assert live_approval(ledger, "daily_ml", "3") == (False, False)

    run = defs.resolve_job_def("approval_job").execute_in_process(run_config=form("approve"), instance=instance)
    assert run.success
    recorded = approval_store.approvals(ledger.warehouse, "daily_ml").row(0, named=True)
    assert (recorded["decision"], recorded["operator"], recorded["sensor_decision"], recorded["run_id"]) == \
        ("approved", "Grace", "needs_review", run.run_id)
    observation = [e.event_specific_data.asset_observation for e in run.all_events
                   if e.event_type_value == "ASSET_OBSERVATION"][0]
    assert observation.asset_key == dg.AssetKey("performance")
    assert observation.metadata["human_decision"].value == "approved"
    assert live_approval(ledger, "daily_ml", "3") == (True, True)
    assert waiting_for_person(ledger, "daily_ml", "3", "live", Decision.NEEDS_REVIEW) is None

    rejected = approval_job.execute_in_process(run_config=form("reject", reason="a breach to look at"),
                                               instance=instance, resources=defs.resources)
    assert rejected.success
    assert live_approval(ledger, "daily_ml", "3") == (False, False)
    assert approval_store.approvals(ledger.warehouse, "daily_ml").height == 2  # both kept


def test_an_approval_of_a_rejected_version_fails_the_run_with_the_sensor_reasons(home):
    defs, instance, ledger = home
    ledger.record_promotion("daily_ml", "4", "paper", "live", "rejected", ["2 reconciliation breaks"], 20)
    run = defs.resolve_job_def("approval_job").execute_in_process(
        run_config=form("approve", version="4"), instance=instance, raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "2 reconciliation breaks" in failure.step_failure_data.user_failure_data.description
    assert approval_store.approvals(ledger.warehouse, "daily_ml").is_empty()


def test_the_form_needs_a_name(home):
    defs, instance, _ = home
    config = form("approve")
    del config["ops"]["record_human_decision"]["config"]["name"]
    with pytest.raises(dg.DagsterInvalidConfigError, match="name"):
        defs.resolve_job_def("approval_job").execute_in_process(run_config=config, instance=instance)
