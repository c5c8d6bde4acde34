"""NYSE sessions (exchange_calendars XNYS): partitions, fills and schedules use only these."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
# The calendar starts here unless data reaches further back (`cover`): building it costs
# about 0.25 s from 2000 and grows with the range, so it reaches back only as far as needed.
DEFAULT_START = date(2000, 1, 3)
# exchange_calendars' XNYS holiday rules reach back to the mid-1800s; data before this is
# taken as a typo, not as history, so it cannot make the calendar build for minutes.
EARLIEST_START = date(1850, 1, 2)

_lock = threading.Lock()
_built: list[xcals.ExchangeCalendar] = []  # the current calendar; replaced only by an earlier start


def _calendar() -> xcals.ExchangeCalendar:
    if not _built:
        with _lock:
            if not _built:
                _built.append(xcals.get_calendar("XNYS", start=DEFAULT_START.isoformat()))
    return _built[-1]


def cover(first: date) -> None:
    """Make the calendar reach back to `first` (never before EARLIEST_START): data decides how
    far back sessions are known. The range only grows, so earlier answers stay true."""
    first = max(first, EARLIEST_START)
    if first >= _calendar().first_session.date():
        return
    with _lock:
        if first < _built[-1].first_session.date():
            # From the year's start, so data reaching a few days further back does not rebuild.
            _built.append(xcals.get_calendar("XNYS", start=date(first.year, 1, 1).isoformat()))
            del _built[:-1]


def known_range() -> tuple[date, date]:
    """The first and last session the calendar knows now (the last is about a year ahead)."""
    cal = _calendar()
    return cal.first_session.date(), cal.last_session.date()


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


@functools.lru_cache(maxsize=8192)  # a session's close never changes; the venue asks per order
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


class SessionNotClosed(ValueError):
    """A session whose close has not passed: nothing may be known or decided about it yet."""


def require_closed(day: date, now: datetime | None = None) -> None:
    """Refuse a day that is not a session, or a session whose close has not passed at `now`."""
    if not is_session(day):
        raise SessionNotClosed(f"{day} is not an NYSE session (weekend or exchange holiday)")
    close = session_close(day)
    now = now or datetime.now(tz=NEW_YORK)
    if now < close:
        raise SessionNotClosed(
            f"session {day} has not closed yet: it closes at {close.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}; "
            f"the latest completed session is {latest_completed_session(now)}")
