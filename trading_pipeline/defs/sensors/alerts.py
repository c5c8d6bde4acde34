"""Alerts on failed runs: the run's job, partition, failed steps and error, to every alert channel."""

from datetime import date

import dagster as dg

from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.resources import AlertsResource

# Failures of jobs that decide or move money page someone; the others can wait for a look.
CRITICAL_JOBS = frozenset({"daily_trading_job", "emergency_stop_job", "clear_kill_switch_job"})


def step_error(event: dg.DagsterEvent) -> str:
    """The op's own error ("RuntimeError: ..."), not Dagster's wrapper around it."""
    error = event.step_failure_data.error if event.step_failure_data else None
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip()[:500] if error else ""


def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    failed_steps = [e.step_key for e in step_failures if e.step_key]
    partition = run.tags.get("dagster/partition")
    try:
        session = date.fromisoformat(partition) if partition else None
    except ValueError:  # a partition that is not a session date: keep it in the details only
        session = None
    details = {"job": run.job_name, "run_id": run.run_id, "failed_steps": ", ".join(failed_steps) or "launch",
               "error": next(filter(None, map(step_error, step_failures)), None)
               or context.failure_event.message or "no message"}
    if partition:
        details["partition"] = partition
    return Alert(
        kind=AlertKind.RUN_FAILURE,
        severity=Severity.CRITICAL if run.job_name in CRITICAL_JOBS else Severity.WARNING,
        title=f"run of {run.job_name} failed at {details['failed_steps']}",
        details=details,
        session=session,
    )


# Every run in the instance, not only those launched through this code location: runs started
# from the shell (`make demo`, `make sessions`, `dagster job execute`) carry no code location,
# and a sensor watching only its own location never sees them fail.
@dg.run_failure_sensor(
    monitor_all_code_locations=True,
    description="Send an alert (log, webhook, e-mail) for every failed run, however it was launched "
                "(UI, schedule, sensor or shell), naming the job and steps.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    # a channel that fails is logged by `send` and never fails the sensor's tick
    alerts.send(run_failure_alert(context), log=context.log)
