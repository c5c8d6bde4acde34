"""Alerts on failed runs."""


import dagster as dg


@dg.run_failure_sensor(description="Log an alert for every failed run, naming the job and step.")
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    failed_steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    message = (f"ALERT: run {context.dagster_run.run_id} of {context.dagster_run.job_name} failed"
               f" at {', '.join(failed_steps) or 'launch'}: {context.failure_event.message}")
    context.log.error(message)
