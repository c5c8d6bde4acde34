"""Daily partitions on NYSE sessions only (weekends and exchange holidays excluded)."""


from datetime import date, datetime, timedelta

import dagster as dg

from trading_pipeline.domain.calendar import holidays_between

FIRST_SESSION = date(2022, 1, 3)
TIMEZONE = "America/New_York"


def _build() -> dg.DailyPartitionsDefinition:
    horizon = date.today() + timedelta(days=365)
    holidays = [datetime.combine(d, datetime.min.time()) for d in holidays_between(FIRST_SESSION, horizon)]
    return dg.DailyPartitionsDefinition(
        start_date=FIRST_SESSION.isoformat(),
        timezone=TIMEZONE,
        # Session D's partition opens on D itself: the run starts after D's close.
        end_offset=1,
        exclusions=["0 0 * * 6", "0 0 * * 0", *holidays],
    )


sessions_partitions = _build()


def session_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
