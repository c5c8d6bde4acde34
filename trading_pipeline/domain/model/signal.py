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

A factor lean is why a second, cheap test exists: a model that learnt nothing still picks
some direction in its features, and over one window its mean IC is mostly what the factors
along that direction paid. That lean does not shrink with more stocks while the daily noise
does, so Newey-West t on noise grows with the universe (bench_signal_gate). With
`SignalRules.random_scorers` (default 200) the model must also beat zero by `min_t_stat` times
what random no-skill scorers reach on the same sessions (`random_scorer_daily_ics`: random linear combinations of
the features' within-session ranks, one matrix product, no fit): the spread of a score whose
direction owes nothing to the labels, whatever paid in this window. The verdict's t-statistic
is then the smaller of the two. Measured (bench_signal_gate, README): no noise model passed it
at 20, 40 or 88 StockNet stocks, where the control test alone accepted up to 11 %. Its price:
where the features carry a strong signal, random directions pick it up too, so even a model
pointing the right way reaches only about sqrt(effective number of features) times their
spread; on few out-of-sample sessions a planted signal can then be refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trading_pipeline.domain.model.validation import daily_information_coefficients
from trading_pipeline.domain.ranks import average_ranks, session_bounds

CONTROL_COLUMN = "control_prediction"
SCORER_CHUNK = 25


@dataclass(frozen=True, slots=True)
class SignalRules:
    min_t_stat: float = 2.0  # of the daily (model - control) rank IC difference
    min_sessions: int = 20  # fewer out-of-sample sessions prove nothing: refused
    # shuffled-label controls, each its own shuffle and seeds; the model faces their mean daily IC
    controls: int = 1
    # no-skill scorers (random linear combinations of the features' within-session ranks) the
    # model's mean IC must also clear (see scorer_t_stat); 0: none, the gate against controls only
    random_scorers: int = 200

    def __post_init__(self) -> None:
        if self.min_t_stat < 0 or self.min_sessions < 2:
            raise ValueError(f"need min_t_stat >= 0 and min_sessions >= 2, got {self}")
        if isinstance(self.controls, bool) or not isinstance(self.controls, int) or self.controls < 1:
            raise ValueError(f"the signal gate needs a whole number of shuffled-label controls, at "
                             f"least 1, got {self.controls!r}")
        if (isinstance(self.random_scorers, bool) or not isinstance(self.random_scorers, int)
                or self.random_scorers == 1 or self.random_scorers < 0):
            raise ValueError(f"the signal gate needs 0 random scorers (none) or at least 2 (a spread), "
                             f"got {self.random_scorers!r} (TRADING_SIGNAL_RANDOM_SCORERS)")


@dataclass(frozen=True, slots=True)
class SignalVerdict:
    passed: bool
    reason: str
    sessions: int
    rank_ic: float  # the model's mean daily rank IC
    control_rank_ic: float  # the shuffled-label control's
    t_stat: float  # the smaller of gate_t_stat and, with random scorers, scorer_t_stat
    min_t_stat: float
    # the sd of the random no-skill scorers' mean rank IC on the same sessions; NaN: not used
    scorer_rank_ic_sd: float = math.nan

    def metrics(self) -> dict[str, float]:
        return {"signal_passed": float(self.passed), "signal_sessions": float(self.sessions),
                "signal_rank_ic": self.rank_ic, "signal_control_rank_ic": self.control_rank_ic,
                "signal_t_stat": self.t_stat, "signal_min_t_stat": self.min_t_stat,
                # only when the scorers were used: records of gates without them stay as they were
                **({"signal_scorer_rank_ic_sd": self.scorer_rank_ic_sd}
                   if math.isfinite(self.scorer_rank_ic_sd) else {})}


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


def random_scorer_daily_ics(rows: pl.DataFrame, columns: Sequence[str], scorers: int,
                            seed: int = 0) -> pl.DataFrame:
    """`session` and one column per scorer (`scorer_0`, ...): the daily rank IC, against
    `forward_return`, of `scorers` scorers with no skill, each a fixed random linear combination
    (standard normal weights, seeded) of the within-session ranks of `columns`.

    Why: a scorer that learnt nothing still leans on whatever real factors its features carry,
    and a factor that pays for months moves its mean IC far more than day-to-day noise says.
    Random directions in the same features, scored on the same sessions, wander as far as such
    a lean can; the spread of their mean ICs is the error of a no-skill score on this window,
    at the cost of a matrix product, not a fit. Ranks (centred, missing at the middle) make
    every feature weigh alike whatever its scale."""
    if scorers < 1:
        raise ValueError(f"need at least one random scorer, got {scorers}")
    rows = rows.drop_nulls("forward_return").sort("session")
    session = rows["session"]
    bounds = session_bounds(session)
    starts, counts = bounds[:-1], np.diff(bounds)
    # one row per feature or scorer, one column per table row: each is ranked and summed by
    # session along contiguous memory (a column of a row-major matrix took several times longer)
    ranked = np.empty((len(columns), rows.height))
    for j, column in enumerate(columns):  # centred, missing at the middle: (rank - 0.5) / count - 0.5
        values = rows[column].cast(pl.Float64).to_numpy()  # nulls and NaN alike: NaN, missing
        present = np.repeat(np.add.reduceat(~np.isnan(values), starts), counts)
        ranked[j] = np.nan_to_num((average_ranks(values, bounds) - 0.5) / present - 0.5, nan=0.0)
    weights = np.random.default_rng(seed).standard_normal((len(columns), scorers))
    returns = average_ranks(rows["forward_return"].to_numpy(), bounds)
    returns = returns - np.repeat(np.add.reduceat(returns, starts) / counts, counts)
    return_norm = np.add.reduceat(returns * returns, starts)
    ics = np.empty((len(starts), scorers))
    for first in range(0, scorers, SCORER_CHUNK):  # a chunk of scorers at a time bounds the memory
        scores = weights[:, first:first + SCORER_CHUNK].T @ ranked
        for j, score in enumerate(scores, start=first):  # one row at a time: no matrix of temporaries
            rank = average_ranks(score, bounds)
            rank -= np.repeat(np.add.reduceat(rank, starts) / counts, counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                ics[:, j] = (np.add.reduceat(rank * returns, starts)
                             / np.sqrt(np.add.reduceat(rank * rank, starts) * return_norm))
        del scores
    ics[counts < 2] = np.nan  # as daily_information_coefficients: no IC under 2 rows
    return pl.DataFrame({"session": session.gather(starts)}).with_columns(
        pl.Series(f"scorer_{j}", ics[:, j]) for j in range(scorers))


def random_scorer_means(scorer_ics: pl.DataFrame, sessions: pl.Series) -> np.ndarray:
    """Each random scorer's mean daily rank IC on `sessions` (the sessions the gate reads):
    where a no-skill score's mean lands there."""
    chosen = scorer_ics.filter(pl.col("session").is_in(sessions.implode()))
    means = chosen.drop("session").fill_nan(None).mean().row(0)
    return np.asarray([m for m in means if m is not None and math.isfinite(m)], dtype=np.float64)


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
    """The control statistic on `daily_signal_series`: the mean daily (model - controls' mean)
    rank IC difference over the larger of its Newey-West error (`horizon` lags: overlapping
    forward returns) and, with several controls, their spread's error. Newey-West over a few
    lags misses tilts that last months; the controls' spread sees them."""
    difference = (daily["rank_ic"] - daily["control"]).to_numpy()
    controls = [c for c in daily.columns if c.startswith("control_")]
    error = max(newey_west_error(difference, horizon),
                controls_spread_error([float(daily[c].mean()) for c in controls]) if len(controls) > 1 else 0.0)
    return float(difference.mean() / error) if math.isfinite(error) and error > 0 else math.nan


def no_skill_spread(scorer_means: Sequence[float]) -> float:
    """The root mean square of the random scorers' mean ICs: their spread about zero, where a
    no-skill score's mean IC centres (a direction and its opposite are equally likely). NaN
    under 2 scorers."""
    means = np.asarray(scorer_means, dtype=np.float64)
    return float(np.sqrt(np.mean(means * means))) if means.size > 1 else math.nan


def scorer_t_stat(daily: pl.DataFrame, horizon: int, scorer_means: Sequence[float]) -> float:
    """The model's mean daily rank IC over the larger of its Newey-West error and how far the
    random no-skill scorers' mean ICs spread on the same sessions (`no_skill_spread`)."""
    ic = daily["rank_ic"].to_numpy()
    error = max(newey_west_error(ic, horizon), no_skill_spread(scorer_means))
    return float(ic.mean() / error) if math.isfinite(error) and error > 0 else math.nan


def signal_test(oos: pl.DataFrame, *, prediction: str = "prediction",
                control: str | Sequence[str] | None = None, horizon: int = 5,
                rules: SignalRules = SignalRules(), scorer_ics: pl.DataFrame | None = None) -> SignalVerdict:
    """The gate on walk-forward predictions: `oos` holds session, forward_return, the model's
    `prediction` and the controls' columns for the same rows (`control`: one column or several;
    None: every control_prediction, control_prediction_1, ... present). `scorer_ics`: the
    random scorers' daily ICs on those rows (`random_scorer_daily_ics`), read on the gate's
    sessions; None: the gate without them."""
    controls = [control] if isinstance(control, str) else control
    daily = daily_signal_series(oos, prediction, controls)
    n = daily.height
    mean_ic = float(daily["rank_ic"].mean()) if n else math.nan
    mean_control = float(daily["control"].mean()) if n else math.nan
    control_t = gate_t_stat(daily, horizon) if n > 1 else math.nan
    count = len(daily.columns) - 3  # session, rank_ic, control
    against = "the shuffled-label control" if count == 1 else f"the mean of {count} shuffled-label controls"
    figures = (f"out-of-sample rank IC {mean_ic:.4f} against {mean_control:.4f} for {against} "
               f"over {n} sessions, t-statistic {control_t:.2f}")
    t_stat, scorer_sd = control_t, math.nan
    if scorer_ics is not None and n > 1:
        scorer_means = random_scorer_means(scorer_ics, daily["session"])
        scorer_sd, beyond_t = no_skill_spread(scorer_means), scorer_t_stat(daily, horizon, scorer_means)
        figures += (f"; against {scorer_means.size} random no-skill scorers, whose mean rank IC "
                    f"spreads by {scorer_sd:.4f} here, t-statistic {beyond_t:.2f}")
        t_stat = min(control_t, beyond_t) if math.isfinite(beyond_t) else math.nan
    if n < rules.min_sessions:
        return SignalVerdict(False, f"no proof of signal: {figures}; at least {rules.min_sessions} "
                             "sessions are needed", n, mean_ic, mean_control, t_stat, rules.min_t_stat, scorer_sd)
    passed = math.isfinite(t_stat) and t_stat >= rules.min_t_stat
    reason = (f"signal: {figures}; at least {rules.min_t_stat:.2f} needed" if passed else
              f"no better than noise: {figures}; under the {rules.min_t_stat:.2f} needed")
    return SignalVerdict(passed, reason, n, mean_ic, mean_control, t_stat, rules.min_t_stat, scorer_sd)
