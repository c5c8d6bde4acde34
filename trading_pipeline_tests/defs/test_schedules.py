from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from trading_pipeline.defs.schedules import daily_trading_schedule

NY = ZoneInfo("America/New_York")


def evaluate(when: datetime):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        return daily_trading_schedule(context)


def test_runs_the_session_after_its_close():
    request = evaluate(datetime(2024, 3, 28, 18, 15, tzinfo=NY))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2024-03-28"


def test_skips_exchange_holidays():
    skipped = evaluate(datetime(2024, 3, 29, 18, 15, tzinfo=NY))  # Good Friday
    assert isinstance(skipped, dg.SkipReason) and "not an NYSE session" in skipped.skip_message
