"""`make sessions` (cli run-sessions) checks everything a run needs before running anything."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from trading_pipeline.cli import main
from trading_pipeline.domain.calendar import latest_completed_session, next_session
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env from the project
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return tmp_path / "home"


def _sessions(start: date, end: date) -> list[str]:
    return ["run-sessions", "--start", start.isoformat(), "--end", end.isoformat()]


def test_a_session_that_has_not_closed_is_refused(home, capsys):
    future = next_session(latest_completed_session())
    assert main(_sessions(future, future)) == 2
    assert "has not closed yet" in capsys.readouterr().err


def test_a_session_before_the_first_partition_is_refused_naming_the_setting(home, capsys):
    assert main(_sessions(date(2021, 4, 20), date(2021, 4, 23))) == 2
    assert "TRADING_FIRST_SESSION=2022-01-03" in capsys.readouterr().err


def test_sessions_the_account_moved_past_are_refused_before_anything_runs(home, capsys):
    ledger = Ledger(Warehouse(TradingSettings(_env_file=None).resolved_warehouse_path))
    ledger.warehouse.execute(
        "insert into session_plans values ('simulator', 'daily_ml', ?, 'v1', 1e5, 1e5, '[]', '[]', null, ?)",
        [date(2024, 6, 3), datetime(2024, 6, 3, 22)])
    assert main(_sessions(date(2024, 5, 1), date(2024, 5, 31))) == 2
    err = capsys.readouterr().err
    assert "account 'simulator' has moved on to session 2024-06-03" in err
    assert "2024-05-01 .. 2024-05-31 were never traded by it" in err
    assert ledger.warehouse.scalar("select count(*) from ledger_orders") == 0
