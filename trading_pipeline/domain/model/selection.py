"""Champion or challenger: both models' out-of-sample scores on the same recent sessions.

Each model is judged only on predictions made without seeing the labels they are scored
against: the challenger's walk-forward fold predictions, and the champion's own fold
predictions (for sessions inside its training window) or the champion itself (for sessions
after its training labels end). The comparison uses the sessions both models have, so neither
is judged on an easier stretch of the market.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.model.validation import prediction_metrics

SCORED_COLUMNS = ("session", "symbol", "score", "forward_return")


@dataclass(frozen=True, slots=True)
class SelectionRules:
    window: int = 60  # the last sessions both models have out-of-sample scores for
    margin: float = 0.005  # in mean daily rank IC
    min_sessions: int = 20  # fewer shared sessions: no fair comparison, the champion stays

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_sessions < 1 or self.margin < 0:
            raise ValueError(f"need window >= 1, min_sessions >= 1 and margin >= 0, got {self}")


@dataclass(frozen=True, slots=True)
class ChallengerVerdict:
    promote: bool
    reason: str
    sessions: int
    first_session: date | None
    last_session: date | None
    challenger_rank_ic: float
    champion_rank_ic: float
    margin: float

    def metrics(self) -> dict[str, float]:
        return {"window_sessions": float(self.sessions),
                "challenger_window_rank_ic": self.challenger_rank_ic,
                "champion_window_rank_ic": self.champion_rank_ic, "margin": self.margin}


def compare_on_recent_window(challenger: pl.DataFrame, champion: pl.DataFrame, rules: SelectionRules,
                             *, challenger_name: str, champion_name: str) -> ChallengerVerdict:
    """Mean daily rank IC of both over the last `rules.window` sessions they share. The
    challenger is promoted when its figure beats the champion's by more than `rules.margin`."""
    window, margin, min_sessions = rules.window, rules.margin, rules.min_sessions
    for name, frame in (("challenger", challenger), ("champion", champion)):
        missing = [c for c in SCORED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name}'s scores lack columns {missing}")
    shared = sorted(set(challenger["session"].unique()) & set(champion["session"].unique()))[-window:]
    nan = math.nan
    if len(shared) < min_sessions:
        return ChallengerVerdict(
            False, f"{challenger_name} and {champion_name} share {len(shared)} out-of-sample "
            f"sessions, fewer than the {min_sessions} needed to compare: {champion_name} stays",
            len(shared), shared[0] if shared else None, shared[-1] if shared else None, nan, nan, margin)
    new = _rank_ic(challenger, shared)
    old = _rank_ic(champion, shared)
    window_text = f"{shared[0]}..{shared[-1]} ({len(shared)} sessions)"
    promote = math.isfinite(new) and (not math.isfinite(old) or new > old + margin)
    verb = "beats" if promote else "does not beat"
    return ChallengerVerdict(
        promote, f"{challenger_name} rank IC {new:.4f} {verb} {champion_name}'s {old:.4f} by more "
        f"than {margin:.4f} on {window_text}", len(shared), shared[0], shared[-1], new, old, margin)


def _rank_ic(scores: pl.DataFrame, sessions: list[date]) -> float:
    rows = scores.filter(pl.col("session").is_in(sessions)).rename({"score": "prediction"})
    return prediction_metrics(rows, "prediction")["rank_ic"]
