"""Equity curve, daily P&L and drawdown from account snapshots."""

from __future__ import annotations

import polars as pl

PERFORMANCE_SCHEMA = {
    "session": pl.Date,
    "equity": pl.Float64,
    "daily_pnl": pl.Float64,
    "daily_return": pl.Float64,
    "peak_equity": pl.Float64,
    "drawdown": pl.Float64,
}


def equity_curve(account: pl.DataFrame, initial_equity: float) -> pl.DataFrame:
    """`account`: session, equity (one row per session). Drawdown is a fraction (<= 0)."""
    if account.is_empty():
        return pl.DataFrame(schema=PERFORMANCE_SCHEMA)
    curve = account.select("session", "equity").sort("session")
    previous = pl.col("equity").shift(1).fill_null(initial_equity)
    peak = pl.max_horizontal(pl.col("equity").cum_max(), pl.lit(initial_equity))
    return curve.with_columns(
        (pl.col("equity") - previous).alias("daily_pnl"),
        (pl.col("equity") / previous - 1.0).alias("daily_return"),
        peak.alias("peak_equity"),
    ).with_columns((pl.col("equity") / pl.col("peak_equity") - 1.0).alias("drawdown")).cast(
        PERFORMANCE_SCHEMA
    )


def summary(curve: pl.DataFrame, initial_equity: float) -> dict[str, float]:
    if curve.is_empty():
        return {"sessions": 0}
    returns = curve["daily_return"]
    std = returns.std() if curve.height > 1 else None
    sharpe = (returns.mean() / std * 252**0.5) if std else 0.0
    return {
        "sessions": curve.height,
        "equity": float(curve["equity"][-1]),
        "total_return": float(curve["equity"][-1] / initial_equity - 1.0),
        "max_drawdown": float(curve["drawdown"].min()),
        "annualised_sharpe": float(sharpe),
    }
