"""Is a bar believable? Per symbol and session, across every symbol at once (polars).

A move is *explained* when the symbol's own recent volatility, the market's move that day or
a corporate action visible in the adjusted close accounts for it. An unexplained move is
suspect unless the evidence of a real move agrees (volume and dollar volume well above their medians, close and
adjusted close telling the same story), as on an earnings gap.

Every bar is compared with the symbol's *last good* bar, not merely the previous one: after a
100x bar, the next (correct) bar is measured against the price before the spike and passes,
and a run of bad bars stays suspect until the data comes back or a person releases it.
Passes repeat until the set of suspects stops changing, because each suspect moves the
reference of the bars after it.

Suspect shapes, most specific first (the first that fits names the bar):

| kind | shape |
|---|---|
| `unusable_value` | a price null, NaN, infinite, zero or negative; volume null, NaN or negative |
| `ohlc_inconsistent` | high below low, or open or close outside [low, high] |
| `unit_error` | close or adjusted close about 100x or 1/100 of the last good one |
| `unadjusted_split` | close and adjusted close both moved by a split ratio (2, 3, 3:2, 10, 1:N ...) |
| `adj_close_inconsistent` | the adjusted close moved far while the close did not (or the reverse, by no split ratio) |
| `unexplained_move` | an adjusted move beyond `sigma_multiple` of recent volatility and `min_suspect_move`, after the market's move, without volume to back it |
| `ohlc_outlier` | a high or low far outside the bar's open and close (a spike in one price), without volume to back it |
| `stale` | open, high, low, close repeated from the previous bar, or a flat bar with zero volume: no trade (illiquid, halted or delisted) |

Not suspect but recorded: `split_in_adj_close`, the close jumped by a split ratio and the
adjusted close did not: the source already adjusts for the split and returns use `adj_close`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

PRICES = ("open", "high", "low", "close")
ASSESSMENT_SCHEMA = {
    "session": pl.Date,
    "symbol": pl.String,
    "kind": pl.String,
    "quarantined": pl.Boolean,
    "reason": pl.String,
}
# Split and reverse-split ratios seen in practice (3:2 is 1.5).
SPLIT_RATIOS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0, 20.0, 25.0, 30.0, 50.0)
UNIT_RATIOS = (100.0,)
MAX_PASSES = 1000  # a bound, not a target: passes stop when nothing changes


@dataclass(frozen=True, slots=True)
class PlausibilityRules:
    volatility_window: int = 60  # sessions of good returns behind a symbol's volatility
    min_volatility_sessions: int = 10  # fewer: the session's cross-sectional median volatility
    volatility_floor: float = 0.005  # a very quiet name still moves this much a day (log)
    sigma_multiple: float = 10.0  # an excess move beyond this many sigmas is unexplained...
    min_suspect_move: float = 0.20  # ...and beyond this absolute log move
    volume_window: int = 20
    volume_confirms: float = 2.0  # volume and dollar volume this multiple of their medians back a real move
    agreement_tolerance: float = 0.03  # close and adj_close moves differ by a dividend at most
    ratio_tolerance: float = 0.08  # |log(move) - log(ratio)| within this fits a ratio
    wick_multiple: float = 12.0  # a high/low beyond open and close by this many sigmas...
    min_suspect_wick: float = 0.25  # ...and this log distance is a spike in one price
    market_min_symbols: int = 5  # fewer symbols that session: no market move is used

    def __post_init__(self) -> None:
        for name in ("volatility_floor", "sigma_multiple", "min_suspect_move", "volume_confirms",
                     "agreement_tolerance", "ratio_tolerance", "wick_multiple", "min_suspect_wick"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"plausibility rule {name} must be a positive number, got {value!r}")
        for name in ("volatility_window", "min_volatility_sessions", "volume_window", "market_min_symbols"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"plausibility rule {name} must be a whole number >= 1, got {value!r}")


def empty_assessment() -> pl.DataFrame:
    return pl.DataFrame(schema=ASSESSMENT_SCHEMA)


def assess_bars(
    bars: pl.DataFrame,
    rules: PlausibilityRules | None = None,
    known: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """ASSESSMENT_SCHEMA rows for every suspect (quarantined) or noteworthy bar of `bars`.

    `bars` is a BAR_SCHEMA frame with enough history before the sessions of interest for
    the volatility and volume medians (about `volatility_window` sessions). `known` (session,
    symbol, quarantined) pins earlier decisions: a quarantined row is never a reference, a
    released one (quarantined false) always is, whatever the rules would say now.
    """
    rules = rules or PlausibilityRules()
    if bars.is_empty():
        return empty_assessment()
    frame = (
        bars.select("session", "symbol", *PRICES, "volume", "adj_close")
        .with_columns(pl.col(c).cast(pl.Float64) for c in (*PRICES, "volume", "adj_close"))
        .with_columns(pl.col("adj_close").fill_null(pl.col("close")))
        .sort("symbol", "session")
    )
    if known is not None and known.height:
        pinned = known.select("session", "symbol", pl.col("quarantined").alias("__pinned__")).unique(
            ["session", "symbol"], keep="last")
        frame = frame.join(pinned, on=["session", "symbol"], how="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias("__pinned__"))
    frame = frame.with_columns(_fixed_kind().alias("__fixed_kind__"))
    # __suspect__: not a reference. A stale bar is quarantined but its price is the real last
    # price, so it stays a reference. __held_out__: quarantined, kept out of the volatility.
    frame = frame.with_columns(pl.lit(False).alias("__suspect__"), pl.lit(False).alias("__held_out__"))
    judged = _judge(frame, rules, None)
    # The market's move and the typical volatility of each session, from the first pass: later
    # passes re-judge only the symbols whose suspects changed, and a few symbols' references
    # barely move a cross-sectional median.
    market = judged.select("session", "__market__", "__market_n__", "__typical_sigma__").unique("session")
    by_symbol = {key[0]: part for key, part in judged.partition_by("symbol", as_dict=True, maintain_order=True).items()}
    changed = list(by_symbol)
    # Each pass settles at least one more bar of an episode, so a long run of bad bars takes
    # as many passes as it has bars; only its symbol is re-judged.
    for _ in range(MAX_PASSES):
        redo = []
        for symbol in changed:
            part = by_symbol[symbol]
            suspect = part["__quarantined__"] & (part["__kind__"].fill_null("") != "stale")
            if suspect.equals(part["__suspect__"]) and part["__quarantined__"].equals(part["__held_out__"]):
                continue
            redo.append(part.select(*frame.columns).with_columns(
                suspect.alias("__suspect__"), part["__quarantined__"].alias("__held_out__")))
        if not redo:
            break
        again = _judge(pl.concat(redo), rules, market)
        changed = []
        for key, part in again.partition_by("symbol", as_dict=True, maintain_order=True).items():
            by_symbol[key[0]] = part
            changed.append(key[0])
    settled = pl.concat(
        part.select(*frame.columns[:-2],
                    (part["__quarantined__"] & (part["__kind__"].fill_null("") != "stale")).alias("__suspect__"),
                    part["__quarantined__"].alias("__held_out__"))
        for part in by_symbol.values()
    )
    judged = _judge(settled, rules, market, with_reasons=True)
    return (
        judged.filter(pl.col("__kind__").is_not_null())
        .select("session", "symbol", pl.col("__kind__").alias("kind"),
                pl.col("__quarantined__").alias("quarantined"), pl.col("__reason__").alias("reason"))
        .sort("session", "symbol")
    )


def suspect_share(assessment: pl.DataFrame, session_symbols: int) -> float:
    """The share of a session's symbols that are quarantined."""
    if session_symbols <= 0:
        return 0.0
    return assessment.filter(pl.col("quarantined")).select("symbol").n_unique() / session_symbols


