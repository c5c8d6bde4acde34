"""The factor library: per-symbol time-series factors and cross-sectional transforms.

Per-symbol factors are polars expressions over one symbol's bars in session order (the caller
evaluates them `.over` the symbol), so a shift or a rolling window only looks back. `lookback`
is the rows (sessions with a bar, D included) a factor needs to be non-null; the perturbation
tests check that nothing after D changes it.

Inputs every expression may use (prepared by `compute.py`): the bar columns; `ret_1` (daily
return of adj_close); `adj_open`, `adj_high`, `adj_low` (the day's prices scaled by
adj_close / close, so windows spanning a split or dividend compare like with like);
`log_volume` (log1p of volume). The families follow qlib's Alpha158 (price and volume ratios,
rolling statistics over 5 to 60 sessions, K-line shapes, price-volume correlations), divided by
the current price where Alpha158 does so, so they compare across symbols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# Alpha158's windows. The longest fixes how much history a complete row needs.
WINDOWS = (5, 10, 20, 30, 60)
TINY = 1e-12  # keeps Alpha158's ratios finite where a range or a sum is zero


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    lookback: int  # rows of the symbol's history, D included, a non-null value needs
    build: Callable[[], pl.Expr]  # per-symbol expression, evaluated over rows in session order
    family: str


@dataclass(frozen=True, slots=True)
class CrossSectional:
    """A transform of one per-symbol factor within each session: uses only that session's rows."""

    name: str
    source: str
    kind: str  # "rank": percentile in [0, 1]; "zscore"; "demean": minus the session mean


@dataclass(frozen=True, slots=True)
class FeatureSet:
    name: str
    factors: tuple[Factor, ...]
    cross_sectional: tuple[CrossSectional, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(f.name for f in self.factors), *(c.name for c in self.cross_sectional))

    @property
    def lookback(self) -> int:
        return max(f.lookback for f in self.factors)


adj_close = pl.col("adj_close")


# -- the small set: the 15 features the loop has always used ----------------------------------

def _small() -> tuple[Factor, ...]:
    range_rel = (pl.col("high") - pl.col("low")) / pl.col("close")
    return (
        Factor("ret_1", 2, lambda: adj_close / adj_close.shift(1) - 1, "return"),
        Factor("ret_5", 6, lambda: adj_close / adj_close.shift(5) - 1, "return"),
        Factor("ret_20", 21, lambda: adj_close / adj_close.shift(20) - 1, "return"),
        Factor("ret_60", 61, lambda: adj_close / adj_close.shift(60) - 1, "return"),
        Factor("vol_20", 21, lambda: pl.col("ret_1").rolling_std(20), "volatility"),
        Factor("vol_60", 61, lambda: pl.col("ret_1").rolling_std(60), "volatility"),
        Factor("volume_ratio_20", 20,
               lambda: pl.col("volume") / pl.col("volume").rolling_mean(20), "volume"),
        # Dollar volume uses the traded (unadjusted) close: it measures liquidity that day.
        Factor("log_dollar_volume_20", 20,
               lambda: (pl.col("close") * pl.col("volume")).rolling_mean(20).log1p(), "volume"),
        Factor("range_rel", 1, lambda: range_rel, "kline"),
        Factor("range_rel_20", 20, lambda: range_rel.rolling_mean(20), "kline"),
        Factor("dist_high_20", 20, lambda: adj_close / adj_close.rolling_max(20) - 1, "price"),
    )


SMALL_FACTORS = _small()
SMALL_RANKED = ("ret_5", "ret_20", "vol_20", "volume_ratio_20")


# -- the Alpha158-style library -----------------------------------------------------------------

def _kline() -> tuple[Factor, ...]:
    o, h, lo, c = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")
    span = h - lo + TINY
    upper, lower = pl.max_horizontal(o, c), pl.min_horizontal(o, c)
    shapes = {
        "kmid": lambda: (c - o) / o,
        "klen": lambda: (h - lo) / o,
        "kmid2": lambda: (c - o) / span,
        "kup": lambda: (h - upper) / o,
        "kup2": lambda: (h - upper) / span,
        "klow": lambda: (lower - lo) / o,
        "klow2": lambda: (lower - lo) / span,
        "ksft": lambda: (2 * c - h - lo) / o,
        "ksft2": lambda: (2 * c - h - lo) / span,
        # the day's prices against its close (Alpha158's OPEN0, HIGH0, LOW0)
        "open0": lambda: o / c,
        "high0": lambda: h / c,
        "low0": lambda: lo / c,
    }
    return tuple(Factor(name, 1, build, "kline") for name, build in shapes.items())


