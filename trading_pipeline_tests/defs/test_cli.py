"""`dagster job execute` from the shell, in a subprocess, on a temporary DAGSTER_HOME."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]


def test_dagster_job_execute_runs_one_session(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
    env.update(DAGSTER_HOME=str(home), TRADING_UNIVERSE_SIZE="10", TRADING_HISTORY_START="2023-01-03",
               TRADING_TRAIN_WINDOW_SESSIONS="120", TRADING_TOP_K="3",
               TRADING_WITHOUT_SIGNAL="trade")  # 10 symbols: too few for the signal gate to judge
    dagster = Path(sys.executable).parent / "dagster"
    completed = subprocess.run(
        [str(dagster), "job", "execute", "-m", "trading_pipeline.definitions", "-j", "daily_trading_job",
         "--tags", json.dumps({"dagster/partition": "2024-02-14"})],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # one line per step on the terminal (dagster.yaml); Dagster's DEBUG events only in the run's log
    assert re.search(r"^\s+account_view\s+ok\s", completed.stderr, re.MULTILINE), completed.stderr[-3000:]
    assert " - DEBUG - " not in completed.stdout + completed.stderr
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        orders = con.execute("select count(*), min(session), max(session) from ledger_orders").fetchone()
    finally:
        con.close()
    assert orders[0] > 0 and str(orders[1]) == str(orders[2]) == "2024-02-14"
    assert (home / "mlflow.db").exists()
    # the run belongs to the code location: the UI's job page lists runs by this label
    import dagster as dg

    from trading_pipeline.defs.location import CODE_LOCATION_TAGS

    with dg.DagsterInstance.from_config(str(home)) as instance:
        listed = instance.get_runs(dg.RunsFilter(job_name="daily_trading_job", tags=CODE_LOCATION_TAGS))
    assert len(listed) == 1


def test_unusable_environment_says_what_to_set_without_a_stack_trace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
    env.update(DAGSTER_HOME=str(tmp_path), TRADING_ENV="paper")
    dagster = Path(sys.executable).parent / "dagster"
    completed = subprocess.run(
        [str(dagster), "job", "execute", "-m", "trading_pipeline.definitions", "-j", "daily_trading_job",
         "--tags", json.dumps({"dagster/partition": "2024-02-14"})],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "TRADING_ENV=paper needs a broker: set TRADING_BROKER=alpaca or ibkr" in completed.stderr
    assert "Traceback" not in completed.stderr