def _fixed_kind() -> pl.Expr:
    """Kinds that need no neighbour: a value that cannot be a price, a bar that contradicts itself."""
    unusable = pl.any_horizontal(
        *((pl.col(c).is_null() | ~pl.col(c).is_finite() | (pl.col(c) <= 0)) for c in (*PRICES, "adj_close")),
        pl.col("volume").is_null() | ~pl.col("volume").is_finite() | (pl.col("volume") < 0),
    )
    high, low = pl.col("high"), pl.col("low")
    inconsistent = (high < low) | pl.any_horizontal(
        (pl.col(c) < low) | (pl.col(c) > high) for c in ("open", "close"))
    return pl.when(unusable).then(pl.lit("unusable_value")).when(inconsistent).then(pl.lit("ohlc_inconsistent"))


def _last_good(column: str) -> pl.Expr:
    return (
        pl.when(~pl.col("__suspect__")).then(pl.col(column)).shift(1).forward_fill().over("symbol")
    )


def _ratio_fit(move: pl.Expr, ratios: tuple[float, ...], tolerance: float) -> pl.Expr:
    """The ratio (>1 up, <1 down) whose log fits `move`, else null."""
    fit = pl.lit(None, dtype=pl.Float64)
    for ratio in sorted(ratios, reverse=True):
        for signed in (ratio, 1 / ratio):
            fit = pl.when((move - math.log(signed)).abs() <= tolerance).then(pl.lit(signed)).otherwise(fit)
    return fit


