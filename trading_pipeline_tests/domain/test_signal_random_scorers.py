"""The signal gate's random no-skill scorers: random linear combinations of the features'
within-session ranks, scored on the gate's sessions. Their mean ICs' spread is how far a score
that learnt nothing wanders on this window, factor leans included; it floors the gate's error."""

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.model.signal import (
    SignalRules,
    daily_signal_series,
    newey_west_t_stat,
    random_scorer_daily_ics,
    random_scorer_means,
    signal_test,
)
from trading_pipeline.domain.model.training import train_model
from trading_pipeline.domain.model.validation import daily_information_coefficients
from trading_pipeline_tests.domain.conftest import training_frames

SESSIONS, SYMBOLS = 250, 60
FEATURES = ("paying_factor", "quiet_a", "quiet_b")


def leaning_window(seed: int = 0) -> pl.DataFrame:
    """Out-of-sample rows where one real factor pays all window long (forward returns lean on
    it), and a no-skill model that happens to lean on that factor: a model that learnt nothing
    from its training labels, yet scores a steady rank IC here. Its control leans elsewhere."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (SESSIONS * SYMBOLS, len(FEATURES)))
    forward = 0.15 * features[:, 0] + rng.normal(0, 1, SESSIONS * SYMBOLS)
    return pl.DataFrame({
        "session": np.repeat(np.arange(SESSIONS), SYMBOLS), "symbol": np.tile(np.arange(SYMBOLS), SESSIONS),
        "forward_return": forward, **{name: features[:, j] for j, name in enumerate(FEATURES)},
        "prediction": features[:, 0] + rng.normal(0, 1, SESSIONS * SYMBOLS),
        "control_prediction": features[:, 1] + rng.normal(0, 1, SESSIONS * SYMBOLS)})


def test_each_scorer_is_the_rank_ic_of_its_random_combination_of_ranks():
    rows = leaning_window().with_columns(  # missing values rank at the session's middle
        pl.when(pl.col("symbol") == 3).then(None).otherwise(pl.col("quiet_a")).alias("quiet_a"))
    ics = random_scorer_daily_ics(rows, FEATURES, scorers=30, seed=4)
    weights = np.random.default_rng(4).standard_normal((len(FEATURES), 30))
    ranks = rows.select(((pl.col(c).rank() - 0.5) / pl.col(c).count() - 0.5).over("session").fill_null(0.0)
                        for c in FEATURES).to_numpy()
    for j in (0, 17, 29):
        scored = rows.select("session", "forward_return").with_columns(prediction=ranks @ weights[:, j])
        expected = daily_information_coefficients(scored)["rank_ic"].to_numpy()
        assert ics[f"scorer_{j}"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert random_scorer_means(ics, ics["session"]) == pytest.approx(ics.drop("session").mean().row(0))


def test_a_no_skill_model_leaning_on_a_paying_factor_is_refused():
    rows = leaning_window()
    daily = daily_signal_series(rows)
    # Newey-West alone sees a steady edge over the control and would accept it
    assert newey_west_t_stat((daily["rank_ic"] - daily["control"]).to_numpy(), 5) > 4
    assert signal_test(rows, rules=SignalRules(random_scorers=0)).passed
    verdict = signal_test(rows, scorer_ics=random_scorer_daily_ics(rows, FEATURES, 200))
    # random directions in these three features wander as far: no proof of skill
    assert not verdict.passed and verdict.t_stat < 2, verdict.reason
    assert "random no-skill scorers" in verdict.reason and verdict.scorer_rank_ic_sd > 0.02


def test_without_scorers_the_gate_is_as_it_was():
    rows = leaning_window(seed=2)
    daily = daily_signal_series(rows)
    assert signal_test(rows).t_stat == pytest.approx(
        newey_west_t_stat((daily["rank_ic"] - daily["control"]).to_numpy(), 5))


@pytest.mark.parametrize("bad", [1, -1, 2.5, True])
def test_random_scorers_must_be_none_or_a_spread(bad):
    with pytest.raises(ValueError, match="random scorers"):
        SignalRules(random_scorers=bad)


@pytest.fixture(scope="module")
def planted():
    return training_frames(n_symbols=30, scored_sessions=300)


def test_a_planted_signal_passes_with_the_scorers_on_by_default(planted):
    features, labels = planted
    assert SignalRules().random_scorers == 200
    result = train_model(features, labels, n_folds=3, seed=1)
    assert result.signal.passed, result.signal.reason
    assert result.signal.scorer_rank_ic_sd > 0 and "200 random no-skill scorers" in result.signal.reason
    assert result.signal.metrics()["signal_scorer_rank_ic_sd"] == result.signal.scorer_rank_ic_sd
    # off: the gate against the control alone; the scorers only ever lower the verdict's t
    alone = train_model(features, labels, n_folds=3, seed=1, signal_rules=SignalRules(random_scorers=0))
    assert np.isnan(alone.signal.scorer_rank_ic_sd) and "random" not in alone.signal.reason
    assert "signal_scorer_rank_ic_sd" not in alone.signal.metrics()
    assert result.signal.t_stat <= alone.signal.t_stat
    assert result.signal.rank_ic == alone.signal.rank_ic


def test_the_setting_reaches_the_gate():
    from trading_pipeline.settings import TradingSettings

    options = TradingSettings(_env_file=None, signal_random_scorers=300).model.training_options()
    assert options.signal == SignalRules(random_scorers=300)
    assert TradingSettings(_env_file=None).model.training_options().signal.random_scorers == 200
