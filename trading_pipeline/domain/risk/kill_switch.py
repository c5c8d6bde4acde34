"""When the kill switch engages by itself: a daily loss or a drawdown beyond its limit.

Pure: reads an equity history and returns a decision with the figures behind it. Persisting
the switch and refusing to send orders while it is engaged belong to the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

# Float slack: 1 - 95/100 is 0.050000000000000044, which must not "exceed" a 5 % limit.
TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class KillSwitchRules:
    """Limits as fractions of equity: 0.05 means 5 %. A figure must exceed its limit to engage."""

    max_daily_loss: float = 0.05
    max_drawdown: float = 0.25

    def __post_init__(self) -> None:
        problems = [
            f"{name} is a fraction in (0, 1) (0.05 means 5 %), got {value!r}"
            for name, value in (("max_daily_loss", self.max_daily_loss),
                                ("max_drawdown", self.max_drawdown))
            if isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 < value < 1
        ]
        if problems:
            raise ValueError("invalid KillSwitchRules: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class KillSwitchDecision:
    engage: bool
    reasons: tuple[str, ...]
    daily_loss: float | None  # fraction lost on the last session; None without a positive previous
    drawdown: float  # fraction below the running equity high, at the last session


def evaluate_kill_switch(equity_history: pl.DataFrame,
                         rules: KillSwitchRules = KillSwitchRules()) -> KillSwitchDecision:
    """Engage when the last session lost more than `max_daily_loss` of the previous session's
    equity, or stands more than `max_drawdown` below the highest equity so far.

    `equity_history`: columns session and equity, one row per session, ascending. A gain
    counts as a daily loss of zero; equity at or below zero on the last session engages.
    """
    sessions, equity = _checked_history(equity_history)
    last_session, last = sessions[-1], equity[-1]
    reasons = []
    if last <= 0:  # a wiped-out account must stop, not fail on a ratio
        reasons.append(f"equity {last:,.2f} on {last_session} is not positive")

    daily_loss = None
    if len(equity) > 1 and equity[-2] > 0:
        previous_session, previous = sessions[-2], equity[-2]
        daily_loss = max(1.0 - last / previous, 0.0)
        if daily_loss > rules.max_daily_loss + TOLERANCE:
            reasons.append(
                f"daily loss {daily_loss:.2%} on {last_session} (equity {last:,.2f} against "
                f"{previous:,.2f} on {previous_session}) exceeds the max_daily_loss limit of "
                f"{rules.max_daily_loss:.2%}")

    high_index = max(range(len(equity)), key=equity.__getitem__)
    high = equity[high_index]
    drawdown = max(1.0 - last / high, 0.0) if high > 0 else 1.0
    if drawdown > rules.max_drawdown + TOLERANCE:
        reasons.append(
            f"drawdown {drawdown:.2%} on {last_session} (equity {last:,.2f} against the high of "
            f"{high:,.2f} on {sessions[high_index]}) exceeds the max_drawdown limit of "
            f"{rules.max_drawdown:.2%}")
    return KillSwitchDecision(bool(reasons), tuple(reasons), daily_loss, drawdown)


def _checked_history(frame: pl.DataFrame) -> tuple[list, list[float]]:
    missing = [c for c in ("session", "equity") if c not in frame.columns]
    if missing:
        raise ValueError(f"equity_history lacks the columns {missing}: pass one row per session "
                         "with columns session and equity")
    if frame.is_empty():
        raise ValueError("equity_history is empty: the kill switch needs at least the last "
                         "session's equity")
    sessions = frame["session"].to_list()
    if any(s is None for s in sessions):
        raise ValueError("equity_history has rows without a session")
    disorder = next((i for i in range(1, len(sessions)) if sessions[i] <= sessions[i - 1]), None)
    if disorder is not None:
        raise ValueError(
            f"equity_history sessions must be strictly ascending, but {sessions[disorder]} "
            f"follows {sessions[disorder - 1]}: sort by session and keep one row per session")
    equity = frame["equity"].to_list()
    bad = [(s, e) for s, e in zip(sessions, equity)
           if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e)]
    if bad:
        raise ValueError(f"equity must be a finite amount on every session; bad rows "
                         f"(session, equity): {bad[:5]}")
    return sessions, [float(e) for e in equity]
