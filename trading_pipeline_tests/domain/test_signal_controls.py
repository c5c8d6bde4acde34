"""The signal gate against several shuffled-label controls: the model faces their mean daily rank
IC, so one control's chance tilt no longer decides the verdict alone; each control is its own
shuffle and seeds; a noise model is still refused."""

import numpy as np
import polars as pl
import pytest

from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model.signal import (
    SignalRules,
    control_column,
    control_columns,
    controls_spread_error,
    daily_signal_series,
    newey_west_error,
    newey_west_t_stat,
    signal_test,
)
from trading_pipeline.domain.model.training import train_model
from trading_pipeline.domain.model.validation import daily_information_coefficients
from trading_pipeline_tests.domain.conftest import training_frames
from trading_pipeline_tests.noise_market import noise_bars

SESSIONS, SYMBOLS = 250, 40


def scored_sessions(control_tilts: list[np.ndarray], model_skill: float = 0.06, seed: int = 0) -> pl.DataFrame:
    """Out-of-sample rows: each session's forward returns, a model whose scores lean on them by
    `model_skill`, and one control per tilt series (a control's lean on them, session by session)."""
    rng = np.random.default_rng(seed)
    forward = rng.normal(0, 1, (SESSIONS, SYMBOLS))

    def leaning(skill: np.ndarray | float) -> np.ndarray:
        return np.asarray(skill).reshape(-1, 1) * forward + rng.normal(0, 1, (SESSIONS, SYMBOLS))

    return pl.DataFrame({
        "session": np.repeat(np.arange(SESSIONS), SYMBOLS), "forward_return": forward.ravel(),
        "prediction": leaning(model_skill).ravel(),
        **{control_column(k): leaning(tilt).ravel() for k, tilt in enumerate(control_tilts)}})


def persistent_tilt(size: float = 0.05, months: int = 8) -> np.ndarray:
    """A control's chance lean toward the forward returns that holds for months, as a factor
    tilt does, then fades."""
    days = min(SESSIONS, 21 * months)
    return np.r_[np.full(days, size), np.zeros(SESSIONS - days)]


def test_the_controls_mean_is_the_mean_of_each_controls_rank_ic():
    oos = scored_sessions([np.zeros(SESSIONS), persistent_tilt(), np.full(SESSIONS, -0.03)])
    assert control_columns(oos) == ["control_prediction", "control_prediction_1", "control_prediction_2"]
    each = [daily_information_coefficients(oos, c)["rank_ic"].mean() for c in control_columns(oos)]
    verdict = signal_test(oos)
    assert verdict.control_rank_ic == pytest.approx(np.mean(each))
    assert "the mean of 3 shuffled-label controls" in verdict.reason
    daily = daily_signal_series(oos)
    assert daily["control"].to_numpy() == pytest.approx(daily.select("control_0", "control_1", "control_2")
                                                        .mean_horizontal().to_numpy())
    # one named control: the gate as it was, against that control alone
    alone = signal_test(oos, control="control_prediction_1")
    assert alone.control_rank_ic == pytest.approx(each[1])


def test_one_controls_persistent_tilt_no_longer_decides_alone():
    oos = scored_sessions([persistent_tilt(), *(np.zeros(SESSIONS) for _ in range(4))], model_skill=0.05, seed=2)
    against_one = signal_test(oos, control="control_prediction")
    against_five = signal_test(oos)
    assert not against_one.passed, against_one.reason  # the tilted control alone hides the model's signal
    assert against_five.passed, against_five.reason
    assert against_five.t_stat > against_one.t_stat


