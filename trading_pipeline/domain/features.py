"""Point-in-time features: the row for session D uses only bars on or before D.

Every rolling value is computed per symbol over rows ordered by session (a missing bar
shortens nothing: windows count rows, not calendar days). Cross-sectional values (ranks,
z-scores, market-relative returns) are taken within one session, so they too use nothing after
D. Rows without enough history hold nulls. The factors and their windows are declared once in
`domain/factors/library.py`; a feature set (`small`: the loop's 15 features, `alpha`: those and
the Alpha158-style library) picks which are computed.
"""

from __future__ import annotations

import polars as pl

from trading_pipeline.domain.factors import FEATURE_SETS, CrossSectional, FeatureSet, feature_set
from trading_pipeline.domain.market.bars import BAR_SCHEMA

DEFAULT_FEATURE_SET = "small"
FEATURE_COLUMNS: tuple[str, ...] = FEATURE_SETS[DEFAULT_FEATURE_SET].columns
# Sessions of bars needed before D for every feature of D to be non-null (ret_60, roc_60): the
# longest lookback of any set, less D itself.
MIN_HISTORY_SESSIONS = max(fs.lookback for fs in FEATURE_SETS.values()) - 1

_SYMBOL = "__symbol_code"  # integer code of the symbol: grouping on it is cheaper than on text


class BarsError(ValueError):
    """Bars that features or labels cannot be computed from."""


def feature_columns(name: str = DEFAULT_FEATURE_SET) -> tuple[str, ...]:
    """The columns `compute_features(bars, name)` returns after `session, symbol`."""
    return feature_set(name).columns


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


def _cross_sectional(view: CrossSectional) -> pl.Expr:
    if view.kind == "rank":
        return cross_sectional_rank(view.source).alias(view.name)
    value = pl.col(view.source)
    mean = value.mean().over("session")
    if view.kind == "demean":
        return (value - mean).alias(view.name)
    std = value.std().over("session")
    return pl.when(std > 0).then((value - mean) / std).otherwise(None).alias(view.name)


def _finite_or_null(name: str) -> pl.Expr:
    value = pl.col(name)
    return pl.when(value.is_finite()).then(value).otherwise(None).alias(name)


def compute_features(bars: pl.DataFrame, feature_set_name: str = DEFAULT_FEATURE_SET) -> pl.DataFrame:
    """`session, symbol, *feature_columns(feature_set_name)` for every bar, sorted by session
    then symbol."""
    chosen: FeatureSet = feature_set(feature_set_name)
    bars = require_bar_frame(bars)
    ret_1 = next(f for f in FEATURE_SETS["small"].factors if f.name == "ret_1")
    # Rows come sorted by session; `.over(symbol)` keeps that order inside each symbol, so
    # shifts and rolling windows look back in time only.
    scale = pl.col("adj_close") / pl.col("close")
    inputs = [ret_1.build().over(_SYMBOL).alias("ret_1")]
    if chosen.name != "small":  # the small set needs no adjusted range or log volume
        inputs += [(pl.col("high") * scale).alias("adj_high"), (pl.col("low") * scale).alias("adj_low"),
                   pl.col("volume").log1p().alias("log_volume")]
    per_symbol = [f for f in chosen.factors if f.name != "ret_1"]
    return (
        bars.lazy()
        .with_columns(pl.col("symbol").cast(pl.Categorical).to_physical().alias(_SYMBOL))
        .with_columns(inputs)
        # a factor of one row needs no grouping
        .with_columns((f.build() if f.lookback == 1 else f.build().over(_SYMBOL)).alias(f.name)
                      for f in per_symbol)
        .with_columns(_finite_or_null(f.name) for f in chosen.factors)
        .with_columns(_cross_sectional(view) for view in chosen.cross_sectional)
        .select("session", "symbol", *chosen.columns)
        .collect()
    )
