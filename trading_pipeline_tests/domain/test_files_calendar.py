"""The session calendar reaches back as far as the data does (issue: pre-2000 rows refused)."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain import calendar
from trading_pipeline.domain.market import BarValidationError, validate_bars


def test_cover_extends_the_calendar_back_and_keeps_later_answers():
    before = calendar.sessions_between(date(2024, 3, 1), date(2024, 3, 8))
    calendar.cover(date(1999, 11, 18))
    first, last = calendar.known_range()
    assert first <= date(1999, 11, 18) and last >= date(2024, 12, 31)
    assert calendar.is_session(date(1999, 11, 18))  # a Thursday
    assert not calendar.is_session(date(1999, 11, 25))  # Thanksgiving 1999
    assert calendar.next_session(date(1999, 12, 31)) == date(2000, 1, 3)
    assert calendar.sessions_between(date(2024, 3, 1), date(2024, 3, 8)) == before


def test_bars_before_2000_validate_once_the_data_reaches_there():
    frame = pl.DataFrame({
        "session": [date(1987, 10, 19), date(1987, 10, 20)], "symbol": ["IBM", "IBM"],
        "open": [10.0, 8.0], "high": [10.5, 9.0], "low": [7.5, 7.0], "close": [8.0, 8.5],
        "volume": [1e6, 2e6],
    })
    assert validate_bars(frame, "1987")["session"].to_list() == [date(1987, 10, 19), date(1987, 10, 20)]


def test_a_date_before_the_exchange_rules_is_a_typo_not_history():
    frame = pl.DataFrame({
        "session": [date(1024, 3, 4)], "symbol": ["IBM"], "open": [1.0], "high": [1.0],
        "low": [1.0], "close": [1.0], "volume": [1.0],
    })
    with pytest.raises(BarValidationError, match="date 1024-03-04 is outside the XNYS calendar"):
        validate_bars(frame, "typo")
