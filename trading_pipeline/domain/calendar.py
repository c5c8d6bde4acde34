"""NYSE sessions (exchange_calendars XNYS): partitions, fills and schedules use only these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")


@lru_cache(maxsize=1)
def _calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start="2000-01-03")


def is_session(day: date) -> bool:
    return bool(_calendar().is_session(pd.Timestamp(day)))


def sessions_between(start: date, end: date) -> list[date]:
    """Sessions from `start` to `end`, both included."""
    if end < start:
        return []
    cal = _calendar()
    start = max(start, cal.first_session.date())
    end = min(end, cal.last_session.date())
    return [ts.date() for ts in cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))]


def next_session(day: date) -> date:
    """The first session strictly after `day`."""
    cal = _calendar()
    if is_session(day):
        return cal.next_session(pd.Timestamp(day)).date()
    return cal.date_to_session(pd.Timestamp(day), direction="next").date()


def previous_session(day: date) -> date:
    """The last session strictly before `day`."""
    cal = _calendar()
    if is_session(day):
        return cal.previous_session(pd.Timestamp(day)).date()
    return cal.date_to_session(pd.Timestamp(day), direction="previous").date()


def sessions_back(end: date, count: int) -> list[date]:
    """The last `count` sessions up to and including `end` (if `end` is a session)."""
    cal = _calendar()
    end_session = end if is_session(end) else previous_session(end)
    idx = cal.sessions.get_loc(pd.Timestamp(end_session))
    start_idx = max(0, idx - count + 1)
    return [ts.date() for ts in cal.sessions[start_idx : idx + 1]]


def session_close(day: date) -> datetime:
    return _calendar().session_close(pd.Timestamp(day)).to_pydatetime()


def session_open(day: date) -> datetime:
    return _calendar().session_open(pd.Timestamp(day)).to_pydatetime()


def latest_completed_session(now: datetime | None = None) -> date:
    """The newest session whose close has passed at `now` (default: the current time)."""
    now = now or datetime.now(tz=NEW_YORK)
    today = now.astimezone(NEW_YORK).date()
    if is_session(today) and now >= session_close(today):
        return today
    return previous_session(today)


def holidays_between(start: date, end: date) -> list[date]:
    """Weekdays in the range that are not sessions (holidays and special closures)."""
    sessions = set(sessions_between(start, end))
    days = pd.bdate_range(start, end)
    return [d.date() for d in days if d.date() not in sessions]


AFTER_CLOSE = time(18, 15)


def trailing_unbroken(days: Sequence[date]) -> list[date]:
    """The newest run of `days` (sorted, distinct sessions) that skips no session: after a
    missed session what was held through it is unknown, so a comparison starts again."""
    start = len(days) - 1
    while start > 0 and next_session(days[start - 1]) == days[start]:
        start -= 1
    return list(days[max(start, 0):])
