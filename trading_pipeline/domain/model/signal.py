"""The signal gate: is a model's out-of-sample rank IC more than what a noise model gets?

Both series are daily rank ICs on the same sessions: the model's walk-forward predictions and
those of the same model trained on shuffled labels (the control: same features, same folds,
no link between features and target). The gate looks at the daily difference, model minus
control. Forward returns over `horizon` sessions overlap, so neighbouring daily ICs are
correlated; the t-statistic uses a Newey-West standard error with `horizon` lags, which a
plain t-test would understate. A model passes when that t-statistic reaches `min_t_stat`.
With several controls (`SignalRules.controls`, each its own shuffle and seeds) the model faces
their mean, and the standard error is at least what the controls' spread says: on real prices
a model that learnt nothing can lean on a factor for months, which a few lags do not see, and
one control's own lean then decides the verdict alone (measured in bench_signal_gate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trading_pipeline.domain.model.validation import daily_information_coefficients

CONTROL_COLUMN = "control_prediction"


@dataclass(frozen=True, slots=True)
class SignalRules:
    min_t_stat: float = 2.0  # of the daily (model - control) rank IC difference
    min_sessions: int = 20  # fewer out-of-sample sessions prove nothing: refused
    # shuffled-label controls, each its own shuffle and seeds; the model faces their mean daily IC
    controls: int = 1

    def __post_init__(self) -> None:
        if self.min_t_stat < 0 or self.min_sessions < 2:
            raise ValueError(f"need min_t_stat >= 0 and min_sessions >= 2, got {self}")
        if isinstance(self.controls, bool) or not isinstance(self.controls, int) or self.controls < 1:
            raise ValueError(f"the signal gate needs a whole number of shuffled-label controls, at "
                             f"least 1, got {self.controls!r}")


@dataclass(frozen=True, slots=True)
class SignalVerdict:
    passed: bool
    reason: str
    sessions: int
    rank_ic: float  # the model's mean daily rank IC
    control_rank_ic: float  # the shuffled-label control's
    t_stat: float  # of the daily difference, Newey-West
    min_t_stat: float

    def metrics(self) -> dict[str, float]:
        return {"signal_passed": float(self.passed), "signal_sessions": float(self.sessions),
                "signal_rank_ic": self.rank_ic, "signal_control_rank_ic": self.control_rank_ic,
                "signal_t_stat": self.t_stat, "signal_min_t_stat": self.min_t_stat}


def newey_west_error(values: np.ndarray, lags: int) -> float:
    """The standard error of the mean with a Newey-West (Bartlett kernel) long-run variance;
    NaN under 2 values or when the series does not vary."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return math.nan
    centred = values - values.mean()
    variance = centred @ centred / n
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1 - lag / (lags + 1)
        variance += 2 * weight * (centred[lag:] @ centred[:-lag]) / n
    if not variance > 0:
        return math.nan
    return math.sqrt(variance / n)


def newey_west_t_stat(values: np.ndarray, lags: int) -> float:
    """Mean over its Newey-West (Bartlett kernel) standard error; NaN under 2 values or when
    the series does not vary."""
    values = np.asarray(values, dtype=np.float64)
    error = newey_west_error(values, lags)
    return float(values.mean() / error) if math.isfinite(error) else math.nan


def controls_spread_error(control_means: Sequence[float]) -> float:
    """What the controls' own spread says the standard error of (model - their mean) is under
    no signal: each control's mean rank IC is one draw of what a model that learnt nothing
    scores on these sessions, chance factor tilts included, and the model would be one more
    draw: sd(control means) * sqrt(1 + 1/K). NaN under 2 controls."""
    means = np.asarray(control_means, dtype=np.float64)
    if means.size < 2:
        return math.nan
    return float(np.std(means, ddof=1) * math.sqrt(1 + 1 / means.size))


def bartlett_bandwidth_lags(values: np.ndarray, minimum: int = 0) -> int:
    """Newey-West lags chosen from the data (Andrews 1991, AR(1) plug-in for the Bartlett
    kernel), never under `minimum`: a series whose days lean the same way for weeks gets as
    many lags as its persistence asks, an uncorrelated one only `minimum`."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 3:
        return minimum
    centred = values - values.mean()
    denominator = centred[:-1] @ centred[:-1]
    # clipped: near a unit root the plug-in explodes, and 0.95 already asks for weeks of lags
    rho = float(np.clip(centred[1:] @ centred[:-1] / denominator, -0.95, 0.95)) if denominator > 0 else 0.0
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    bandwidth = 1.1447 * (alpha * n) ** (1 / 3)  # Bartlett weights 1 - j / bandwidth
    return int(min(n - 1, max(minimum, math.ceil(bandwidth) - 1)))


def control_column(k: int) -> str:
    """The column of the k-th shuffled-label control's predictions (the first keeps the old name)."""
    return CONTROL_COLUMN if k == 0 else f"{CONTROL_COLUMN}_{k}"


