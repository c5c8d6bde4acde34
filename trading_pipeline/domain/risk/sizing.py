"""Scale weights down until each position's and the book's historical VaR fit their limits.

Historical VaR is positively homogeneous (scaling a weight by a > 0 scales every P&L, and so
its quantile, by a), so one multiplicative step per position, then one for the book, is exact.
Weights are only ever scaled down, never up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import polars as pl

from trading_pipeline.domain.risk.limits import RiskLimits
from trading_pipeline.domain.risk.var import ReturnMatrix, VarFigures, compute_var

# Aim a hair under the limit so float rounding never leaves a figure a ulp above it.
HEADROOM = 1.0 - 1e-9


def as_weight_map(weights: Mapping[str, float] | pl.DataFrame) -> dict[str, float]:
    if isinstance(weights, pl.DataFrame):
        return dict(zip(weights["symbol"].to_list(), weights["weight"].cast(pl.Float64).to_list()))
    return {str(s): float(w) for s, w in weights.items()}


def size_within_var(
    weights: Mapping[str, float] | pl.DataFrame,
    returns: pl.DataFrame | ReturnMatrix,
    equity: float,
    limits: RiskLimits,
    keep_dollar_neutral: bool = False,
    proxied: Collection[str] = (),
) -> tuple[dict[str, float], VarFigures, list[str]]:
    """Weights with every position VaR <= max_position_var and book VaR <= max_portfolio_var.

    `weights`: symbol -> weight, or a frame with symbol and weight. With
    `keep_dollar_neutral`, after the per-position step the larger side (longs or shorts) is
    scaled down to the smaller one's gross so the book stays dollar-neutral.
    Returns the new weights, their VaR figures and one note per scaling applied.
    Raises `InsufficientHistory` when a weighted symbol lacks a full return window (one in
    `proxied` may have gaps: they take the market's median return, see `return_window`).
    """
    sized = as_weight_map(weights)
    notes: list[str] = []
    figures = _figures(sized, returns, equity, limits, proxied)
    position_var = dict(zip(figures.positions["symbol"].to_list(), figures.positions["var"].to_list()))
    for symbol in sorted(position_var):
        var = position_var[symbol]
        if var > limits.max_position_var:
            factor = limits.max_position_var / var * HEADROOM
            sized[symbol] *= factor
            notes.append(
                f"{symbol}: position VaR {var:.4%} > {limits.max_position_var:.4%}; weight scaled by {factor:.4f}"
            )
    if keep_dollar_neutral:
        note = _neutralise(sized)
        if note:
            notes.append(note)
    if notes:
        figures = _figures(sized, returns, equity, limits, proxied)
    if figures.portfolio_var > limits.max_portfolio_var:
        factor = limits.max_portfolio_var / figures.portfolio_var * HEADROOM
        sized = {s: w * factor for s, w in sized.items()}
        notes.append(
            f"book: portfolio VaR {figures.portfolio_var:.4%} > {limits.max_portfolio_var:.4%}; "
            f"all weights scaled by {factor:.4f}"
        )
        figures = _figures(sized, returns, equity, limits, proxied)
    return sized, figures, notes


def _figures(weights: dict[str, float], returns: pl.DataFrame | ReturnMatrix, equity: float, limits: RiskLimits,
             proxied: Collection[str]) -> VarFigures:
    return compute_var(weights, returns, equity, limits.var_confidence, limits.var_lookback, proxied)


def _neutralise(weights: dict[str, float]) -> str | None:
    longs = sum(w for w in weights.values() if w > 0)
    shorts = -sum(w for w in weights.values() if w < 0)
    if longs == shorts:
        return None
    if min(longs, shorts) == 0:
        for symbol in weights:
            weights[symbol] = 0.0
        return "book: one side is empty, so a dollar-neutral book holds nothing"
    larger_is_long = longs > shorts
    factor = (shorts / longs) if larger_is_long else (longs / shorts)
    for symbol, weight in weights.items():
        if (weight > 0) == larger_is_long and weight != 0:
            weights[symbol] = weight * factor
    side = "long" if larger_is_long else "short"
    return f"book: {side} side scaled by {factor:.4f} to stay dollar-neutral"
