"""TRADING_WITHOUT_SIGNAL=hold_cash on a market with nothing to find: the first model fails the
signal gate, so there is no champion; three daily runs record that nothing is scored and why,
report drift as "no model in use", plan cash, reconcile and score the account, and train only
once. And an account that bought on a noise champion (policy trade) sells everything through
the ordinary exit orders once the policy is hold_cash. Real Dagster instance, DuckDB warehouse,
MLflow store and paper simulator; bars from a CSV file of pure-noise prices."""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.definitions import build_definitions
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


def write_noise_bars(home):
    folder = home / "bars"
    folder.mkdir()
    # through the session after D3: the simulator fills D3's decisions on its bars
    noise_bars(sessions_between(date(2023, 1, 3), next_session(D3)), n_symbols=8, seed=1).rename(
        {"session": "date"}).write_csv(folder / "bars.csv")
    return folder


@pytest.fixture(scope="module")
def held_cash(tmp_path_factory):
    home = tmp_path_factory.mktemp("hold_cash")
    folder = write_noise_bars(home)
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


@pytest.fixture(scope="module")
def sold_out(tmp_path_factory):
    """D1 under trade: the noise model is champion anyway and the account buys; D2 and D3 under
    hold_cash, on the same home and instance."""
    from trading_pipeline.settings import TradingSettings

    home = tmp_path_factory.mktemp("sold_out")
    values = dict(home=home / "home", universe_size=8, history_start=date(2023, 1, 3),
                  train_window_sessions=150, top_k=4, drift_window_sessions=10, data_source="files",
                  data_path=write_noise_bars(home))
    trade = TradingSettings(_env_file=None, **values, without_signal="trade")
    hold_cash = TradingSettings(_env_file=None, **values, without_signal="hold_cash")
    (home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        def run(settings, session):
            job = build_definitions(settings).resolve_job_def("daily_trading_job")
            return job.execute_in_process(partition_key=session.isoformat(), instance=instance)

        results = {D1: run(trade, D1), D2: run(hold_cash, D2), D3: run(hold_cash, D3)}
        yield {"results": results, "warehouse": Warehouse(trade.resolved_warehouse_path),
               "registry": resources_for(trade)["model_store"].registry()}


def test_what_was_bought_on_a_noise_champion_is_sold_through_the_ordinary_exits(sold_out):
    wh = sold_out["warehouse"]
    assert all(result.success for result in sold_out["results"].values())
    champion = sold_out["registry"].champion_version()
    assert sold_out["registry"].version_tags()[champion]["signal_gate"] == "failed"  # traded anyway under trade
    held = wh.query("select symbol, quantity from ledger_positions where session = ? and abs(quantity) > 1e-9 "
                    "order by symbol", [D2])
    assert held.height > 0  # D1's buys filled at D2's open
    exits = wh.query("select symbol, side, quantity, purpose, order_type, status from ledger_orders "
                     "where session = ? order by symbol", [D2])
    assert exits.select("symbol", "quantity").rows() == held.rows()  # every holding, whole
    assert set(exits["side"]) == {"sell"} and set(exits["purpose"]) == {"rebalance"}
    assert set(exits["order_type"]) == {"market"} and "not_sent" not in set(exits["status"])
    # their protective stops (sent with D1's buys) were cancelled before the sells
    stops = wh.query("select status from ledger_orders where session = ? and purpose = 'stop_loss'", [D1])
    assert stops.height == held.height and set(stops["status"]) == {"canceled"}
    assert "holding cash, nothing scored" in metadata(sold_out["results"][D2], "target_portfolio")["notes"]
    # D3: the sells filled at D3's open; all cash, nothing more to do, nothing unexplained
    assert wh.scalar("select count(*) from ledger_orders where session = ?", [D3]) == 0
    assert wh.scalar("select count(*) from ledger_positions where session = ? and abs(quantity) > 1e-9",
                     [D3]) == 0
    equity, cash = wh.query("select equity, cash from ledger_account where session = ?", [D3]).row(0)
    assert cash == pytest.approx(equity)
    assert wh.scalar("select count(*) from reconciliation_breaks") == 0
    assert sold_out["registry"].versions() == ["1"]
