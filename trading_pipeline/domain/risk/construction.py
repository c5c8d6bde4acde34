"""Target portfolio from predictions under every `RiskLimits` limit.

Generalises the first long-only top-k builder (same output columns, plus side and
current_shares): long-only top-k or dollar-neutral long-short, equal or score-proportional
weights, VaR sizing, a no-trade band against current holdings, whole or fractional shares.

Steps: clean inputs -> ideal weights (selection, caps, budgets) -> VaR sizing -> shares ->
no-trade band and minimum order value against current holdings -> final limit checks. Every
share count in the result is at most the ideal one in size (except band keeps, which are
dropped if they break a limit), and a trade worth less than `min_order_value` is either skipped
(it would add exposure) or enlarged to the minimum (it reduces exposure), so the rebalancer
drops no trade for being small: its orders reach the target, except buys it cuts to today's
buying power (reached on later sessions). Rows are best score first, the rebalancer's buy
priority. If rounding pushes VaR over a limit, the ideal
weights are scaled down and the steps repeat; a target is returned only when every check passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

import numpy as np
import polars as pl

from trading_pipeline.domain.risk.limits import LimitCheck, RiskLimitBreach, RiskLimits, check_target, failed
from trading_pipeline.domain.risk.sizing import size_within_var
from trading_pipeline.domain.risk.var import ReturnMatrix, VarFigures, compute_var, history_counts

class PortfolioInputError(ValueError):
    """Inputs the portfolio cannot be built from; no order may follow."""


TARGET_SCHEMA = {
    "session": pl.Date,
    "symbol": pl.String,
    "score": pl.Float64,
    "price": pl.Float64,
    "weight": pl.Float64,
    "target_shares": pl.Float64,
    "target_value": pl.Float64,
}
RESULT_SCHEMA = {**TARGET_SCHEMA, "side": pl.String, "current_shares": pl.Float64}
MAX_ATTEMPTS = 30
# The share of a VaR window a symbol's returns may miss and still be traded (5 of 252 sessions:
# a week's halt); below it the symbol is left out until its window is whole again.
MAX_GAP_SHARE = 0.02
FRACTIONAL_STEP = 1e-6  # smallest fractional share we ask for


class Mode(StrEnum):
    LONG_ONLY = "long_only"
    LONG_SHORT = "long_short"  # top k long, bottom k short, dollar-neutral


class Weighting(StrEnum):
    EQUAL = "equal"
    SCORE = "score"  # proportional to the score's distance from the cross-sectional median


@dataclass(frozen=True, slots=True)
class ConstructionConfig:
    mode: Mode = Mode.LONG_ONLY
    weighting: Weighting = Weighting.EQUAL
    top_k: int = 10  # per side in long-short
    no_trade_band: float = 0.02  # keep current shares when |target - current| weight < band
    allow_fractional: bool = False
    limits: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
            object.__setattr__(self, "weighting", Weighting(self.weighting))
        except ValueError as error:
            raise ValueError(f"invalid construction config: {error}; modes {[m.value for m in Mode]}, "
                             f"weightings {[w.value for w in Weighting]}") from None
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a whole number >= 1, got {self.top_k!r}")
        if not (math.isfinite(self.no_trade_band) and 0 <= self.no_trade_band < 1):
            raise ValueError(f"no_trade_band must be a weight in [0, 1), got {self.no_trade_band}")
        if self.mode is Mode.LONG_SHORT and self.limits.max_positions < 2:
            raise ValueError("long_short needs max_positions >= 2 (one long and one short)")


@dataclass(frozen=True)
class TargetResult:
    frame: pl.DataFrame  # RESULT_SCHEMA, one row per symbol held after the rebalance
    var_figures: VarFigures
    notes: tuple[str, ...]
    checks: tuple[LimitCheck, ...]


def build_target(
    session: date,
    predictions: pl.DataFrame,
    prices: pl.DataFrame,
    returns: pl.DataFrame | ReturnMatrix,
    equity: float,
    config: ConstructionConfig | None = None,
    current_positions: Mapping[str, float] | None = None,
    frozen: Mapping[str, str] | None = None,
) -> TargetResult:
    """The target for `session` (held from the next open), with its VaR figures and notes.

    `predictions`: symbol, score. `prices`: symbol, close. `returns`: session, symbol, return
    (or wide). `current_positions`: symbol -> shares held now (negative for short).
    `frozen`: symbol -> reason (e.g. quarantined bad data): no order in that symbol this
    session; a holding is kept exactly as it is (valued at its price in `prices`, which should
    be its last good close), and the reason goes into the notes.
    Raises `PortfolioInputError` for unusable inputs and `RiskLimitBreach` if no target
    within every limit was found.
    """
    config = config or ConstructionConfig()
    limits = config.limits
    if not (isinstance(equity, (int, float)) and math.isfinite(equity) and equity > 0):
        raise PortfolioInputError(f"equity must be a positive number to size a portfolio, got {equity}")
    notes: list[str] = []
    scores = _clean_scores(session, predictions, notes)
    price_map = _clean_prices(prices)
    current = {str(s): float(q) for s, q in (current_positions or {}).items() if q}
    frozen = {str(s): str(why) for s, why in (frozen or {}).items()}
    unpriced_held = sorted(s for s in current if s not in price_map)
    if unpriced_held:
        raise PortfolioInputError(
            f"held symbols have no usable price for {session}: {', '.join(unpriced_held)}; "
            "the book cannot be valued or rebalanced safely: load their prices first "
            "(a quarantined or missing symbol is valued at its last good close)"
        )
    if frozen:
        notes.append("frozen, no order this session: " + "; ".join(
            f"{s} ({'held, kept' if s in current else 'not held'}): {why}" for s, why in sorted(frozen.items())))
    held_frozen = {s: q for s, q in current.items() if s in frozen}
    candidates = (list(scores) if not frozen and scores.keys() <= price_map.keys() else
                  [s for s in scores if s in price_map and s not in frozen])
    # Each pass below goes over every scored symbol once at most (thousands a session in a
    # backtest), and only the rare cases (no price, a gap) build sets of them.
    if len(candidates) < len(scores):
        skipped = sorted(s for s in scores if s not in price_map and s not in frozen)
        if skipped:
            notes.append(f"skipped, no usable price: {', '.join(skipped)}")
    if not candidates:
        raise PortfolioInputError(f"none of the {len(scores)} predicted symbols has a usable price for {session}")
    returns = ReturnMatrix.from_frame(returns)  # once: every VaR figure below reads it
    # candidates, then holdings without a score (the order matters nowhere: every use sorts)
    history = history_counts(returns, list(dict.fromkeys([*candidates, *current])), limits.var_lookback)
    # A few missing returns (a halt, a late bar) do not make a history unusable: up to
    # MAX_GAP_SHARE of the window takes the market's median return on those sessions.
    allowed_gaps = int(limits.var_lookback * MAX_GAP_SHARE)
    short = {s: n for s, n in history.items() if n < limits.var_lookback}
    without_history = {s for s, n in short.items() if n < limits.var_lookback - allowed_gaps}
    gapped = sorted(s for s, n in short.items() if s not in without_history)
    if gapped:
        notes.append(f"a few sessions missing from the last {limits.var_lookback} returns (at most "
                     f"{allowed_gaps}), the market's median return used on those sessions: "
                     + ", ".join(f"{s} ({history[s]} of {limits.var_lookback})" for s in gapped))
    if without_history:
        candidate_set = set(candidates)
        short_history = sorted(s for s in without_history if s in candidate_set)
        if short_history:
            notes.append(f"left out, a gap in the last {limits.var_lookback} sessions of returns: "
                         + ", ".join(f"{s} ({history[s]} of {limits.var_lookback})" for s in short_history))
        candidates = [s for s in candidates if s not in without_history]
    # A frozen holding cannot be traded; where its history has gaps (the quarantined bars
    # themselves), its VaR uses the market's median return of those sessions instead.
    frozen_gapped = sorted(s for s in held_frozen if s in without_history)
    if frozen_gapped:
        notes.append("VaR of frozen holdings with gaps uses the market's median return on the missing "
                     "sessions: " + ", ".join(f"{s} ({history[s]} of {limits.var_lookback})" for s in frozen_gapped))
    proxied = sorted(set(frozen_gapped) | set(gapped))
    if not candidates and not held_frozen:
        described = ", ".join(f"{s} ({n} of {limits.var_lookback})" for s, n in sorted(history.items())[:10])
        raise PortfolioInputError(
            f"no priced symbol has {limits.var_lookback} sessions of returns to measure its VaR "
            f"(finite returns each has: {described or 'none'}); load more history, fill the gaps "
            "or lower var_lookback"
        )
    candidate_scores = scores if len(candidates) == len(scores) else {s: scores[s] for s in candidates}
    ideal = _ideal_weights(candidate_scores, config, notes) if candidates else {}
    ideal = _room_for_frozen(ideal, held_frozen, price_map, equity, limits, notes)
    ideal, _, sizing_notes = size_within_var(ideal, returns, equity, limits,
                                             keep_dollar_neutral=config.mode is Mode.LONG_SHORT, proxied=proxied)
    notes.extend(sizing_notes)
    keepable = {s for s in current if s not in without_history and s not in frozen}
    use_band = config.no_trade_band > 0
    checks: list[LimitCheck] = []
    for _ in range(MAX_ATTEMPTS):
        shares = _shares(ideal, price_map, equity, current, keepable if use_band else set(), config)
        shares.update(held_frozen)  # kept exactly: no order in a frozen symbol
        weights = {s: q * price_map[s] / equity for s, q in shares.items()}
        figures = compute_var(weights, returns, equity, limits.var_confidence, limits.var_lookback,
                              proxied=proxied)
        frame = _frame(session, shares, weights, scores, price_map, current, equity)
        checks = check_target(frame, equity, limits, figures)
        bad = failed(checks)
        if not bad:
            return TargetResult(frame, figures, tuple(notes), tuple(checks))
        if use_band:  # band keeps are the only holdings above the ideal: drop them first
            use_band = False
            notes.append("no-trade band dropped: keeping current shares would break "
                         + ", ".join(c.name for c in bad))
            continue
        var_bad = [c for c in bad if c.name in ("max_position_var", "max_portfolio_var")]
        if len(var_bad) < len(bad):
            break
        factor = min(c.limit / c.actual for c in var_bad) * 0.99
        ideal = {s: w * factor for s, w in ideal.items()}
        notes.append(f"share rounding left VaR over its limit; ideal weights scaled by {factor:.4f}")
    raise RiskLimitBreach(failed(checks))


def _room_for_frozen(ideal: dict[str, float], held_frozen: dict[str, float], prices: dict[str, float],
                     equity: float, limits: RiskLimits, notes: list[str]) -> dict[str, float]:
    """Scale the ideal weights down so they and the frozen holdings (kept as they are) fit the
    gross leverage and the cash reserve together."""
    if not held_frozen or not ideal:
        return ideal
    frozen = {s: q * prices[s] / equity for s, q in held_frozen.items()}
    gross_room = limits.max_gross_leverage - sum(abs(w) for w in frozen.values())
    long_room = 1.0 - limits.cash_reserve - sum(w for w in frozen.values() if w > 0)
    gross, long = sum(abs(w) for w in ideal.values()), sum(w for w in ideal.values() if w > 0)
    factor = min(1.0, max(gross_room, 0.0) / gross if gross else 1.0, max(long_room, 0.0) / long if long else 1.0)
    if factor < 1.0:
        notes.append(f"ideal weights scaled by {factor:.4f} to leave room for the frozen holdings")
        ideal = {s: w * factor for s, w in ideal.items()}
    return ideal


def _clean_scores(session: date, predictions: pl.DataFrame, notes: list[str]) -> dict[str, float]:
    missing = {"symbol", "score"} - set(predictions.columns)
    if missing:
        raise PortfolioInputError(f"predictions need columns symbol and score; missing {sorted(missing)}")
    if predictions.height == 0:
        raise PortfolioInputError(f"no predictions for {session}: materialise predictions first")
    symbols = predictions["symbol"].to_list()
    if len(set(symbols)) < len(symbols):
        raise PortfolioInputError(f"predictions for {session} hold a symbol twice: keep one score per symbol")
    values = predictions["score"].cast(pl.Float64).to_numpy()  # null -> NaN
    usable = np.isfinite(values)
    if not usable.any():
        raise PortfolioInputError(f"all {predictions.height} predictions for {session} are null, NaN or infinite")
    if usable.all():
        return dict(zip(symbols, values.tolist()))
    dropped = sorted({s for s, ok in zip(symbols, usable.tolist()) if not ok})
    if dropped:
        notes.append(f"dropped, null/NaN/infinite score: {', '.join(dropped)}")
    return {s: v for s, v, ok in zip(symbols, values.tolist(), usable.tolist()) if ok}


def _clean_prices(prices: pl.DataFrame) -> dict[str, float]:
    if not {"symbol", "close"} <= set(prices.columns):
        raise PortfolioInputError(f"prices need columns symbol and close; got {prices.columns}")
    # finite positive closes; a symbol given twice keeps its last one. In numpy and a dict:
    # polars' filter and unique cost more than the rest of a session's decision at 3,000 symbols
    closes = prices["close"].cast(pl.Float64).to_numpy()  # null -> NaN
    usable = np.isfinite(closes) & (closes > 0)
    if usable.all():
        return dict(zip(prices["symbol"].to_list(), closes.tolist()))
    return {s: c for s, c, ok in zip(prices["symbol"].to_list(), closes.tolist(), usable.tolist()) if ok}


def _ideal_weights(scores: dict[str, float], config: ConstructionConfig, notes: list[str]) -> dict[str, float]:
    limits = config.limits
    best_first = lambda s: (-scores[s], s)  # noqa: E731
    center = float(np.partition(np.fromiter(scores.values(), float, len(scores)), len(scores) // 2)[len(scores) // 2])
    if config.mode is Mode.LONG_ONLY:
        # the k best only: sorting thousands of scores to keep ten costs more than the rest
        longs, shorts = _best(scores, min(config.top_k, limits.max_positions), best_first), []
        budget = min(1.0 - limits.cash_reserve, limits.max_gross_leverage)
    else:
        ranked = sorted(scores, key=best_first)
        per_side = min(config.top_k, limits.max_positions // 2, len(ranked) // 2)
        if per_side == 0:
            notes.append("long_short needs at least two priced symbols with history; target is empty")
            return {}
        longs, shorts = ranked[:per_side], ranked[-per_side:]
        budget = min(limits.max_gross_leverage / 2, 1.0 - limits.cash_reserve)
    if config.weighting is Weighting.EQUAL:
        raw_long = {s: 1.0 for s in longs}
        raw_short = {s: 1.0 for s in shorts}
    else:
        raw_long = {s: max(scores[s] - center, 0.0) for s in longs}
        raw_short = {s: max(center - scores[s], 0.0) for s in shorts}
    weights = _allocate(raw_long, budget, limits.max_position_weight)
    short_weights = _allocate(raw_short, budget, limits.max_position_weight)
    if config.mode is Mode.LONG_SHORT:
        gross_long, gross_short = sum(weights.values()), sum(short_weights.values())
        side = min(gross_long, gross_short)
        weights = {s: w * side / gross_long for s, w in weights.items()} if gross_long else {}
        short_weights = {s: w * side / gross_short for s, w in short_weights.items()} if gross_short else {}
    weights.update({s: -w for s, w in short_weights.items()})
    if not any(weights.values()):
        notes.append("no selected symbol has a score that earns a weight; target is empty")
    return {s: w for s, w in weights.items() if w}


def _best(scores: dict[str, float], k: int, key) -> list[str]:
    """The k symbols first by `key` (best score, then name), in that order: the k-th best score
    bounds the candidates (ties at it included), and only those are sorted."""
    if k >= len(scores):
        return sorted(scores, key=key)
    values = np.fromiter(scores.values(), float, len(scores))
    kth_best = np.partition(values, len(values) - k)[len(values) - k]
    symbols = list(scores)
    return sorted((symbols[i] for i in np.flatnonzero(values >= kth_best).tolist()), key=key)[:k]


def _allocate(raw: dict[str, float], budget: float, cap: float) -> dict[str, float]:
    """Split `budget` in proportion to `raw`, capping each at `cap` and handing the excess on."""
    free = {s: r for s, r in raw.items() if r > 0}
    weights: dict[str, float] = {}
    remaining = budget
    while free and remaining > 0:
        total = sum(free.values())
        trial = {s: remaining * r / total for s, r in free.items()}
        over = sorted(s for s, w in trial.items() if w > cap)
        if not over:
            weights.update(trial)
            break
        for symbol in over:
            weights[symbol] = cap
            remaining -= cap
            del free[symbol]
    return weights


def _shares(ideal: dict[str, float], prices: dict[str, float], equity: float, current: dict[str, float],
            keepable: set[str], config: ConstructionConfig) -> dict[str, float]:
    shares: dict[str, float] = {}
    for symbol in sorted(set(ideal) | set(current)):
        price = prices[symbol]
        weight = ideal.get(symbol, 0.0)
        held = current.get(symbol, 0.0)
        wanted = weight * equity / price
        # toward zero, so never larger than the ideal; fractional shares to the micro-share
        step = 1.0 if not config.allow_fractional else FRACTIONAL_STEP
        wanted = math.trunc(wanted / step) * step
        if symbol in keepable and abs(weight - held * price / equity) < config.no_trade_band:
            wanted = held
        wanted = _respect_min_order(held, wanted, price, config)
        if wanted:
            shares[symbol] = wanted
    return shares


def _respect_min_order(held: float, wanted: float, price: float, config: ConstructionConfig) -> float:
    """Skip a small trade that adds exposure; enlarge one that reduces it; full exits are fine."""
    minimum = config.limits.min_order_value
    delta = wanted - held
    if delta == 0 or wanted == 0 or abs(delta) * price >= minimum:
        return wanted
    if held == 0 or ((held > 0) == (wanted > 0) and abs(wanted) > abs(held)):
        return held
    if (held > 0) != (wanted > 0):
        return 0.0  # a small trade through zero: just close
    step = minimum / price
    step = float(math.ceil(step)) if not config.allow_fractional else step
    if step >= abs(held):
        return 0.0
    return held - math.copysign(step, held)


def _frame(session: date, shares: dict[str, float], weights: dict[str, float], scores: dict[str, float],
           prices: dict[str, float], current: dict[str, float], equity: float) -> pl.DataFrame:
    ranked = sorted((s for s in shares if s in scores), key=lambda s: (-scores[s], s))
    symbols = ranked + sorted(s for s in shares if s not in scores)  # band-kept, no score
    return pl.DataFrame(
        {
            "session": [session] * len(symbols),
            "symbol": symbols,
            "score": [scores.get(s) for s in symbols],
            "price": [prices[s] for s in symbols],
            "weight": [weights[s] for s in symbols],
            "target_shares": [shares[s] for s in symbols],
            "target_value": [shares[s] * prices[s] for s in symbols],
            "side": ["long" if shares[s] > 0 else "short" for s in symbols],
            "current_shares": [current.get(s, 0.0) for s in symbols],
        },
        schema=RESULT_SCHEMA,
    )
