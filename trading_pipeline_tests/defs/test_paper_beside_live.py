"""Paper beside live: two environments trade the same sessions against one DAGSTER_HOME.

Paper is the local simulator's account ("simulator"); live is Alpaca live through alpaca-py
against the fake Alpaca on 127.0.0.1 ("alpaca-live"), in dry-run (its keys are not all
turned, so its orders stay `not_sent`). Paper trades five sessions, live ten, paper the other
five: each time one environment runs, nothing the other recorded changes.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import polars as pl
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.services import modeling
from trading_pipeline.settings import BrokerName, TradingEnv
from trading_pipeline.storage import account_tables
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer
from trading_pipeline_tests.conftest import PROJECT_ROOT, daily_sessions

KEY, SECRET = "FAKE-LIVE-KEY-ID", "FAKE-LIVE-SECRET"
SESSIONS = sessions_between(date(2024, 4, 1), date(2024, 4, 30))[:6]  # paper 3, live 6, paper 3
PAPER, LIVE = "simulator", "alpaca-live"
# Every table a session writes, with the column naming its account.
ACCOUNT_TABLES = {
    "predictions": "account", "drift_reports": "account", "monitor_checks": "account",
    "target_portfolio": "account", "target_var": "account", "risk_checks": "account",
    "submitted_orders": "account", "reconciliation_breaks": "account", "performance": "account",
    "session_plans": "account", "ledger_orders": "broker", "ledger_positions": "broker",
    "ledger_account": "broker", "ledger_fills": "broker",
}


def _rows_of(warehouse: Warehouse, account: str) -> dict[str, list[tuple]]:
    """Every row the account has in each per-account table, in a stable order."""
    rows = {}
    for table, column in ACCOUNT_TABLES.items():
        if warehouse.table_exists(table):
            frame = warehouse.query(f'select * from {table} where "{column}" = ?', [account])
            rows[table] = sorted(frame.rows(), key=repr)
    return rows


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    home = tmp_path_factory.mktemp("paper_live")
    fake = FakeAlpaca(KEY, SECRET)
    with pytest.MonkeyPatch.context() as env, FakeAlpacaServer(fake) as server:
        for name, value in {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET,
                            "APCA_API_BASE_URL": server.url}.items():
            env.setenv(name, value)
        with daily_sessions(home, SESSIONS[:3]) as paper:
            assert all(result.success for result in paper.results.values())
            warehouse = Warehouse(paper.settings.resolved_warehouse_path)
            # the same settings but the environment: one home, one warehouse (dry-run stays on)
            live_settings = paper.settings.model_copy(update={"env": TradingEnv.LIVE,
                                                              "broker": BrokerName.ALPACA})
            assert live_settings.resolved_warehouse_path == paper.settings.resolved_warehouse_path
            live_job = build_definitions(live_settings).resolve_job_def("daily_trading_job")
            paper_before_live = _rows_of(warehouse, PAPER)
            live_results = [live_job.execute_in_process(partition_key=s.isoformat(), instance=paper.instance)
                            for s in SESSIONS]
            paper_after_live = _rows_of(warehouse, PAPER)
            live_before_paper = _rows_of(warehouse, LIVE)
            paper_results = [paper.job.execute_in_process(partition_key=s.isoformat(), instance=paper.instance)
                             for s in SESSIONS[3:]]
            yield {"warehouse": warehouse, "live_results": live_results,
                   "paper_results": [*paper.results.values(), *paper_results],
                   "paper_before_live": paper_before_live, "paper_after_live": paper_after_live,
                   "live_before_paper": live_before_paper, "live_after_paper": _rows_of(warehouse, LIVE)}


def test_both_environments_trade_every_session(side_by_side):
    assert all(result.success for result in side_by_side["paper_results"])
    assert all(result.success for result in side_by_side["live_results"])
    warehouse = side_by_side["warehouse"]
    for account in (PAPER, LIVE):
        for table in ("predictions", "drift_reports", "monitor_checks", "session_plans", "performance"):
            sessions = warehouse.query(f"select distinct session from {table} where account = ?", [account])
            assert sorted(sessions["session"]) == SESSIONS, (account, table)


def test_nothing_of_paper_changes_when_live_runs(side_by_side):
    before, after = side_by_side["paper_before_live"], side_by_side["paper_after_live"]
    assert before["predictions"] and before["ledger_orders"]  # paper had traded before live ran
    assert after == before


def test_nothing_of_live_changes_when_paper_runs(side_by_side):
    before, after = side_by_side["live_before_paper"], side_by_side["live_after_paper"]
    assert before["predictions"] and before["ledger_orders"]
    assert after == before


def test_live_orders_stay_not_sent_and_paper_orders_are_sent(side_by_side):
    warehouse = side_by_side["warehouse"]
    live = warehouse.query("select status, dry_run from ledger_orders where broker = ?", [LIVE])
    assert live.height > 0 and set(live["status"]) == {"not_sent"} and live["dry_run"].all()
    paper = warehouse.query("select status from ledger_orders where broker = ?", [PAPER])
    assert "filled" in set(paper["status"])


def test_each_account_reads_its_own_predictions(side_by_side):
    warehouse = side_by_side["warehouse"]
    session = SESSIONS[-1]
    assert set(modeling.read_predictions(warehouse, PAPER, session)["account"]) == {PAPER}
    assert set(modeling.read_predictions(warehouse, LIVE, session)["account"]) == {LIVE}


# -- a warehouse made before the tables were kept per account -----------------------------------


def test_rows_written_before_accounts_are_kept_and_read_until_replaced(tmp_path):
    warehouse = Warehouse(tmp_path / "old.duckdb")
    day, other_day = SESSIONS[0], SESSIONS[1]
    # as an earlier version wrote it: no account column
    warehouse.replace_partition("predictions", day, pl.DataFrame(
        {"session": [day, day], "symbol": ["AAA", "BBB"], "score": [0.1, 0.2], "model_version": ["1", "1"]}))
    warehouse.replace_partition("predictions", other_day, pl.DataFrame(
        {"session": [other_day], "symbol": ["AAA"], "score": [0.3], "model_version": ["1"]}))

    reopened = Warehouse(tmp_path / "old.duckdb")  # the schema migration adds the column
    assert "account" in reopened.query("select * from predictions limit 0").columns
    assert sorted(modeling.read_predictions(reopened, LIVE, day)["symbol"]) == ["AAA", "BBB"]

    modeling.write_predictions(reopened, day, pl.DataFrame(
        {"session": [day], "symbol": ["CCC"], "score": [0.9], "model_version": ["2"]}), PAPER)
    assert modeling.read_predictions(reopened, PAPER, day)["symbol"].to_list() == ["CCC"]
    assert sorted(modeling.read_predictions(reopened, LIVE, day)["symbol"]) == ["AAA", "BBB"]  # kept
    assert modeling.version_used(reopened, day, PAPER) == "2"
    assert modeling.version_used(reopened, day, LIVE) == "1"
    assert reopened.scalar("select count(*) from predictions") == 4  # nothing recorded was lost
    both = account_tables.read_account_range(reopened, "predictions", PAPER, day, other_day)
    assert sorted(both["symbol"]) == ["AAA", "CCC"]  # its own for `day`, the old rows for `other_day`


# -- the workspace loads both code locations ----------------------------------------------------


def test_the_live_location_refuses_a_settings_file_that_is_not_live(tmp_path):
    env_file = tmp_path / ".env.live"
    env_file.write_text("TRADING_ENV=paper\nTRADING_BROKER=alpaca\n")
    run = subprocess.run([sys.executable, "-c", "import trading_pipeline.definitions_live"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "TRADING_LIVE_ENV_FILE": str(env_file),
                              "DAGSTER_HOME": str(tmp_path)})
    assert run.returncode != 0
    assert "must set TRADING_ENV=live (it says paper)" in run.stderr


def test_the_workspace_loads_paper_and_live_side_by_side(tmp_path):
    (tmp_path / "home").mkdir()
    live_file = tmp_path / ".env.live"
    live_file.write_text("TRADING_ENV=live\nTRADING_BROKER=alpaca\nAPCA_API_KEY_ID=FAKE\nAPCA_API_SECRET_KEY=FAKE\n")
    run = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "dagster"), "definitions", "validate",
         "-w", str(PROJECT_ROOT / "workspace.paper-live.yaml")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path / "home"),
             "TRADING_HOME": str(tmp_path / "home"), "TRADING_LIVE_ENV_FILE": str(live_file),
             "DAGSTER_DISABLE_TELEMETRY": "1"})
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "trading_pipeline_live" in output and "FAKE" not in output


# -- an emergency flatten of one account is never taken for the other's ---------------------------


def test_a_live_flatten_after_the_paper_flatten_of_the_same_session_is_sent(tmp_path):
    from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
    from trading_pipeline.services.emergency import FlattenKeys, emergency_stop

    ledger = Ledger(Warehouse(tmp_path / "warehouse.duckdb"))
    paper_fake, live_fake = FakeAlpaca(KEY, SECRET), FakeAlpaca(KEY, SECRET)
    with FakeAlpacaServer(paper_fake), FakeAlpacaServer(live_fake):
        for fake, paper in ((paper_fake, True), (live_fake, False)):
            fake.set_position("AAA", 10, 100.0)
            config = AlpacaConfig(KEY, SECRET, paper=paper, url_override=fake.url, timeout_seconds=1.0)
            with AlpacaBroker(config, sleep=lambda seconds: None) as broker:
                keys = FlattenKeys(trading_env="paper" if paper else "live", live_enabled=True, dry_run=False,
                                   confirmation=f"FLATTEN {broker.name}", account=broker.name)
                result = emergency_stop(broker, ledger, flatten=True, keys=keys)
                assert result.sent == ["AAA"], (broker.name, result)
    assert [r.body["side"] for r in live_fake.requests_to("POST", "/v2/orders")] == ["sell"]
    assert ledger.warehouse.scalar("select count(distinct broker) from ledger_orders") == 2
