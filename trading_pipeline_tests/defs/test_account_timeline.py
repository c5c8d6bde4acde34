"""An account is one present that moves forward, whoever launches the run.

Three sessions run through daily_trading_job on a real Dagster instance and warehouse; then
the past is re-run, an older session is asked for, the account's lock is held by someone
else, and a session that has not closed is asked for.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import date, datetime

import pytest

from trading_pipeline.defs.partitions import build_sessions_partitions
from trading_pipeline.domain.calendar import NEW_YORK, SessionNotClosed, next_session, previous_session, require_closed
from trading_pipeline.storage.account_lock import AccountBusy, AccountLock
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.conftest import daily_sessions

D1 = date(2024, 5, 1)
D2 = next_session(D1)
D3 = next_session(D2)
RECORDED = ["ledger_orders", "ledger_order_events", "ledger_fills", "ledger_positions", "ledger_account",
            "session_plans", "plan_cancels", "risk_events", "kill_switch_events", "target_portfolio",
            "risk_checks", "submitted_orders", "reconciliation_breaks", "performance", "sim_orders",
            "sim_fills", "sim_positions", "sim_accounts"]


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    with daily_sessions(tmp_path_factory.mktemp("timeline"), (D1, D2, D3),
                        account_lock_wait_seconds=1) as run:
        assert all(result.success for result in run.results.values())
        yield {"settings": run.settings, "job": run.job, "instance": run.instance,
               "warehouse": Warehouse(run.settings.resolved_warehouse_path)}


def _recorded(warehouse: Warehouse) -> dict[str, list]:
    tables = {t for t in RECORDED if warehouse.table_exists(t)}
    assert {"session_plans", "ledger_account", "sim_orders"} <= tables
    return {t: sorted(warehouse.query(f"select * from {t}").rows(), key=repr) for t in tables}


def _run(account, session: date):
    return account["job"].execute_in_process(partition_key=session.isoformat(), instance=account["instance"],
                                             raise_on_error=False)


def _failure(result) -> str:
    """The error that stopped the run: a step's, or the resources' (checked before any step)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return event.step_failure_data.error.message
        if event.event_type_value == "RESOURCE_INIT_FAILURE":
            error = event.event_specific_data.error
            return "\n".join(filter(None, [error.message, error.cause.message if error.cause else None]))
    return ""


def test_rerunning_a_past_session_changes_no_recorded_row(account):
    before = _recorded(account["warehouse"])
    result = _run(account, D1)
    assert result.success
    assert _recorded(account["warehouse"]) == before
    orders = result.asset_materializations_for_node("submitted_orders")[0].metadata
    assert orders["read_only"].value is True
    reconciled = result.asset_materializations_for_node("reconciled_positions")[0].metadata
    assert reconciled["read_only"].value is True
    target = result.asset_materializations_for_node("target_portfolio")[0].metadata
    assert target["decided"].value.startswith("recorded earlier")


def test_an_older_session_the_account_never_traded_is_refused_by_name(account):
    before = _recorded(account["warehouse"])
    result = _run(account, previous_session(D1))
    assert not result.success
    message = _failure(result)
    assert "'simulator' has moved on to session " + D3.isoformat() in message
    assert "moves forward only" in message
    assert _recorded(account["warehouse"]) == before
    # refused before any step: not even the session's bars were written
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]


def _hold_lock(lock_dir: str, ready, release) -> None:
    lock = AccountLock(lock_dir, "simulator")
    lock.acquire(0, holder="another run")
    ready.set()
    release.wait(60)
    lock.release()


def test_a_second_run_of_the_same_account_waits_then_is_refused_with_a_message(account):
    before = _recorded(account["warehouse"])
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(account["settings"].home / "locks"), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        result = _run(account, next_session(D3))
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(30)
    assert not result.success
    message = _failure(result)
    assert "account 'simulator' is being traded by another run" in message and "another run" in message
    assert waited >= 1.0
    assert _recorded(account["warehouse"]) == before  # nothing was written by the refused run


def test_the_lock_lets_one_process_at_a_time_hold_an_account(tmp_path):
    lock = AccountLock(tmp_path, "alpaca-paper")
    lock.acquire(0, holder="first")
    second = AccountLock(tmp_path, "alpaca-paper")
    with pytest.raises(AccountBusy, match="first"):
        second.acquire(0.2)
    other_account = AccountLock(tmp_path, "alpaca-live")
    other_account.acquire(0)  # another account is not blocked
    lock.release()
    second.acquire(0)  # free again once released
    second.release()
    other_account.release()


def test_only_closed_sessions_are_partitions():
    partitions = build_sessions_partitions(date(2024, 6, 3))

    def last_at(text: str) -> str:
        return partitions.get_partition_keys(current_time=datetime.fromisoformat(text).replace(tzinfo=NEW_YORK))[-1]

    assert last_at("2024-07-03 12:00") == "2024-07-02"  # 07-03 is still trading
    assert last_at("2024-07-03 16:30") == "2024-07-03"
    assert last_at("2024-07-05 10:00") == "2024-07-03"  # 07-04 is a holiday; 07-05 has not closed
    assert last_at("2024-07-08 15:59") == "2024-07-05"  # the weekend and Monday before its close
    keys = partitions.get_partition_keys(current_time=datetime(2024, 12, 31, 20, tzinfo=NEW_YORK))
    assert "2024-07-04" not in keys and "2024-11-28" not in keys and "2024-06-08" not in keys


def test_a_session_that_has_not_closed_is_refused_naming_its_close():
    with pytest.raises(SessionNotClosed, match="closes at 2024-07-05 16:00"):
        require_closed(date(2024, 7, 5), now=datetime(2024, 7, 5, 10, tzinfo=NEW_YORK))
    with pytest.raises(SessionNotClosed, match="not an NYSE session"):
        require_closed(date(2024, 7, 4))
    require_closed(date(2024, 7, 5), now=datetime(2024, 7, 5, 16, 1, tzinfo=NEW_YORK))