def test_a_tilt_lasting_the_whole_window_is_judged_by_the_controls_spread():
    # A noise model whose chance tilt paid all window long, and controls whose own tilts went
    # either way: a few Newey-West lags see a steady edge; the controls' spread says any model
    # that learnt nothing scores this much here.
    lean = 0.04
    oos = scored_sessions([np.full(SESSIONS, t) for t in (lean, -lean, lean, -lean, 0.0)], model_skill=lean, seed=5)
    daily = daily_signal_series(oos)
    assert newey_west_t_stat((daily["rank_ic"] - daily["control"]).to_numpy(), 5) > 2  # fooled alone
    verdict = signal_test(oos)
    assert not verdict.passed and verdict.t_stat < 1.5, verdict.reason
    # the same model against controls that agree with each other: the spread adds nothing
    steady = scored_sessions([np.zeros(SESSIONS)] * 5, model_skill=lean, seed=5)
    daily = daily_signal_series(steady)
    spread = controls_spread_error([daily[f"control_{k}"].mean() for k in range(5)])
    assert spread < newey_west_error((daily["rank_ic"] - daily["control"]).to_numpy(), 5)
    assert signal_test(steady).t_stat == pytest.approx(
        newey_west_t_stat((daily["rank_ic"] - daily["control"]).to_numpy(), 5))


def test_controls_must_be_a_whole_number_of_at_least_one():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="shuffled-label controls"):
            SignalRules(controls=bad)


def test_predictions_without_a_control_are_refused_with_the_reason():
    oos = scored_sessions([]).drop([c for c in scored_sessions([]).columns if c.startswith("control")])
    with pytest.raises(ValueError, match="no shuffled-label control column"):
        signal_test(oos)


@pytest.fixture(scope="module")
def market():
    return training_frames(n_symbols=20, scored_sessions=220)


def test_each_control_is_its_own_draw_and_the_first_is_unchanged(market):
    features, labels = market
    # the control test alone: on these 98 out-of-sample sessions of 20 symbols the random
    # scorers (on by default) refuse the planted signal (t 1.66; README, "The signal gate")
    one = train_model(features, labels, n_folds=3, seed=1, signal_rules=SignalRules(random_scorers=0))
    three = train_model(features, labels, n_folds=3, seed=1, signal_rules=SignalRules(controls=3))
    columns = control_columns(three.oos_predictions)
    assert columns == [control_column(k) for k in range(3)]
    # the first control is the one a single-control gate reads: verdicts stay comparable
    assert three.oos_predictions["control_prediction"].to_list() == one.oos_predictions["control_prediction"].to_list()
    assert three.oos_predictions["prediction"].to_list() == one.oos_predictions["prediction"].to_list()
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert not np.allclose(three.oos_predictions[columns[a]].to_numpy(), three.oos_predictions[columns[b]].to_numpy())
    each = [daily_information_coefficients(three.oos_predictions, c)["rank_ic"].mean() for c in columns]
    assert three.signal.control_rank_ic == pytest.approx(np.mean(each), abs=1e-3)
    assert three.signal.rank_ic > three.signal.control_rank_ic
    assert one.signal.passed, one.signal.reason  # the planted signal passes the control test


@pytest.mark.parametrize("seed", [3, 4])
def test_a_noise_model_is_still_refused_against_several_controls(seed):
    from datetime import date

    from trading_pipeline.domain.calendar import sessions_back

    bars = noise_bars(sessions_back(date(2024, 6, 28), MIN_HISTORY_SESSIONS + 300), n_symbols=15, seed=seed)
    features = compute_features(bars)
    features = features.filter(pl.col("session") >= features["session"].unique().sort()[MIN_HISTORY_SESSIONS])
    result = train_model(features, forward_return_labels(bars, horizon=5), n_folds=3, seed=seed,
                         signal_rules=SignalRules(controls=3))
    assert not result.signal.passed, result.signal.reason
    assert "no better than noise" in result.signal.reason and "mean of 3" in result.signal.reason


def test_one_control_keeps_the_gate_as_it_was():
    oos = scored_sessions([persistent_tilt()], model_skill=0.03, seed=7)
    daily = daily_signal_series(oos)
    assert SignalRules().controls == 1
    assert signal_test(oos).t_stat == pytest.approx(
        newey_west_t_stat((daily["rank_ic"] - daily["control_0"]).to_numpy(), 5))


def test_the_setting_reaches_the_gate():
    from trading_pipeline.settings import TradingSettings

    assert TradingSettings(_env_file=None, signal_controls=5).model.training_options().signal == SignalRules(controls=5)
    assert TradingSettings(_env_file=None).model.training_options().signal.controls == 1