def _ratio_text(ratio: pl.Expr) -> pl.Expr:
    """2.0 -> "2:1", 0.5 -> "1:2" (reverse), 1.5 -> "3:2"."""
    up = pl.max_horizontal(ratio, 1 / ratio)
    whole = (up - up.round(0)).abs() < 1e-9
    text = pl.when(whole).then(pl.format("{}:1", up.round(0).cast(pl.Int64))).otherwise(
        pl.format("{}:2", (up * 2).round(0).cast(pl.Int64)))
    flipped = pl.when(whole).then(pl.format("1:{}", up.round(0).cast(pl.Int64))).otherwise(
        pl.format("2:{}", (up * 2).round(0).cast(pl.Int64)))
    # a price that fell by the ratio is a split (N:1); one that rose is a reverse split (1:N)
    return pl.when(ratio < 1).then(text).otherwise(flipped)


def _judge(frame: pl.DataFrame, rules: PlausibilityRules, market_frame: pl.DataFrame | None,
           with_reasons: bool = False) -> pl.DataFrame:
    """One pass: every bar of `frame` judged against references from its __suspect__ column.
    `market_frame` (session, __market__, __market_n__, __typical_sigma__): use these instead of
    the cross-section of `frame`, which may hold only some symbols. `with_reasons`: only the
    named bars, each with its reason (costly to build: once, at the end)."""
    good = ~pl.col("__suspect__")
    usable = pl.col("__fixed_kind__").is_null()
    frame = frame.with_columns(
        _last_good("close").alias("__ref_close__"),
        _last_good("adj_close").alias("__ref_adj__"),
        _last_good("session").alias("__ref_session__"),
        *(pl.col(c).shift(1).over("symbol").alias(f"__prev_{c}__") for c in (*PRICES, "volume")),
    ).with_columns(
        pl.when(usable).then((pl.col("close") / pl.col("__ref_close__")).log()).alias("__r_close__"),
        pl.when(usable).then((pl.col("adj_close") / pl.col("__ref_adj__")).log()).alias("__r_adj__"),
    )
    # Volatility and volume from good bars before this one.
    trusted = good & ~pl.col("__held_out__") & usable
    good_return = pl.when(trusted).then(pl.col("__r_adj__"))
    good_volume = pl.when(trusted & (pl.col("volume") > 0)).then(pl.col("volume"))
    frame = frame.with_columns(
        good_return.rolling_std(rules.volatility_window, min_samples=rules.min_volatility_sessions)
        .forward_fill().shift(1).over("symbol").alias("__own_sigma__"),
        good_volume.rolling_median(rules.volume_window, min_samples=3)
        .forward_fill().shift(1).over("symbol").alias("__median_volume__"),
        (good_volume * pl.col("close")).rolling_median(rules.volume_window, min_samples=3)
        .forward_fill().shift(1).over("symbol").alias("__median_dollars__"),
    )
    if market_frame is None:
        frame = frame.with_columns(
            pl.col("__r_adj__").median().over("session").alias("__market__"),
            pl.col("__r_adj__").count().over("session").alias("__market_n__"),
            pl.col("__own_sigma__").median().over("session").alias("__typical_sigma__"),
        )
    else:
        frame = frame.join(market_frame, on="session", how="left", maintain_order="left")
    sigma = pl.max_horizontal(
        pl.coalesce(pl.col("__own_sigma__"), pl.col("__typical_sigma__"), pl.lit(0.02)),
        pl.lit(rules.volatility_floor),
    )
    market = pl.when(pl.col("__market_n__") >= rules.market_min_symbols).then(pl.col("__market__")).otherwise(0.0)
    r_close, r_adj = pl.col("__r_close__"), pl.col("__r_adj__")
    excess = r_adj - market
    threshold = pl.max_horizontal(rules.sigma_multiple * sigma, pl.lit(rules.min_suspect_move))
    volume_ratio = pl.col("volume") / pl.col("__median_volume__")
    dollar_ratio = pl.col("volume") * pl.col("close") / pl.col("__median_dollars__")
    agree = (r_close - r_adj).abs() <= rules.agreement_tolerance
    # Shares and dollars both: a price error inflates dollar volume alone, an unadjusted split
    # share volume alone; a real gap (earnings, a crash) trades far more of both.
    # Volume backs a one-day move only: a bar still away from a reference older than the
    # previous bar continues an episode that began with a suspect bar.
    fresh = pl.col("__ref_session__") == pl.col("session").shift(1).over("symbol")
    volume_backs = (fresh & (volume_ratio >= rules.volume_confirms)
                    & (dollar_ratio >= rules.volume_confirms)).fill_null(False)
    # A unit error in the close alone still misprices the book: it is never taken for a split.
    unit = _ratio_fit(r_close, UNIT_RATIOS, rules.ratio_tolerance)
    unit_adj = _ratio_fit(r_adj, UNIT_RATIOS, rules.ratio_tolerance)
    split = _ratio_fit(r_close, SPLIT_RATIOS, rules.ratio_tolerance)
    factor_split = _ratio_fit(r_close - r_adj, SPLIT_RATIOS, rules.ratio_tolerance)
    ordinary_adj = (excess.abs() <= threshold).fill_null(True)
    big_close = ((r_close - market).abs() > threshold).fill_null(False)
    top = pl.max_horizontal("open", "close")
    bottom = pl.min_horizontal("open", "close")
    wick = pl.max_horizontal((pl.col("high") / top).log(), (bottom / pl.col("low")).log())
    wick_limit = pl.max_horizontal(rules.wick_multiple * sigma, pl.lit(rules.min_suspect_wick))
    stale = (
        pl.all_horizontal(pl.col(c) == pl.col(f"__prev_{c}__") for c in PRICES).fill_null(False)
        | ((pl.col("open") == pl.col("close")) & (pl.col("high") == pl.col("low")) & (pl.col("volume") == 0))
    )
    has_ref = pl.col("__ref_close__").is_not_null()

    kind = (
        pl.when(pl.col("__fixed_kind__").is_not_null()).then(pl.col("__fixed_kind__"))
        .when(has_ref & (unit.is_not_null() | unit_adj.is_not_null())).then(pl.lit("unit_error"))
        .when(has_ref & big_close & split.is_not_null() & agree & ~volume_backs).then(pl.lit("unadjusted_split"))
        .when(has_ref & ~ordinary_adj & ~agree & factor_split.is_null()).then(pl.lit("adj_close_inconsistent"))
        .when(has_ref & ordinary_adj & big_close & factor_split.is_null()).then(pl.lit("adj_close_inconsistent"))
        .when(has_ref & ~ordinary_adj & ~(volume_backs & agree)).then(pl.lit("unexplained_move"))
        .when((wick > wick_limit).fill_null(False) & ~volume_backs).then(pl.lit("ohlc_outlier"))
        .when(stale).then(pl.lit("stale"))
        .when(has_ref & ordinary_adj & big_close & factor_split.is_not_null()).then(pl.lit("split_in_adj_close"))
    )
    frame = frame.with_columns(kind.alias("__kind__"))
    pinned = pl.col("__pinned__")
    quarantined = (
        pl.when(pinned.is_not_null()).then(pinned)
        .otherwise(pl.col("__kind__").is_not_null() & (pl.col("__kind__") != "split_in_adj_close"))
    )
    frame = frame.with_columns(quarantined.alias("__quarantined__"))
    if not with_reasons:
        return frame
    named = frame.filter(pl.col("__kind__").is_not_null())
    return named.with_columns(
        _reason(rules, sigma, market, volume_ratio, dollar_ratio, wick, split, factor_split).alias("__reason__"))


