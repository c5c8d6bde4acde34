"""The emergency stop has its own lane: the run queue never holds it behind daily runs, and
launched from the shell it engages the switch while another process is writing the warehouse."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from trading_pipeline.defs.jobs import (
    DAILY_LANE_TAG,
    clear_kill_switch_job,
    daily_trading_job,
    emergency_stop_job,
)
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.defs.test_emergency_kill_switch_store import warehouse_locked_by_another_process

REPO = Path(__file__).resolve().parents[2]


def instance_with_the_projects_dagster_yaml(tmp_path) -> dg.DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def queued(instance, job, tags, status=dg.DagsterRunStatus.QUEUED, run_config=None):
    """A run as the UI or the daemon submits it: queued runs carry where their code lives."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="trading_pipeline.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
    return instance.create_run_for_job(job, status=status, tags=tags, remote_job_origin=origin,
                                       run_config=run_config)


def test_the_run_queue_starts_an_emergency_stop_while_daily_runs_wait_their_turn(tmp_path):
    from trading_pipeline.definitions import build_definitions
    from trading_pipeline.settings import TradingSettings

    defs = build_definitions(TradingSettings(_env_file=None, home=tmp_path / "state"))
    daily = defs.resolve_job_def(daily_trading_job.name)
    with instance_with_the_projects_dagster_yaml(tmp_path) as instance:
        running = queued(instance, daily, {**DAILY_LANE_TAG, "dagster/partition": "2024-05-01"},
                         status=dg.DagsterRunStatus.STARTED)
        backfill = [queued(instance, daily, {**DAILY_LANE_TAG, "dagster/partition": day})
                    for day in ("2024-05-02", "2024-05-03")]
        stop = queued(instance, defs.resolve_job_def(emergency_stop_job.name), emergency_stop_job.tags)
        clear = queued(instance, defs.resolve_job_def(clear_kill_switch_job.name), clear_kill_switch_job.tags,
                       run_config={"ops": {"clear_kill_switch": {"config": {"reason": "checked"}}}})
        # The daemon's own choice of what to launch now (no run launcher needed to ask it).
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
        assert [run.run_id for run in chosen] == [stop.run_id, clear.run_id]
        assert running.run_id and all(run.run_id not in {r.run_id for r in chosen} for run in backfill)

        instance.report_run_canceled(running)  # the daily lane is free: one backfill run starts
        chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
        assert [run.run_id for run in chosen] == [stop.run_id, clear.run_id, backfill[0].run_id]


def test_from_the_shell_the_switch_is_engaged_within_seconds_while_the_warehouse_is_busy(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    warehouse_path = home / "warehouse.duckdb"
    Ledger(Warehouse(warehouse_path)).kill_switch_engaged("simulator")  # as any daily run leaves it
    config = tmp_path / "emergency_stop.yaml"
    config.write_text(json.dumps({"ops": {"engage_kill_switch_and_cancel": {"config": {"reason": "desk call"}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
    env.update(DAGSTER_HOME=str(home), TRADING_UNIVERSE_SIZE="6")
    dagster = Path(sys.executable).parent / "dagster"
    with warehouse_locked_by_another_process(warehouse_path):
        launched, launched_at = time.perf_counter(), datetime.now(UTC)
        stop = subprocess.Popen([str(dagster), "job", "execute", "-m", "trading_pipeline.definitions",
                                 "-j", "emergency_stop_job", "-c", str(config)],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        engaged, seconds = (False, None), None
        while time.perf_counter() - launched < 120 and stop.poll() is None:
            engaged = Ledger(Warehouse(warehouse_path)).kill_switch_engaged("simulator")
            if engaged[0]:
                seconds = time.perf_counter() - launched
                break
            time.sleep(0.1)
        # still locked here: the switch took effect without the warehouse
    output, _ = stop.communicate(timeout=300)
    assert engaged == (True, "desk call"), output[-3000:]
    assert stop.returncode == 0, output[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        step_started = next(e.timestamp for e in instance.all_logs(run.run_id)
                            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START")
    assert run.job_name == "emergency_stop_job" and run.status == dg.DagsterRunStatus.SUCCESS  # cancels once free
    print(f"emergency_stop_job launched from the shell: kill switch visible after {seconds:.1f} s while "
          f"another process held the warehouse ({step_started - launched_at.timestamp():.0f} s of it before "
          "the step started: Python, Dagster and the code location loading)")
