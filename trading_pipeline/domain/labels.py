"""Training targets: forward returns and their cross-sectional percentile rank.

The label of session D looks `horizon` sessions ahead, so it is known only after D+horizon's
close: the last `horizon` sessions of any bar set have null labels and training drops them.
"""

from __future__ import annotations

import polars as pl

from trading_pipeline.domain.features import cross_sectional_rank, require_bar_frame


def forward_return_labels(bars: pl.DataFrame, horizon: int = 5) -> pl.DataFrame:
    """`session, symbol, forward_return, label` for every bar, sorted by session then symbol.

    forward_return: adj_close of D+horizon over adj_close of D, minus 1, where D+horizon is the
    symbol's `horizon`-th next bar. label: its percentile rank among that session's symbols.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    bars = require_bar_frame(bars)
    price = pl.col("adj_close")
    forward = (price.shift(-horizon) / price - 1).over("symbol")
    labelled = bars.select(
        "session",
        "symbol",
        pl.when(forward.is_finite()).then(forward).otherwise(None).alias("forward_return"),
    )
    return labelled.with_columns(
        cross_sectional_rank("forward_return").alias("label")
    )
