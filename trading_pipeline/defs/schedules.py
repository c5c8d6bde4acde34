"""The daily run after the close on NYSE sessions only, and weekly training."""


import dagster as dg

from trading_pipeline.defs.jobs import daily_trading_job, training_job
from trading_pipeline.domain.calendar import is_session

NEW_YORK = "America/New_York"


@dg.schedule(job=daily_trading_job, cron_schedule="15 18 * * 1-5", execution_timezone=NEW_YORK,
             description="18:15 New York on every NYSE session: run the daily loop for that session.")
def daily_trading_schedule(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.date()
    if not is_session(day):
        return dg.SkipReason(f"{day} is not an NYSE session")
    return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())


weekly_training_schedule = dg.ScheduleDefinition(
    name="weekly_training_schedule",
    job=training_job,
    cron_schedule="0 6 * * 6",
    execution_timezone=NEW_YORK,
    description="Saturday 06:00 New York: train a challenger on the week's data.",
)

all_schedules = [daily_trading_schedule, weekly_training_schedule]
