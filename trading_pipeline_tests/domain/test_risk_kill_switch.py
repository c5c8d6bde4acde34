"""The automatic kill switch on hand-made equity curves."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.risk import KillSwitchRules, evaluate_kill_switch

SESSIONS = sessions_between(date(2024, 1, 2), date(2024, 12, 31))


def history(*equity: float) -> pl.DataFrame:
    return pl.DataFrame({"session": SESSIONS[:len(equity)], "equity": list(equity)})


def test_a_crash_session_of_minus_six_percent_engages_with_the_daily_loss_reason():
    decision = evaluate_kill_switch(history(100_000, 101_000, 94_940))  # 94,940 / 101,000 = -6 %

    assert decision.engage
    assert decision.daily_loss == pytest.approx(0.06)
    assert decision.drawdown == pytest.approx(0.06)  # the high is 101,000 too
    (reason,) = decision.reasons
    assert reason.startswith("daily loss 6.00% on 2024-01-04")
    assert "101,000.00 on 2024-01-03" in reason and "max_daily_loss limit of 5.00%" in reason


def test_a_loss_at_the_limit_does_not_engage_but_one_beyond_it_does():
    assert not evaluate_kill_switch(history(100.0, 95.0)).engage  # exactly 5 %: not exceeded
    assert evaluate_kill_switch(history(100.0, 94.99)).engage


def test_a_slow_thirty_percent_decline_engages_by_drawdown_only():
    equity = [100_000 * 0.99 ** i for i in range(36)]  # -1 % a day: 0.99^35 = 0.7034, -29.66 %
    decision = evaluate_kill_switch(history(*equity))

    assert decision.engage
    assert decision.daily_loss == pytest.approx(0.01)
    assert decision.drawdown == pytest.approx(1 - 0.99 ** 35)
    (reason,) = decision.reasons
    assert reason.startswith("drawdown 29.66% on ")
    assert "high of 100,000.00 on 2024-01-02" in reason and "max_drawdown limit of 25.00%" in reason


def test_a_recovery_does_not_engage():
    # down 30 % from the high, then back to 20 % below it with a +8 % session
    decision = evaluate_kill_switch(history(100_000, 90_000, 80_000, 70_000, 74_000, 80_000))

    assert not decision.engage and decision.reasons == ()
    assert decision.daily_loss == 0.0  # a gain is no loss
    assert decision.drawdown == pytest.approx(0.20)


def test_both_breaches_give_both_reasons_and_tighter_rules_apply():
    decision = evaluate_kill_switch(history(100.0, 80.0, 70.0))  # -12.5 % today, -30 % from high
    assert [r.split()[0] for r in decision.reasons] == ["daily", "drawdown"]

    tight = KillSwitchRules(max_daily_loss=0.01, max_drawdown=0.02)
    (reason,) = evaluate_kill_switch(history(100.0, 98.5), tight).reasons
    assert reason.startswith("daily loss 1.50%")
    assert not evaluate_kill_switch(history(100.0, 98.5)).engage


def test_a_single_session_has_no_daily_loss_and_a_wiped_out_account_engages():
    single = evaluate_kill_switch(history(100.0))
    assert (single.engage, single.daily_loss, single.drawdown) == (False, None, 0.0)

    wiped = evaluate_kill_switch(history(100.0, -5.0))
    assert wiped.engage and "is not positive" in wiped.reasons[0]


@pytest.mark.parametrize(("frame", "message"), [
    (pl.DataFrame({"session": [date(2024, 1, 2)]}), r"lacks the columns \['equity'\]"),
    (pl.DataFrame({"session": [], "equity": []}), "is empty"),
    (pl.DataFrame({"session": [date(2024, 1, 3), date(2024, 1, 2)], "equity": [1.0, 1.0]}),
     "strictly ascending, but 2024-01-02 follows 2024-01-03"),
    (pl.DataFrame({"session": [date(2024, 1, 2), date(2024, 1, 2)], "equity": [1.0, 1.0]}),
     "strictly ascending"),
    (pl.DataFrame({"session": [date(2024, 1, 2)], "equity": [float("nan")]}), "finite amount"),
])
def test_bad_histories_are_refused_with_the_reason(frame, message):
    with pytest.raises(ValueError, match=message):
        evaluate_kill_switch(frame)


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="max_drawdown is a fraction"):
        KillSwitchRules(max_drawdown=25)
