"""The kill switch is read and written in a file beside the warehouse: it takes effect while
another process holds DuckDB's single write lock, and the warehouse catches up afterwards."""

import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime

import pytest

from trading_pipeline.storage.kill_switch_file import KillSwitchStore, store_directory
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

HOLD_LOCK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create table if not exists busy (x integer)")
con.execute("begin transaction")
con.execute("insert into busy values (1)")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.execute("commit")
con.close()
"""


@contextmanager
def warehouse_locked_by_another_process(path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def mirrored(warehouse, account):
    return warehouse.query("select engaged, reason, actor from kill_switch_events where account = ? "
                           "order by recorded_at", [account]).rows()


def test_an_engaged_switch_is_read_back_per_account_and_mirrored_into_the_warehouse(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    assert ledger.kill_switch_engaged("simulator") == (False, None)
    ledger.set_kill_switch("simulator", True, "manual stop", actor="desk")
    assert ledger.kill_switch_engaged("simulator") == (True, "manual stop")
    assert ledger.kill_switch_engaged("alpaca-paper") == (False, None)  # another account's switch
    ledger.set_kill_switch("simulator", False, "checked the broker", actor="desk")
    assert ledger.kill_switch_engaged("simulator") == (False, "checked the broker")
    history = ledger.kill_switch_history("simulator")
    assert history.select("engaged", "reason", "actor").rows() == [
        (True, "manual stop", "desk"), (False, "checked the broker", "desk")]
    assert mirrored(warehouse, "simulator") == history.select("engaged", "reason", "actor").rows()
    ledger.kill_switch_history("simulator")  # mirroring again adds nothing
    assert len(mirrored(warehouse, "simulator")) == 2


def test_the_switch_takes_effect_while_another_process_holds_the_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    ledger = Ledger(Warehouse(path))
    ledger.kill_switch_engaged("simulator")  # the account's file exists from here on
    with warehouse_locked_by_another_process(path):
        started = time.perf_counter()
        Ledger(Warehouse(path)).set_kill_switch("simulator", True, "manual stop", actor="desk")
        engaged = Ledger(Warehouse(path)).kill_switch_engaged("simulator")
        seconds = time.perf_counter() - started
        history = Ledger(Warehouse(path)).kill_switch_history("simulator")
    print(f"kill switch engaged and visible in {seconds:.2f} s with the warehouse locked")
    assert engaged == (True, "manual stop")
    assert history["reason"].to_list() == ["manual stop"]  # the file holds it meanwhile
    warehouse = Warehouse(path)
    assert mirrored(warehouse, "simulator") == []  # the warehouse could not be written then
    Ledger(warehouse).kill_switch_history("simulator")
    assert mirrored(warehouse, "simulator") == [(True, "manual stop", "desk")]


def test_a_warehouse_from_before_the_file_keeps_its_recorded_switch(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.execute("insert into kill_switch_events (recorded_at, engaged, reason, actor, account) "
                      "values (?, true, 'daily loss 6%', 'risk monitor', 'simulator')", [datetime(2024, 5, 2, 21)])
    assert not store_directory(warehouse.path).exists()
    ledger = Ledger(warehouse)
    assert ledger.kill_switch_engaged("simulator") == (True, "daily loss 6%")
    ledger.set_kill_switch("simulator", False, "reviewed", actor="desk")
    assert ledger.kill_switch_history("simulator")["reason"].to_list() == ["daily loss 6%", "reviewed"]
    assert len(mirrored(warehouse, "simulator")) == 2  # the adopted event is not copied twice


def test_an_event_still_being_written_is_not_read_half_way(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    ledger.set_kill_switch("simulator", True, "manual stop", actor="desk")
    path = KillSwitchStore(warehouse).path("simulator")
    with path.open("ab") as file:
        file.write(b'{"account": "simulator", "engaged": fal')  # a writer mid-append
    assert ledger.kill_switch_engaged("simulator") == (True, "manual stop")


def test_a_long_history_is_read_from_its_end(tmp_path):
    ledger = Ledger(Warehouse(tmp_path / "warehouse.duckdb"))
    for n in range(150):
        ledger.set_kill_switch("simulator", n % 2 == 0, f"event {n} " + "x" * 150, actor="desk")
    assert ledger.kill_switch_engaged("simulator") == (False, "event 149 " + "x" * 150)
    assert ledger.kill_switch_history("simulator").height == 150


def test_an_account_name_that_is_no_file_name_is_refused(tmp_path):
    ledger = Ledger(Warehouse(tmp_path / "warehouse.duckdb"))
    with pytest.raises(ValueError, match="not a usable account name"):
        ledger.set_kill_switch("../elsewhere", True, "stop", actor="desk")
    with pytest.raises(ValueError, match="a reason is required"):
        ledger.set_kill_switch("simulator", True, "  ", actor="desk")


def test_the_first_engagement_takes_effect_while_another_process_holds_the_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).execute("select 1")  # the warehouse exists, the switch's file does not yet
    with warehouse_locked_by_another_process(path):
        Ledger(Warehouse(path)).set_kill_switch("simulator", True, "manual stop", actor="desk")
        assert Ledger(Warehouse(path)).kill_switch_engaged("simulator") == (True, "manual stop")
    assert mirrored(Warehouse(path), "simulator") == []
    Ledger(Warehouse(path)).kill_switch_history("simulator")
    assert mirrored(Warehouse(path), "simulator") == [(True, "manual stop", "desk")]
