"""The paper or live track record against the backtest's expectation, session by session.

Two expectations are used, each where it is meaningful:
- the *shadow backtest*: the backtest run over the same sessions on the predictions actually
  made. With the same decisions and the same cost model, the track record should follow it; a
  gap means the venue traded differently (slippage, rejections, missed fills) or money moved
  that the strategy did not move. Return and Sharpe are compared with it, because over a few
  weeks the market's own noise dwarfs any expectation taken from another period.
- the *version's backtest*: the out-of-sample backtest stored when the model was trained. Its
  maximum drawdown (times `drawdown_multiple`) bounds the track record's drawdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from trading_pipeline.domain import performance as perf


@dataclass(frozen=True, slots=True)
class MonitorThresholds:
    return_tolerance: float = 0.30  # of the expected cumulative return (at least of 1 % of equity)
    sharpe_drift: float = 1.0  # annualised Sharpe below the expectation by more than this
    drawdown_multiple: float = 1.5  # of the version's backtest max drawdown
    drawdown_alert: float = 0.15  # absolute drawdown
    daily_loss_alert: float = 0.03  # one session's loss

    def __post_init__(self) -> None:
        for name in ("return_tolerance", "sharpe_drift", "drawdown_multiple", "drawdown_alert",
                     "daily_loss_alert"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"monitor threshold {name} must be a positive number, got {value}")


@dataclass(frozen=True, slots=True)
class MonitorCheck:
    name: str
    limit: float
    actual: float
    breached: bool
    detail: str


# Below this, a relative return tolerance would call a rounding difference a breach.
RETURN_FLOOR = 0.01


def evaluate_track_record(track: pl.DataFrame, shadow: pl.DataFrame, version_max_drawdown: float,
                          thresholds: MonitorThresholds) -> list[MonitorCheck]:
    """`track` and `shadow`: session, equity over the same sessions (the shadow's first equity
    is rescaled to the track's). `version_max_drawdown`: a fraction <= 0. Returns one check each
    for return, Sharpe, drawdown against the backtest, absolute drawdown and daily loss."""
    for name, frame in (("track record", track), ("shadow backtest", shadow)):
        missing = [c for c in ("session", "equity") if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} lacks columns {missing}")
    if track.is_empty():
        raise ValueError("the track record is empty: nothing to monitor yet")
    track = track.select("session", "equity").sort("session")
    shadow = shadow.select("session", "equity").sort("session")
    if track["session"].to_list() != shadow["session"].to_list():
        raise ValueError("the shadow backtest must cover exactly the track record's sessions")
    start = float(track["equity"][0])
    live = perf.equity_curve(track, start)
    expected = perf.equity_curve(shadow, float(shadow["equity"][0]))
    live_return = float(track["equity"][-1]) / start - 1
    expected_return = float(shadow["equity"][-1]) / float(shadow["equity"][0]) - 1
    return_band = thresholds.return_tolerance * max(abs(expected_return), RETURN_FLOOR)
    live_sharpe = perf.summary(live, start)["annualised_sharpe"]
    expected_sharpe = perf.summary(expected, float(shadow["equity"][0]))["annualised_sharpe"]
    drawdown = -float(live["drawdown"].min())
    drawdown_limit = thresholds.drawdown_multiple * max(-version_max_drawdown, -float(expected["drawdown"].min()))
    # The session's own loss: the worst of the whole track would raise the same alert again
    # every session after one bad day.
    session_loss = -float(live["daily_return"][-1]) if live.height > 1 else 0.0
    worst_day = -float(live["daily_return"].min()) if live.height > 1 else 0.0
    return [
        MonitorCheck("return", return_band, live_return - expected_return,
                     abs(live_return - expected_return) > return_band,
                     f"return {live_return:+.2%} against the backtest's {expected_return:+.2%} over "
                     f"the same {track.height} sessions (tolerance ±{return_band:.2%})"),
        MonitorCheck("sharpe_drift", thresholds.sharpe_drift, expected_sharpe - live_sharpe,
                     expected_sharpe - live_sharpe > thresholds.sharpe_drift,
                     f"Sharpe {live_sharpe:.2f} against the backtest's {expected_sharpe:.2f} "
                     f"(alert below by more than {thresholds.sharpe_drift:.2f})"),
        MonitorCheck("drawdown_vs_backtest", drawdown_limit, drawdown,
                     drawdown_limit > 0 and drawdown > drawdown_limit,
                     f"drawdown {drawdown:.2%} against {thresholds.drawdown_multiple:g} x the "
                     f"backtest's {drawdown_limit / thresholds.drawdown_multiple:.2%}"),
        MonitorCheck("drawdown", thresholds.drawdown_alert, drawdown, drawdown > thresholds.drawdown_alert,
                     f"drawdown {drawdown:.2%} (alert above {thresholds.drawdown_alert:.0%})"),
        MonitorCheck("daily_loss", thresholds.daily_loss_alert, session_loss,
                     session_loss > thresholds.daily_loss_alert,
                     f"this session {-session_loss:+.2%} (alert beyond -{thresholds.daily_loss_alert:.0%}; "
                     f"worst of the track {-worst_day:+.2%})"),
    ]


def breaches(checks: list[MonitorCheck]) -> list[MonitorCheck]:
    return [c for c in checks if c.breached]


def checks_frame(checks: list[MonitorCheck]) -> pl.DataFrame:
    return pl.DataFrame(
        {"check": [c.name for c in checks], "limit": [c.limit for c in checks],
         "actual": [c.actual for c in checks], "breached": [c.breached for c in checks],
         "detail": [c.detail for c in checks]},
        schema={"check": pl.String, "limit": pl.Float64, "actual": pl.Float64,
                "breached": pl.Boolean, "detail": pl.String},
    )
