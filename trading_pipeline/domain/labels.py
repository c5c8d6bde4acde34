"""Training targets: forward returns, and what the model learns from them.

The label of session D looks `horizon` sessions ahead, so it is known only after D+horizon's
close: the last `horizon` sessions of any bar set have null labels and training drops them.
`forward_return` (what models are scored against) is always the raw return; `label` (what
they learn) is one of LABEL_KINDS:

- `rank`: the forward return's percentile rank among the session's symbols;
- `excess`: the forward return minus the session's mean (the market's move taken out);
- `excess_vol`: that excess divided by the symbol's volatility over the 20 sessions up to D
  (known at D), so a volatile name's noise does not dominate the fit.
"""

from __future__ import annotations

import polars as pl

from trading_pipeline.domain.features import require_bar_frame
from trading_pipeline.domain.ranks import session_percentile_ranks

LABEL_KINDS = ("rank", "excess", "excess_vol")
VOL_WINDOW = 20


def forward_return_labels(bars: pl.DataFrame, horizon: int = 5, kind: str = "rank") -> pl.DataFrame:
    """`session, symbol, forward_return, label` for every bar, sorted by session then symbol.

    forward_return: adj_close of D+horizon over adj_close of D, minus 1, where D+horizon is the
    symbol's `horizon`-th next bar. label: see the module's docstring.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    if kind not in LABEL_KINDS:
        raise ValueError(f"unknown label kind {kind!r}: choose one of {', '.join(LABEL_KINDS)} "
                         "(TRADING_LABEL_KIND)")
    bars = require_bar_frame(bars)
    price = pl.col("adj_close")
    forward = (price.shift(-horizon) / price - 1).over("symbol")
    volatility = (price / price.shift(1) - 1).rolling_std(VOL_WINDOW).over("symbol")
    labelled = bars.select(
        "session",
        "symbol",
        pl.when(forward.is_finite()).then(forward).otherwise(None).alias("forward_return"),
        volatility.alias("_vol"),
    )
    if kind == "rank":
        label = session_percentile_ranks(labelled.get_column("forward_return"), labelled.get_column("session"))
        return labelled.with_columns(label.alias("label")).drop("_vol")
    excess = pl.col("forward_return") - pl.col("forward_return").mean().over("session")
    if kind == "excess":
        label = excess
    else:
        scaled = excess / pl.col("_vol")
        label = pl.when(scaled.is_finite()).then(scaled).otherwise(None)
    return labelled.with_columns(label.alias("label")).drop("_vol")
