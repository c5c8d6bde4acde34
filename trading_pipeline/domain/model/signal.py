"""The signal gate: is a model's out-of-sample rank IC more than what a noise model gets?

Both series are daily rank ICs on the same sessions: the model's walk-forward predictions and
those of the same model trained on shuffled labels (the control: same features, same folds,
no link between features and target). The gate looks at the daily difference, model minus
control. Forward returns over `horizon` sessions overlap, so neighbouring daily ICs are
correlated; the t-statistic uses a Newey-West standard error with `horizon` lags, which a
plain t-test would understate. A model passes when that t-statistic reaches `min_t_stat`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from trading_pipeline.domain.model.validation import daily_information_coefficients


@dataclass(frozen=True, slots=True)
class SignalRules:
    min_t_stat: float = 2.0  # of the daily (model - control) rank IC difference
    min_sessions: int = 20  # fewer out-of-sample sessions prove nothing: refused

    def __post_init__(self) -> None:
        if self.min_t_stat < 0 or self.min_sessions < 2:
            raise ValueError(f"need min_t_stat >= 0 and min_sessions >= 2, got {self}")


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


def newey_west_t_stat(values: np.ndarray, lags: int) -> float:
    """Mean over its Newey-West (Bartlett kernel) standard error; NaN under 2 values or when
    the series does not vary."""
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
    return float(values.mean() / math.sqrt(variance / n))


def signal_test(oos: pl.DataFrame, *, prediction: str = "prediction",
                control: str = "control_prediction", horizon: int = 5,
                rules: SignalRules = SignalRules()) -> SignalVerdict:
    """The gate on walk-forward predictions: `oos` holds session, forward_return, the model's
    `prediction` and the control's `control` column for the same rows."""
    model_ic = daily_information_coefficients(oos, prediction).select("session", "rank_ic")
    control_ic = daily_information_coefficients(oos, control).select(
        "session", pl.col("rank_ic").alias("control"))
    daily = model_ic.join(control_ic, on="session").filter(
        pl.col("rank_ic").is_not_nan() & pl.col("control").is_not_nan()).sort("session")
    n = daily.height
    mean_ic = float(daily["rank_ic"].mean()) if n else math.nan
    mean_control = float(daily["control"].mean()) if n else math.nan
    t_stat = newey_west_t_stat((daily["rank_ic"] - daily["control"]).to_numpy(), horizon) if n else math.nan
    figures = (f"out-of-sample rank IC {mean_ic:.4f} against {mean_control:.4f} for the "
               f"shuffled-label control over {n} sessions, t-statistic {t_stat:.2f}")
    if n < rules.min_sessions:
        return SignalVerdict(False, f"no proof of signal: {figures}; at least {rules.min_sessions} "
                             "sessions are needed", n, mean_ic, mean_control, t_stat, rules.min_t_stat)
    passed = math.isfinite(t_stat) and t_stat >= rules.min_t_stat
    reason = (f"signal: {figures} (at least {rules.min_t_stat:.2f} needed)" if passed else
              f"no better than noise: {figures}, under the {rules.min_t_stat:.2f} needed")
    return SignalVerdict(passed, reason, n, mean_ic, mean_control, t_stat, rules.min_t_stat)