def _num(expr: pl.Expr, digits: int = 4) -> pl.Expr:
    return expr.round_sig_figs(digits).cast(pl.String).fill_null("n/a")


def _pct(expr: pl.Expr) -> pl.Expr:
    return pl.format("{}%", ((expr.exp() - 1) * 100).round(1).cast(pl.String).fill_null("n/a"))


def _reason(rules, sigma, market, volume_ratio, dollar_ratio, wick, split, factor_split) -> pl.Expr:
    """A sentence a person can check against the bar."""
    close, ref_close = pl.col("close"), pl.col("__ref_close__")
    ref = pl.format("the last good close {} ({})", _num(ref_close), pl.col("__ref_session__").cast(pl.String))
    volume = pl.format("volume {}x and dollar volume {}x their {}-session medians", _num(volume_ratio, 3),
                       _num(dollar_ratio, 3), pl.lit(rules.volume_window))
    kind = pl.col("__kind__")
    released = pl.when(pl.col("__pinned__") == False).then(pl.lit(" [released]")).otherwise(pl.lit(""))  # noqa: E712
    text = (
        pl.when(kind == "unusable_value").then(pl.format(
            "unusable value: open {}, high {}, low {}, close {}, adj_close {}, volume {}",
            *(_num(pl.col(c)) for c in (*PRICES, "adj_close", "volume"))))
        .when(kind == "ohlc_inconsistent").then(pl.format(
            "bar contradicts itself: open {}, high {}, low {}, close {} (need low <= open, close <= high)",
            *(_num(pl.col(c)) for c in PRICES)))
        .when(kind == "unit_error").then(pl.format(
            "close {} (adjusted {}) is {}x {} (adjusted {}x): a unit error (x100 or /100), not a market move",
            _num(close), _num(pl.col("adj_close")), _num(close / ref_close, 3), ref,
            _num(pl.col("adj_close") / pl.col("__ref_adj__"), 3)))
        .when(kind == "unadjusted_split").then(pl.format(
            "close {} is {}x {} and the adjusted close moved the same: looks like a {} split the "
            "adjusted close does not reflect",
            _num(close), _num(close / ref_close, 3), ref, _ratio_text(split)))
        .when(kind == "adj_close_inconsistent").then(pl.format(
            "close moved {} but the adjusted close moved {} from {}: the two disagree by no split ratio",
            _pct(pl.col("__r_close__")), _pct(pl.col("__r_adj__")), ref))
        .when(kind == "unexplained_move").then(pl.format(
            "adjusted move {} from {} against a market move of {}: beyond {} sigma (sigma {}) and "
            "{}; {}, too low to back a real move",
            _pct(pl.col("__r_adj__")), ref, _pct(market), pl.lit(rules.sigma_multiple), _pct(sigma),
            _pct(pl.lit(rules.min_suspect_move)), volume))
        .when(kind == "ohlc_outlier").then(pl.format(
            "high {} / low {} reach {} beyond open {} and close {} (limit {}); {}: a spike in one price",
            _num(pl.col("high")), _num(pl.col("low")), _pct(wick), _num(pl.col("open")), _num(close),
            _pct(pl.max_horizontal(rules.wick_multiple * sigma, pl.lit(rules.min_suspect_wick))), volume))
        .when(kind == "stale").then(pl.format(
            "unchanged bar (open {}, high {}, low {}, close {}, volume {}): no trade, the symbol is "
            "illiquid, halted or no longer listed", *(_num(pl.col(c)) for c in (*PRICES, "volume"))))
        .when(kind == "split_in_adj_close").then(pl.format(
            "close moved {} while the adjusted close moved {}: a {} split the source already adjusts "
            "for; returns use the adjusted close",
            _pct(pl.col("__r_close__")), _pct(pl.col("__r_adj__")), _ratio_text(factor_split)))
    )
    return pl.concat_str(text, released)


def believed_returns(bars: pl.DataFrame, untrusted: pl.DataFrame) -> pl.DataFrame:
    """session, symbol, return of the adjusted close, where an `untrusted` (session, symbol)
    bar's price is not believed: the adjusted close holds its last good value through it (a 0
    return that day) and the move lands on the next good bar. The first session has no return."""
    flagged = untrusted.select("session", "symbol").unique().with_columns(pl.lit(True).alias("__untrusted__"))
    believed = (
        bars.select("session", "symbol", "adj_close")
        .join(flagged, on=["session", "symbol"], how="left")
        .sort("symbol", "session")
        .with_columns(
            pl.when(pl.col("__untrusted__").is_null() & pl.col("adj_close").is_finite() & (pl.col("adj_close") > 0))
            .then(pl.col("adj_close")).forward_fill().over("symbol").alias("adj_close"))
    )
    return (
        believed.with_columns((pl.col("adj_close") / pl.col("adj_close").shift(1).over("symbol") - 1).alias("return"))
        .filter(pl.col("session") > pl.col("session").min())
        .select("session", "symbol", "return")
        .sort("session", "symbol")
    )
