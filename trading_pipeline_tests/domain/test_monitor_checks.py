"""The monitor's daily-loss check is about the session being judged: one bad day raises one
alert, on that day, not one every session after it."""

from datetime import date, timedelta

import polars as pl

from trading_pipeline.domain.monitor import MonitorThresholds, evaluate_track_record


def track(equities: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"session": [date(2024, 1, 2) + timedelta(days=i) for i in range(len(equities))],
                         "equity": equities})


def daily_loss(equities: list[float]):
    frame = track(equities)
    checks = evaluate_track_record(frame, frame, -0.1, MonitorThresholds())
    return next(c for c in checks if c.name == "daily_loss")


def test_a_bad_day_breaches_on_that_day_only():
    on_the_day = daily_loss([100.0, 101.0, 96.0])  # -4.95 %
    assert on_the_day.breached and "this session -4.95%" in on_the_day.detail
    after = daily_loss([100.0, 101.0, 96.0, 96.5, 97.0])
    assert not after.breached and "worst of the track -4.95%" in after.detail
