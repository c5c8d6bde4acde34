"""A run that fails alerts whoever launched it: the UI, the daemon, or the shell (`make demo`,
`make sessions`, `dagster job execute`), whose runs carry no code location.

The sensor is evaluated with the context the daemon gives it (its code location and
repository); a test context without them would match shell runs by accident.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.execution.build_resources import wrap_resources_for_execution
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from trading_pipeline.definitions import build_definitions
from trading_pipeline.settings import TradingSettings
from trading_pipeline_tests.alerts.receivers import HttpReceiver

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_PATH = "/hooks/test-receiver"


def as_the_daemon_evaluates(sensor, defs, instance, cursor):
    with dg.SensorEvaluationContext(
        instance_ref=None, instance=instance, cursor=cursor, repository_name="__repository__",
        repository_def=defs.get_repository_def(), sensor_name=sensor.name,
        resources=wrap_resources_for_execution(defs.resources),
        code_location_origin=InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="trading_pipeline.definitions"), location_name="trading_pipeline"),
    ) as context:
        return sensor.evaluate_tick(context)


def test_a_run_that_failed_in_the_shell_raises_an_alert(monkeypatch, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    unusable = tmp_path / "not_a_warehouse.duckdb"
    unusable.mkdir()  # a folder where the warehouse file should be: the run fails
    with HttpReceiver() as receiver:
        monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", receiver.url(WEBHOOK_PATH))
        defs = build_definitions(TradingSettings(_env_file=None, home=tmp_path / "state", env="local"))
        sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            first = as_the_daemon_evaluates(sensor, defs, instance, cursor=None)  # sets the cursor

            config = tmp_path / "clear.yaml"
            config.write_text(json.dumps({"ops": {"clear_kill_switch": {"config": {"reason": "checked"}}}}))
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
            env.update(DAGSTER_HOME=str(home), TRADING_WAREHOUSE_PATH=str(unusable))
            shell = subprocess.run(
                [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "trading_pipeline.definitions",
                 "-j", "clear_kill_switch_job", "-c", str(config)],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert shell.returncode != 0
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.FAILURE
            assert run.remote_job_origin is None  # a shell run: no code location on it

            as_the_daemon_evaluates(sensor, defs, instance, cursor=first.cursor)
    (request,) = receiver.received
    body = request.body
    assert (body["kind"], body["severity"]) == ("run_failure", "critical")
    assert body["title"] == "run of clear_kill_switch_job failed at clear_kill_switch"
    assert body["details"]["run_id"] == run.run_id


def test_a_run_that_failed_in_process_raises_an_alert_once(monkeypatch, tmp_path):
    @dg.op
    def place_orders():
        raise RuntimeError("broker refused the session")

    @dg.job
    def flaky_job():
        place_orders()

    with HttpReceiver() as receiver:
        monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", receiver.url(WEBHOOK_PATH))
        defs = build_definitions(TradingSettings(_env_file=None, home=tmp_path / "state", env="local"))
        sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
        with dg.instance_for_test() as instance:
            first = as_the_daemon_evaluates(sensor, defs, instance, cursor=None)
            result = flaky_job.execute_in_process(instance=instance, raise_on_error=False)  # like make sessions
            second = as_the_daemon_evaluates(sensor, defs, instance, cursor=first.cursor)
            as_the_daemon_evaluates(sensor, defs, instance, cursor=second.cursor)  # nothing new
    (request,) = receiver.received
    assert request.body["details"]["run_id"] == result.run_id
    assert request.body["details"]["error"] == "RuntimeError: broker refused the session"
