"""Champion or challenger: both judged on the same recent out-of-sample sessions."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.model import SelectionRules, compare_on_recent_window

START = date(2024, 1, 1)


def scores(n_sessions: int, skill: float, seed: int, first: int = 0) -> pl.DataFrame:
    """Scores whose daily rank correlation with the returns grows with `skill`."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in range(first, first + n_sessions):
        returns = np.random.default_rng(day).normal(size=30)  # same returns for every model
        score = skill * returns + rng.normal(size=30)
        rows += [(START + timedelta(days=day), f"S{i:02d}", float(score[i]), float(returns[i]))
                 for i in range(30)]
    return pl.DataFrame(rows, schema=["session", "symbol", "score", "forward_return"], orient="row")


def compare(new, old, **rules):
    return compare_on_recent_window(new, old, SelectionRules(**rules),
                                    challenger_name="v2", champion_name="v1")


def test_a_better_challenger_wins_and_a_worse_one_does_not():
    strong, weak = scores(80, 1.0, seed=1), scores(80, 0.1, seed=2)
    won = compare(strong, weak, window=60, margin=0.01, min_sessions=20)
    assert won.promote and won.sessions == 60
    assert won.challenger_rank_ic > won.champion_rank_ic + 0.01
    assert "v2 rank IC" in won.reason and "beats v1's" in won.reason
    lost = compare(weak, strong, window=60, margin=0.01, min_sessions=20)
    assert not lost.promote and "does not beat" in lost.reason


def test_the_margin_keeps_an_equal_champion():
    same = scores(40, 0.5, seed=3)
    verdict = compare(same, same, window=40, margin=0.0, min_sessions=10)
    assert verdict.challenger_rank_ic == pytest.approx(verdict.champion_rank_ic)
    assert not verdict.promote  # a tie is not a win


def test_only_the_sessions_both_have_count_and_only_the_most_recent_window():
    # the champion was great early, useless later; the challenger only has the later sessions
    champion = pl.concat([scores(50, 3.0, seed=4), scores(50, 0.0, seed=5, first=50)])
    challenger = scores(50, 0.4, seed=6, first=50)
    verdict = compare(challenger, champion, window=30, margin=0.0, min_sessions=10)
    assert verdict.sessions == 30
    assert verdict.first_session == START + timedelta(days=70)
    assert verdict.last_session == START + timedelta(days=99)
    assert verdict.promote


def test_too_few_shared_sessions_keep_the_champion_and_say_why():
    verdict = compare(scores(10, 2.0, seed=7, first=100), scores(120, 0.0, seed=8),
                      window=60, margin=0.0, min_sessions=20)
    assert not verdict.promote and verdict.sessions == 10
    assert "fewer than the 20 needed" in verdict.reason


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="forward_return"):
        compare(scores(5, 1, 1).drop("forward_return"), scores(5, 1, 1), window=5, min_sessions=1)
    with pytest.raises(ValueError, match="margin"):
        SelectionRules(margin=-0.1)
