"""Point-in-time features: the row for session D uses only bars on or before D.

Every rolling value is computed per symbol over rows ordered by session (a missing bar
shortens nothing: windows count rows, not calendar days). Cross-sectional ranks are taken
within one session, so they too use nothing after D. Rows without enough history hold nulls.
"""

from __future__ import annotations

import polars as pl

from trading_pipeline.domain.market.bars import BAR_SCHEMA

# Sessions of bars needed before D for every feature of D to be non-null (ret_60, vol_60).
MIN_HISTORY_SESSIONS = 60

_RANKED = ("ret_5", "ret_20", "vol_20", "volume_ratio_20")

FEATURE_COLUMNS: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_20",
    "ret_60",
    "vol_20",
    "vol_60",
    "volume_ratio_20",
    "log_dollar_volume_20",
    "range_rel",
    "range_rel_20",
    "dist_high_20",
    *(f"rank_{name}" for name in _RANKED),
)


class BarsError(ValueError):
    """Bars that features or labels cannot be computed from."""


def require_bar_frame(bars: pl.DataFrame) -> pl.DataFrame:
    """The bars cast to BAR_SCHEMA and sorted by session then symbol, or a BarsError.

    Only the shape is checked here (columns, types, one row per session and symbol); the
    market data validator owns the bar rules (prices, sessions) when bars are loaded.
    """
    missing = [name for name in BAR_SCHEMA if name not in bars.columns]
    if missing:
        raise BarsError(
            f"bars lack columns {missing}: expected {list(BAR_SCHEMA)} "
            "(one row per session and symbol)"
        )
    wrong = {
        name: str(bars.schema[name])
        for name, dtype in BAR_SCHEMA.items()
        if bars.schema[name] != dtype and not (dtype.is_numeric() and bars.schema[name].is_numeric())
    }
    if wrong:
        raise BarsError(f"bars columns have the wrong types {wrong}: expected {BAR_SCHEMA}")
    ordered = bars.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items()).sort(
        "session", "symbol"
    )
    # Sorted, a repeated (session, symbol) pair sits on adjacent rows: an O(n) check.
    repeated = ordered.select(
        ((pl.col("symbol") == pl.col("symbol").shift(1))
         & (pl.col("session") == pl.col("session").shift(1))).sum()
    ).item()
    if repeated:
        raise BarsError(
            f"bars hold {repeated} rows that repeat a (session, symbol) pair: "
            "keep one bar per symbol and session"
        )
    return ordered


def cross_sectional_rank(column: str) -> pl.Expr:
    """Percentile rank of `column` within each session, in [0, 1]; ties share the mean rank.

    Nulls stay null and are not counted; a session with one non-null value ranks it 0.5.
    """
    value = pl.col(column)
    rank = value.rank(method="average").over("session")
    count = value.count().over("session")
    return (
        pl.when(value.is_null())
        .then(None)
        .when(count > 1)
        .then((rank - 1) / (count - 1))
        .otherwise(0.5)
    )


def _finite_or_null(name: str) -> pl.Expr:
    value = pl.col(name)
    return pl.when(value.is_finite()).then(value).otherwise(None).alias(name)


def compute_features(bars: pl.DataFrame) -> pl.DataFrame:
    """`session, symbol, *FEATURE_COLUMNS` for every bar, sorted by session then symbol."""
    # Rows come sorted by session; `.over("symbol")` keeps that order inside each symbol, so
    # shifts and rolling windows look back in time only.
    bars = require_bar_frame(bars)
    price = pl.col("adj_close")
    daily_return = price / price.shift(1) - 1
    range_rel = (pl.col("high") - pl.col("low")) / pl.col("close")

    per_symbol = bars.with_columns(
        daily_return.over("symbol").alias("ret_1"),
        (price / price.shift(5) - 1).over("symbol").alias("ret_5"),
        (price / price.shift(20) - 1).over("symbol").alias("ret_20"),
        (price / price.shift(60) - 1).over("symbol").alias("ret_60"),
        (pl.col("volume") / pl.col("volume").rolling_mean(20)).over("symbol").alias("volume_ratio_20"),
        # Dollar volume uses the traded (unadjusted) close: it measures liquidity that day.
        (pl.col("close") * pl.col("volume")).rolling_mean(20).log1p().over("symbol")
        .alias("log_dollar_volume_20"),
        range_rel.alias("range_rel"),
        range_rel.rolling_mean(20).over("symbol").alias("range_rel_20"),
        (price / price.rolling_max(20) - 1).over("symbol").alias("dist_high_20"),
    ).with_columns(
        pl.col("ret_1").rolling_std(20).over("symbol").alias("vol_20"),
        pl.col("ret_1").rolling_std(60).over("symbol").alias("vol_60"),
    )
    raw = [name for name in FEATURE_COLUMNS if not name.startswith("rank_")]
    cleaned = per_symbol.with_columns(_finite_or_null(name) for name in raw)
    return cleaned.with_columns(
        cross_sectional_rank(name).alias(f"rank_{name}") for name in _RANKED
    ).select("session", "symbol", *FEATURE_COLUMNS)
