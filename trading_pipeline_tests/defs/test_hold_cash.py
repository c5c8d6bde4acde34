"""TRADING_WITHOUT_SIGNAL=hold_cash on a market with nothing to find: the first model fails the
signal gate, so there is no champion; three daily runs record that nothing is scored and why,
report drift as "no model in use", plan cash, reconcile and score the account, and train only
once. Real Dagster instance, DuckDB warehouse, MLflow store and paper simulator; bars from a
CSV file of pure-noise prices."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.defs.environment import resources_for
from trading_pipeline.domain.calendar import next_session, sessions_between
from trading_pipeline.services import modeling
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.conftest import daily_sessions
from trading_pipeline_tests.noise_market import noise_bars

D1 = date(2024, 3, 26)
D2 = next_session(D1)
D3 = next_session(D2)
SESSIONS = (D1, D2, D3)


@pytest.fixture(scope="module")
def held_cash(tmp_path_factory):
    home = tmp_path_factory.mktemp("hold_cash")
    folder = home / "bars"
    folder.mkdir()
    # through the session after D3: the simulator fills D3's decisions on its bars
    noise_bars(sessions_between(date(2023, 1, 3), next_session(D3)), n_symbols=8, seed=1).rename(
        {"session": "date"}).write_csv(folder / "bars.csv")
    with daily_sessions(home, SESSIONS, data_source="files", data_path=folder, without_signal="hold_cash",
                        universe_size=8) as run:
        resources = resources_for(run.settings)
        yield {"run": run, "warehouse": Warehouse(run.settings.resolved_warehouse_path),
               "registry": resources["model_store"].registry(), "account": resources["broker"].venue}


def metadata(result, asset: str) -> dict:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def test_every_session_runs_without_error_and_records_why_nothing_is_scored(held_cash):
    for session, result in held_cash["run"].results.items():
        assert result.success, session
        checks = result.get_asset_check_evaluations()
        assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks if not c.passed]
        scored = metadata(result, "predictions")
        assert scored["scored"] is False and scored["rows"] == 0
        assert "no champion with signal" in scored["reason"]
        assert "no better than noise" in scored["reason"]  # the gate's own verdict, with its figures
        assert "training_job" in scored["next_step"]
        unscored = modeling.unscored(held_cash["warehouse"], session, held_cash["account"])
        assert unscored is not None and unscored.reason == scored["reason"]
    wh = held_cash["warehouse"]
    assert not wh.table_exists("predictions") or wh.scalar("select count(*) from predictions") == 0


def test_the_noise_model_is_trained_once_and_never_champion(held_cash):
    registry = held_cash["registry"]
    assert registry.versions() == ["1"]  # the bootstrap, not once a session
    assert registry.champion_version() is None
    assert registry.version_tags()["1"]["signal_gate"] == "failed"
    events = held_cash["warehouse"].query(
        "select version, action, reason from model_events order by recorded_at")
    assert events["action"].to_list() == ["registered", "kept_challenger"]
    assert events["reason"][1].startswith("refused as champion, no better than noise")


def test_drift_says_no_model_is_in_use(held_cash):
    reports = held_cash["warehouse"].query(
        "select session, model_version, severity, reasons from drift_reports order by session")
    assert reports["session"].to_list() == list(SESSIONS)
    assert reports["model_version"].null_count() == 3 and set(reports["severity"]) == {"none"}
    assert all(r.startswith("no model in use: no champion with signal") for r in reports["reasons"])


def test_the_account_holds_cash_reconciled_and_scored(held_cash):
    wh, account = held_cash["warehouse"], held_cash["account"]
    assert wh.scalar("select count(*) from ledger_orders") == 0  # nothing bought, nothing held to sell
    for session, result in held_cash["run"].results.items():
        target = metadata(result, "target_portfolio")
        assert target["positions"] == 0 and target["model_version"] == ""
        assert "holding cash, nothing scored" in target["notes"]
        assert metadata(result, "reconciled_positions")["breaks"] == 0
    snapshots = wh.query("select session, equity, cash from ledger_account where broker = ? order by session",
                         [account])
    assert snapshots["session"].to_list() == list(SESSIONS)
    assert snapshots["equity"].n_unique() == 1 and (snapshots["cash"] == snapshots["equity"]).all()
    performance = wh.query("select session from performance order by session")
    assert performance["session"].to_list() == list(SESSIONS)
    assert wh.scalar("select count(*) from reconciliation_breaks") == 0
    assert pl.Series(wh.query("select session from unscored_sessions")["session"]).n_unique() == 3
