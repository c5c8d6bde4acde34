"""Target portfolio from predictions: long-only top-k under simple position limits.

The risk issue deepens this (VaR sizing, long-short, no-trade bands); the contract stays:
predictions and prices in, one row per target symbol out, every limit already applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import polars as pl


class PortfolioInputError(ValueError):
    """Inputs the portfolio cannot be built from; no order may follow."""


@dataclass(frozen=True, slots=True)
class PortfolioLimits:
    top_k: int = 10
    max_positions: int = 20
    max_position_weight: float = 0.10
    cash_reserve: float = 0.05
    allow_fractional: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.max_positions < 1:
            raise ValueError("top_k and max_positions must be at least 1")
        if not 0 < self.max_position_weight <= 1:
            raise ValueError("max_position_weight must be in (0, 1]")
        if not 0 <= self.cash_reserve < 1:
            raise ValueError("cash_reserve must be in [0, 1)")


TARGET_SCHEMA = {
    "session": pl.Date,
    "symbol": pl.String,
    "score": pl.Float64,
    "price": pl.Float64,
    "weight": pl.Float64,
    "target_shares": pl.Float64,
    "target_value": pl.Float64,
}


def build_target_portfolio(
    session: date,
    predictions: pl.DataFrame,
    prices: pl.DataFrame,
    equity: float,
    limits: PortfolioLimits,
) -> pl.DataFrame:
    """Equal-weight the best `min(top_k, max_positions)` scores, capped per position.

    `predictions`: symbol, score. `prices`: symbol, close (the session's close, used to size).
    Weights never exceed `max_position_weight`; their sum never exceeds 1 - cash_reserve.
    """
    if not math.isfinite(equity) or equity <= 0:
        raise PortfolioInputError(f"equity must be a positive number to size a portfolio, got {equity}")
    scored = predictions.select("symbol", "score").filter(
        pl.col("score").is_not_null() & pl.col("score").is_finite()
    )
    if predictions.height and scored.height == 0:
        raise PortfolioInputError(
            f"all {predictions.height} predictions for {session} are null, NaN or infinite"
        )
    priced = scored.join(prices.select("symbol", pl.col("close").alias("price")), on="symbol", how="inner")
    priced = priced.filter(pl.col("price").is_finite() & (pl.col("price") > 0))
    count = min(limits.top_k, limits.max_positions, priced.height)
    if count == 0:
        return pl.DataFrame(schema=TARGET_SCHEMA)
    investable = 1.0 - limits.cash_reserve
    weight = min(investable / count, limits.max_position_weight)
    chosen = priced.sort(["score", "symbol"], descending=[True, False]).head(count)
    shares = (pl.lit(equity * weight) / pl.col("price"))
    shares = shares if limits.allow_fractional else shares.floor()
    target = chosen.with_columns(
        pl.lit(session).alias("session"),
        pl.lit(weight).alias("weight"),
        shares.alias("target_shares"),
    ).with_columns((pl.col("target_shares") * pl.col("price")).alias("target_value"))
    # Whole shares round down, so the realised weight is at most the planned one.
    target = target.with_columns((pl.col("target_value") / equity).alias("weight"))
    return target.select(list(TARGET_SCHEMA)).cast(TARGET_SCHEMA)
