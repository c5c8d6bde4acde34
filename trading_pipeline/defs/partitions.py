"""One partition per NYSE session that has closed: weekends, exchange holidays and sessions
still open (or not yet begun) do not exist.

Each partition is the window from D's midnight to D's 16:00 close in New York, so Dagster
lists D only once that window has ended (`end_offset=0`): "Latest" in the UI is the last
completed session. The half of the day after the close is excluded, as are holidays. An early
close (13:00) makes D appear at 16:00, three hours late, which is on the safe side.
"""

from datetime import date, datetime, timedelta

import dagster as dg

from trading_pipeline.domain.calendar import holidays_between
from trading_pipeline.settings import DataSettings, SettingsError, TradingSettings

TIMEZONE = "America/New_York"
# A tick at each session's start and close; the windows from the close are excluded below.
_CRON = "0 0,16 * * 1-5"
_AFTER_CLOSE = "0 16 * * 1-5"


def first_session() -> date:
    """TRADING_FIRST_SESSION: partitions start here (read when the code location loads)."""
    try:
        return TradingSettings().data.first_session
    except SettingsError:  # build_definitions reports every bad setting, without a stack trace
        return DataSettings.model_fields["first_session"].default


def build_sessions_partitions(start: date, horizon_days: int = 400) -> dg.TimeWindowPartitionsDefinition:
    horizon = date.today() + timedelta(days=horizon_days)
    holidays = [datetime.combine(d, datetime.min.time()) for d in holidays_between(start, horizon)]
    return dg.TimeWindowPartitionsDefinition(
        start=datetime.combine(start, datetime.min.time()),
        cron_schedule=_CRON,
        fmt="%Y-%m-%d",
        timezone=TIMEZONE,
        end_offset=0,
        exclusions=[_AFTER_CLOSE, *holidays],
    )


sessions_partitions = build_sessions_partitions(first_session())


def session_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