def control_columns(frame: pl.DataFrame) -> list[str]:
    """The controls' prediction columns in `frame`, in order: control_prediction, _1, _2, ..."""
    found, k = [], 0
    while control_column(k) in frame.columns:
        found.append(control_column(k))
        k += 1
    return found


def daily_signal_series(oos: pl.DataFrame, prediction: str = "prediction",
                        controls: Sequence[str] | None = None) -> pl.DataFrame:
    """Per session: the model's rank IC, each control's (`control_0`, ...) and their mean
    (`control`), on the sessions where all are defined, in order."""
    controls = list(controls) if controls is not None else control_columns(oos)
    if not controls:
        raise ValueError(f"no shuffled-label control column ({CONTROL_COLUMN}) in the out-of-sample "
                         "predictions: train with the control on")
    daily = daily_information_coefficients(oos, prediction).select("session", "rank_ic")
    for k, column in enumerate(controls):
        daily = daily.join(daily_information_coefficients(oos, column).select(
            "session", pl.col("rank_ic").alias(f"control_{k}")), on="session")
    names = [f"control_{k}" for k in range(len(controls))]
    return (daily.filter(pl.all_horizontal(pl.col("rank_ic", *names).is_not_nan()))
            .with_columns(pl.mean_horizontal(names).alias("control")).sort("session"))


def gate_t_stat(daily: pl.DataFrame, horizon: int) -> float:
    """The gate's statistic on `daily_signal_series`: the mean daily (model - controls' mean)
    rank IC difference over the larger of its Newey-West error (`horizon` lags: overlapping
    forward returns) and, with several controls, their spread's error. Newey-West over a few
    lags misses tilts that last months; the controls' spread sees them."""
    difference = (daily["rank_ic"] - daily["control"]).to_numpy()
    controls = [c for c in daily.columns if c.startswith("control_")]
    error = max(newey_west_error(difference, horizon),
                controls_spread_error([float(daily[c].mean()) for c in controls]) if len(controls) > 1 else 0.0)
    return float(difference.mean() / error) if math.isfinite(error) and error > 0 else math.nan


def signal_test(oos: pl.DataFrame, *, prediction: str = "prediction",
                control: str | Sequence[str] | None = None, horizon: int = 5,
                rules: SignalRules = SignalRules()) -> SignalVerdict:
    """The gate on walk-forward predictions: `oos` holds session, forward_return, the model's
    `prediction` and the controls' columns for the same rows (`control`: one column or several;
    None: every control_prediction, control_prediction_1, ... present)."""
    controls = [control] if isinstance(control, str) else control
    daily = daily_signal_series(oos, prediction, controls)
    n = daily.height
    mean_ic = float(daily["rank_ic"].mean()) if n else math.nan
    mean_control = float(daily["control"].mean()) if n else math.nan
    t_stat = gate_t_stat(daily, horizon) if n > 1 else math.nan
    count = len(daily.columns) - 3  # session, rank_ic, control
    against = "the shuffled-label control" if count == 1 else f"the mean of {count} shuffled-label controls"
    figures = (f"out-of-sample rank IC {mean_ic:.4f} against {mean_control:.4f} for {against} "
               f"over {n} sessions, t-statistic {t_stat:.2f}")
    if n < rules.min_sessions:
        return SignalVerdict(False, f"no proof of signal: {figures}; at least {rules.min_sessions} "
                             "sessions are needed", n, mean_ic, mean_control, t_stat, rules.min_t_stat)
    passed = math.isfinite(t_stat) and t_stat >= rules.min_t_stat
    reason = (f"signal: {figures} (at least {rules.min_t_stat:.2f} needed)" if passed else
              f"no better than noise: {figures}, under the {rules.min_t_stat:.2f} needed")
    return SignalVerdict(passed, reason, n, mean_ic, mean_control, t_stat, rules.min_t_stat)
