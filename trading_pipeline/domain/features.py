"""Point-in-time features: the row for session D uses only bars on or before D.

Every rolling value is computed per symbol over rows ordered by session (a missing bar
shortens nothing: windows count rows, not calendar days). Cross-sectional values (ranks,
z-scores, market-relative returns) are taken within one session, so they too use nothing after
D. Rows without enough history hold nulls. The factors and their windows are declared once in
`domain/factors/library.py`; a feature set (`small`: the loop's 15 features, `alpha`: those and
the Alpha158-style library) picks which are computed.

How, for speed and memory at 3,000 symbols x 20 years: the rows are regrouped by symbol once,
so each `.over(symbol)` works on contiguous slices (over scattered rows, gathering them costs
several times the arithmetic), and the results go back to session order a few columns at a time;
the cross-sectional views take their session statistics from `group_by(session)` on rows already
in session order. Windows and ranks equal a per-symbol `.over` in session order bit for bit; a
z-score or demeaned value may differ in its last bit (rounding of the session's mean and std).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from trading_pipeline.domain.factors import FEATURE_SETS, CrossSectional, FeatureSet, feature_set
from trading_pipeline.domain.market.bars import BAR_SCHEMA
from trading_pipeline.domain.ranks import session_percentile_ranks

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
    ordered = bars.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items())
    # Bars usually come sorted: one O(n) pass tells (a repeated pair, or a null key, counts as
    # out of order), and only the others pay for the sort.
    previous_session, previous_symbol = pl.col("session").shift(1), pl.col("symbol").shift(1)
    same_session = pl.col("session") == previous_session
    out_of_order = ordered.select(
        ((pl.col("session") < previous_session) | (same_session & (pl.col("symbol") <= previous_symbol))).sum()
        + pl.col("session").null_count() + pl.col("symbol").null_count()
    ).item()
    repeated = 0
    if out_of_order:
        ordered = ordered.sort("session", "symbol")
        # Sorted, a repeated (session, symbol) pair sits on adjacent rows: an O(n) check.
        repeated = ordered.select((same_session & (pl.col("symbol") == previous_symbol)).sum()).item()
    if repeated:
        raise BarsError(
            f"bars hold {repeated} rows that repeat a (session, symbol) pair: "
            "keep one bar per symbol and session"
        )
    return ordered


# What a z-score or a demeaned view needs of its source's session: statistic name -> aggregation
_SESSION_STATISTICS: dict[str, dict[str, Callable[[pl.Expr], pl.Expr]]] = {
    "zscore": {"mean": lambda value: value.mean(), "std": lambda value: value.std()},
    "demean": {"mean": lambda value: value.mean()},
}


def _statistic(source: str, statistic: str) -> str:
    return f"__{statistic}_{source}"


def _with_cross_sectional(features: pl.DataFrame, views: tuple[CrossSectional, ...]) -> pl.DataFrame:
    """`features` (in session order) with the views added, one view at a time (each view's
    statistics and temporaries are held beside the frame until it is done: at 3,000 x 20 years
    more at once took the small set's peak over 4 GB).

    Ranks: `session_percentile_ranks`. Means and stds: a `group_by(session)`, each session on
    its own rows, one row per session spread to the rows by their session's index. (Taken
    `.over(session)`, a mean or std's last bit depends on which expression of the context grouped
    the rows first, polars 2.1.) Eager: the lazy engine rounds a mean or std differently
    (polars 2.1).
    """
    session = features.get_column("session")
    session_index = session.rle_id()  # rows are in session order
    sessions = features.group_by("session", maintain_order=True)
    for view in views:
        if view.kind == "rank":
            features = features.with_columns(
                session_percentile_ranks(features.get_column(view.source), session).alias(view.name))
            continue
        statistics = sessions.agg(build(pl.col(view.source)).alias(_statistic(view.source, name))
                                  for name, build in _SESSION_STATISTICS[view.kind].items())
        inputs = [statistics.get_column(_statistic(view.source, name)).gather(session_index)
                  for name in _SESSION_STATISTICS[view.kind]]
        del statistics
        features = features.with_columns(
            features.select(view.source).with_columns(inputs).select(_cross_sectional(view)))
    return features


def _cross_sectional(view: CrossSectional) -> pl.Expr:
    """A z-score or demeaned view, from its source and its session's statistics."""
    value = pl.col(view.source)

    def statistic(name: str) -> pl.Expr:
        return pl.col(_statistic(view.source, name))

    if view.kind == "demean":
        return (value - statistic("mean")).alias(view.name)
    std = statistic("std")
    return pl.when(std > 0).then((value - statistic("mean")) / std).otherwise(None).alias(view.name)


def _finite_or_null(name: str) -> pl.Expr:
    value = pl.col(name)
    return pl.when(value.is_finite()).then(value).otherwise(None).alias(name)


def _needed_columns(exprs: list[pl.Expr], available: list[str]) -> list[str]:
    """The columns of `available` that `exprs` read, in `available`'s order."""
    read = {name for expr in exprs for name in expr.meta.root_names()}
    return [name for name in available if name in read]


