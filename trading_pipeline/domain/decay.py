"""Performance decay: the champion's realised rank IC over recent sessions whose returns are known.

The score given on session s is judged by the forward return from s to s+horizon, which is known
only after the close of s+horizon. On session D the figure therefore uses sessions up to D minus
`horizon` sessions and never a later one, even when later returns are passed in (no look-ahead).

Only the given model version's predictions count, and only of sessions after its training end
(earlier scores, e.g. written by a replay, were made on prices it was trained on). Just after a new champion, or a rollback to a
version whose own predictions are old, there are fewer than `min_sessions` such sessions in the
window: the figure is reported (or None when there is none) and never breached until there are
enough. With a 5-session horizon and 10 sessions needed, a new champion is first judged 15
sessions after its first prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.drift import Severity
from trading_pipeline.domain.model.validation import daily_information_coefficients

PREDICTION_COLUMNS = ("session", "symbol", "score", "model_version")
LABEL_COLUMNS = ("session", "symbol", "forward_return")


@dataclass(frozen=True)
class DecayPolicy:
    """When the realised rank IC counts as decayed: its mean over the last `window` sessions
    with known returns is below `min_rank_ic`, with at least `min_sessions` of them."""

    window: int
    min_sessions: int
    min_rank_ic: float

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"the decay window must be at least 1 session, got {self.window}")
        if not 1 <= self.min_sessions <= self.window:
            raise ValueError(
                f"decay min_sessions must be between 1 and the window ({self.window}), got "
                f"{self.min_sessions}: lower TRADING_DECAY_MIN_SESSIONS or widen "
                "TRADING_DECAY_WINDOW_SESSIONS"
            )
        if not -1.0 <= self.min_rank_ic <= 1.0:
            raise ValueError(f"a rank IC threshold lies in [-1, 1], got {self.min_rank_ic}")


@dataclass(frozen=True)
class DecayResult:
    model_version: str
    rank_ic: float | None  # mean daily rank IC over `sessions`; None when there is none
    sessions: int  # sessions in the window with this version's predictions and known returns
    breached: bool
    policy: DecayPolicy
    last_complete_session: date  # the newest session whose forward returns are known
    daily: pl.DataFrame  # session, ic, rank_ic, count: the sessions behind the mean

    @property
    def judged(self) -> bool:
        return self.sessions >= self.policy.min_sessions

    def describe(self) -> str:
        """One clause for a human: the figure, over how many sessions, against what."""
        threshold = f"{self.policy.min_rank_ic:.3f}"
        if self.rank_ic is None:
            return (f"no rank IC yet: no session of v{self.model_version}'s predictions up to "
                    f"{self.last_complete_session} has known returns (judged from "
                    f"{self.policy.min_sessions})")
        figure = f"rank IC {self.rank_ic:.3f} over {self.sessions} sessions"
        if not self.judged:
            return (f"{figure}, too few to judge: needs {self.policy.min_sessions} sessions of "
                    f"v{self.model_version}'s own predictions with known returns (a new or restored "
                    "champion has fewer)")
        return f"{figure} below {threshold}" if self.breached else f"{figure}, not below {threshold}"


def last_complete_session(as_of: date, horizon: int) -> date:
    """The newest session whose `horizon`-session forward return is known at `as_of`'s close."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    return sessions_back(as_of, horizon + 1)[0]


def decay_window(as_of: date, horizon: int, window: int) -> list[date]:
    """The `window` sessions ending at the last complete session on `as_of`."""
    return sessions_back(last_complete_session(as_of, horizon), window)


def performance_decay(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    as_of: date,
    model_version: str,
    horizon: int,
    policy: DecayPolicy,
    training_end: date | None = None,
) -> DecayResult:
    """Mean daily rank IC of `model_version`'s scores against the forward returns that
    followed, over the window of `policy.window` sessions ending `horizon` sessions before
    `as_of`. `predictions`: session, symbol, score, model_version (other versions are
    ignored); `labels`: session, symbol, forward_return over `horizon` sessions.
    `training_end`: the last session whose prices the version's labels used; scores of
    sessions on or before it are in sample (the version saw what followed) and never count."""
    for name, frame, needed in (("predictions", predictions, PREDICTION_COLUMNS),
                                ("labels", labels, LABEL_COLUMNS)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"performance decay needs {name} with columns {list(needed)}; "
                             f"{missing} are missing (got {frame.columns})")
    window = decay_window(as_of, horizon, policy.window)
    scored = (
        predictions.filter(
            (pl.col("model_version").cast(pl.String) == str(model_version))
            & pl.col("session").is_between(window[0], window[-1])
            & (pl.col("session") > training_end if training_end is not None else pl.lit(True))
        )
        .select("session", "symbol", "score")
        .join(labels.select(LABEL_COLUMNS), on=["session", "symbol"])
    )
    daily = daily_information_coefficients(scored, "score").filter(pl.col("rank_ic").is_not_nan())
    rank_ic = float(daily["rank_ic"].mean()) if daily.height else None
    enough = daily.height >= policy.min_sessions
    breached = enough and rank_ic is not None and math.isfinite(rank_ic) and rank_ic < policy.min_rank_ic
    return DecayResult(
        model_version=str(model_version), rank_ic=rank_ic, sessions=daily.height,
        breached=breached, policy=policy, last_complete_session=window[-1], daily=daily,
    )


def overall_severity(data_severity: Severity, decay: DecayResult) -> Severity:
    """A breached decay is severe whatever the data drift says (the rollback trigger is a severe
    report or decay below the threshold over the window); otherwise the data drift decides."""
    return "severe" if decay.breached else data_severity