def _rolling(window: int) -> tuple[Factor, ...]:
    w = window
    close, high, low = adj_close, pl.col("adj_high"), pl.col("adj_low")
    volume, log_volume, ret = pl.col("volume"), pl.col("log_volume"), pl.col("ret_1")
    move = adj_close - adj_close.shift(1)
    specs: dict[str, tuple[int, Callable[[], pl.Expr], str]] = {
        # price level against its recent path
        f"roc_{w}": (w + 1, lambda: close.shift(w) / close, "price"),
        f"ma_{w}": (w, lambda: close.rolling_mean(w) / close, "price"),
        f"std_{w}": (w, lambda: close.rolling_std(w) / close, "price"),
        f"max_{w}": (w, lambda: high.rolling_max(w) / close, "price"),
        f"min_{w}": (w, lambda: low.rolling_min(w) / close, "price"),
        f"rsv_{w}": (w, lambda: (close - low.rolling_min(w))
                     / (high.rolling_max(w) - low.rolling_min(w) + TINY), "price"),
        # up-day counts and the share of the path that went up (RSI-like)
        f"cntp_{w}": (w + 1, lambda: (move > 0).cast(pl.Float64).rolling_mean(w), "momentum"),
        f"sump_{w}": (w + 1, lambda: move.clip(lower_bound=0).rolling_sum(w)
                      / (move.abs().rolling_sum(w) + TINY), "momentum"),
        # volume against its recent level and spread; volume-weighted volatility
        f"vma_{w}": (w, lambda: volume.rolling_mean(w) / (volume + TINY), "volume"),
        f"vstd_{w}": (w, lambda: volume.rolling_std(w) / (volume + TINY), "volume"),
        f"wvma_{w}": (w + 1, lambda: (ret.abs() * volume).rolling_std(w)
                      / ((ret.abs() * volume).rolling_mean(w) + TINY), "volume"),
        # how price and volume move together
        f"corr_{w}": (w, lambda: pl.rolling_corr(close, log_volume, window_size=w), "price_volume"),
        f"cord_{w}": (w + 1, lambda: pl.rolling_corr(
            ret, (volume / volume.shift(1)).log1p(), window_size=w), "price_volume"),
    }
    return tuple(Factor(name, lookback, build, family) for name, (lookback, build, family) in specs.items())


ALPHA_FACTORS: tuple[Factor, ...] = (
    *_kline(),
    *(factor for window in WINDOWS for factor in _rolling(window)),
)

# Cross-sectional views: the session's percentile rank, z-score, and (for returns) the return
# in excess of the session's mean, a market-relative version of each.
# (the small set already ranks vol_20)
_ALPHA_CROSS_SOURCES = ("roc_5", "roc_20", "roc_60", "std_20", "vma_20", "corr_20", "rsv_20",
                        "sump_20", "log_dollar_volume_20")
CROSS_SECTIONAL: tuple[CrossSectional, ...] = (
    *(CrossSectional(f"rank_{name}", name, "rank") for name in _ALPHA_CROSS_SOURCES),
    CrossSectional("z_vol_20", "vol_20", "zscore"),
    *(CrossSectional(f"z_{name}", name, "zscore") for name in _ALPHA_CROSS_SOURCES),
    *(CrossSectional(f"rel_{name}", name, "demean") for name in ("ret_5", "ret_20", "ret_60")),
)

_SMALL_CROSS = tuple(CrossSectional(f"rank_{name}", name, "rank") for name in SMALL_RANKED)

FEATURE_SETS: dict[str, FeatureSet] = {
    "small": FeatureSet("small", SMALL_FACTORS, _SMALL_CROSS),
    # a superset of the small one: tables and monitors built on the small columns keep working
    "alpha": FeatureSet("alpha", (*SMALL_FACTORS, *ALPHA_FACTORS), (*_SMALL_CROSS, *CROSS_SECTIONAL)),
}


def feature_set(name: str) -> FeatureSet:
    """The named feature set, or a ValueError naming the choices."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ValueError(f"unknown feature set {name!r}: choose one of {', '.join(FEATURE_SETS)} "
                         "(TRADING_FEATURE_SET)") from None


def feature_set_for(columns: tuple[str, ...] | list[str]) -> FeatureSet:
    """The smallest feature set holding every one of `columns` (a model's own): what must be
    computed to score with that model, whatever TRADING_FEATURE_SET says today."""
    wanted = set(columns)
    for chosen in sorted(FEATURE_SETS.values(), key=lambda s: len(s.columns)):
        if wanted <= set(chosen.columns):
            return chosen
    unknown = sorted(wanted - set().union(*(s.columns for s in FEATURE_SETS.values())))
    raise ValueError(f"no feature set computes the model's columns {', '.join(unknown[:10])}: the model "
                     "was trained by a version of this project with other factors; train a new one")