def _symbol_order(bars: pl.DataFrame) -> tuple[pl.Series, pl.Series, np.ndarray]:
    """The permutation that regroups the rows by symbol (stable: each symbol's rows keep their
    session order), its inverse, and the symbols' integer codes (0, 1, ...) in that order."""
    # A categorical's codes are the process's, not 0..n: numbered densely here, so that up to
    # 65,536 symbols sort as 16-bit keys (numpy's radix sort: half the time of 32-bit keys).
    codes = bars.get_column("symbol").cast(pl.Categorical).to_physical().to_numpy()
    rows_of_code = np.bincount(codes) if len(codes) else np.zeros(0, np.int64)
    present = np.flatnonzero(rows_of_code)
    dense = np.zeros(len(rows_of_code), dtype=np.uint16 if len(present) <= 1 << 16 else np.uint32)
    dense[present] = np.arange(len(present))
    to_symbol_order = np.argsort(dense[codes], kind="stable").astype(np.uint32)
    to_session_order = np.empty(len(to_symbol_order), dtype=np.uint32)
    to_session_order[to_symbol_order] = np.arange(len(to_symbol_order), dtype=np.uint32)
    sorted_codes = np.repeat(np.arange(len(present), dtype=np.uint32), rows_of_code[present])
    return pl.Series(to_symbol_order), pl.Series(to_session_order), sorted_codes


# Factors computed at once: a batch bounds the memory computing and reordering them adds (the
# alpha set's 100 columns at once would double its output's 12 GB at 3,000 symbols x 20 years).
_BATCH = 6


def _per_symbol_factors(bars: pl.DataFrame, chosen: FeatureSet) -> dict[str, pl.Series]:
    """`ret_1` and the factors that look back over earlier rows, in `bars`' order.

    Each symbol's windows see only its own rows: `.over(symbol)`, on rows regrouped by symbol so
    the groups are contiguous slices. (A rolling window over the whole column, nulled where it
    spans two symbols, would be cheaper still, but a rolling sum, mean or std keeps a running
    total from the rows before it, another symbol's included: its last bits then depend on that
    symbol's bars, later ones too. Measured: a quarter of the rolling means differed.)
    """
    ret_1 = next(f for f in FEATURE_SETS["small"].factors if f.name == "ret_1")
    looking_back = [f for f in chosen.factors if f.lookback > 1 and f.name != "ret_1"]
    scale = pl.col("adj_close") / pl.col("close")
    inputs = [ret_1.build().over(_SYMBOL).alias("ret_1")]
    if chosen.name != "small":  # the small set needs no adjusted range or log volume
        inputs += [(pl.col("high") * scale).alias("adj_high"), (pl.col("low") * scale).alias("adj_low"),
                   pl.col("volume").log1p().alias("log_volume")]
    factors = [f.build().over(_SYMBOL).alias(f.name) for f in looking_back]
    to_symbol_order, to_session_order, codes = _symbol_order(bars)
    needed = _needed_columns([*inputs, *factors], bars.columns)
    # Eager throughout: the lazy engine's plan for these windows took 1.3x to 1.7x the CPU (polars 2.1).
    by_symbol = (
        bars.select(pl.col(needed).gather(to_symbol_order))
        .with_columns(pl.Series(_SYMBOL, codes).set_sorted())
        .with_columns(inputs)
    )
    del codes, to_symbol_order
    # Each column goes back to session order inside the expression that computes it: a batch's
    # columns are computed and reordered in parallel, and held in session order only.
    wanted = [pl.col("ret_1"), *factors]
    in_bars_order: dict[str, pl.Series] = {}
    for start in range(0, len(wanted), _BATCH):
        batch = by_symbol.select(column.gather(to_session_order) for column in wanted[start:start + _BATCH])
        in_bars_order.update(batch.select(_finite_or_null(name) for name in batch.columns).to_dict())
    return in_bars_order


def compute_features(bars: pl.DataFrame, feature_set_name: str = DEFAULT_FEATURE_SET) -> pl.DataFrame:
    """`session, symbol, *feature_columns(feature_set_name)` for every bar, sorted by session
    then symbol."""
    chosen: FeatureSet = feature_set(feature_set_name)
    bars = require_bar_frame(bars)
    looking_back = _per_symbol_factors(bars, chosen)
    # a factor of one row needs no grouping: computed in place, in session order
    one_row = [f for f in chosen.factors if f.lookback == 1]
    features = (
        bars.lazy()
        .select("session", "symbol", *(f.build().alias(f.name) for f in one_row))
        .select("session", "symbol", *(_finite_or_null(f.name) for f in one_row))
        .collect()
        .with_columns(**looking_back)
    )
    del bars, looking_back
    if chosen.cross_sectional:
        features = _with_cross_sectional(features, chosen.cross_sectional)
    return features.select("session", "symbol", *chosen.columns)
