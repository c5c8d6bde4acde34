"""Risk limits and the pure checks that prove a target or a batch of orders keeps them.

Each check returns one `LimitCheck` per limit, passed or not, so callers can show every figure
(asset checks) and refuse to send when any failed (`raise_if_failed`). A check that cannot be
evaluated (no VaR figures, an order without a price) fails: unknown risk never passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from itertools import repeat

import polars as pl

from trading_pipeline.domain.orders import OrderIntent, Side
from trading_pipeline.domain.risk.var import VarFigures

# Float slack for comparisons against a limit: sums of weights are not exact.
TOLERANCE = 1e-9


class RiskLimitBreach(RuntimeError):
    """At least one risk limit failed; nothing may be sent."""

    def __init__(self, failed: list[LimitCheck]):
        self.failed = failed
        super().__init__("risk limits failed: " + "; ".join(c.detail for c in failed))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_positions: int = 20
    max_position_weight: float = 0.10
    min_order_value: float = 100.0  # dollars
    cash_reserve: float = 0.05
    max_gross_leverage: float = 1.0
    max_orders_per_day: int = 100
    max_position_var: float = 0.005  # fraction of equity, 1-day historical at var_confidence
    max_portfolio_var: float = 0.02
    var_lookback: int = 252  # sessions
    var_confidence: float = 0.95

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{f.name} must be a finite number, got {value!r}")
        if problems:
            raise ValueError("invalid risk limits: " + "; ".join(problems))
        rules = [
            (isinstance(self.max_positions, int) and self.max_positions >= 1,
             f"max_positions must be a whole number >= 1, got {self.max_positions}"),
            (0 < self.max_position_weight <= 1,
             f"max_position_weight must be in (0, 1], got {self.max_position_weight}"),
            (self.min_order_value >= 0, f"min_order_value must be >= 0 dollars, got {self.min_order_value}"),
            (0 <= self.cash_reserve < 1, f"cash_reserve must be in [0, 1), got {self.cash_reserve}"),
            (0 < self.max_gross_leverage <= 10,
             f"max_gross_leverage must be in (0, 10], got {self.max_gross_leverage}"),
            (isinstance(self.max_orders_per_day, int) and self.max_orders_per_day >= 1,
             f"max_orders_per_day must be a whole number >= 1, got {self.max_orders_per_day}"),
            (0 < self.max_position_var <= 1, f"max_position_var must be in (0, 1], got {self.max_position_var}"),
            (0 < self.max_portfolio_var <= 1,
             f"max_portfolio_var must be in (0, 1], got {self.max_portfolio_var}"),
            (isinstance(self.var_lookback, int) and self.var_lookback >= 20,
             f"var_lookback must be a whole number of at least 20 sessions, got {self.var_lookback}"),
            (0.5 < self.var_confidence < 1, f"var_confidence must be in (0.5, 1), got {self.var_confidence}"),
        ]
        problems = [message for ok, message in rules if not ok]
        if problems:
            raise ValueError("invalid risk limits: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class LimitCheck:
    name: str
    limit: float
    actual: float
    passed: bool
    detail: str


def failed(checks: Iterable[LimitCheck]) -> list[LimitCheck]:
    return [c for c in checks if not c.passed]


def raise_if_failed(checks: Iterable[LimitCheck]) -> None:
    bad = failed(checks)
    if bad:
        raise RiskLimitBreach(bad)


def _at_most(name: str, limit: float, actual: float, what: str) -> LimitCheck:
    passed = actual <= limit + TOLERANCE
    relation = "within" if passed else "exceeds"
    return LimitCheck(name, limit, actual, passed, f"{name}: {what} {actual:.6g} {relation} limit {limit:.6g}")


def check_target(
    target: pl.DataFrame, equity: float, limits: RiskLimits, var_figures: VarFigures | None
) -> list[LimitCheck]:
    """Every position and VaR limit on a target frame (symbol, weight; target_shares if present).

    Cash reserve: 1 - sum of long weights >= reserve (short proceeds are collateral, not cash;
    for a long-only book this is 1 - sum(weights)). The VaR checks need `var_figures` computed
    for exactly the target's weights; missing or mismatched figures fail.
    """
    # rows with a non-zero (non-null) weight and target_shares; read as lists, since two polars
    # filters of a ten-row frame cost more than the checks themselves (run each session)
    shares = target["target_shares"].to_list() if "target_shares" in target.columns else None
    weights = {s: w for s, w, q in zip(target["symbol"].to_list(), target["weight"].to_list(),
                                        shares if shares is not None else repeat(1))
               if w is not None and w != 0 and q is not None and q != 0}
    abs_weights = [abs(w) for w in weights.values()]
    long_sum = sum(w for w in weights.values() if w > 0)
    checks = [
        _at_most("max_positions", limits.max_positions, len(weights), "positions held"),
        _at_most("max_position_weight", limits.max_position_weight, max(abs_weights, default=0.0),
                 "largest |weight|"),
        _at_most("max_gross_leverage", limits.max_gross_leverage, sum(abs_weights), "gross leverage"),
    ]
    cash_left = 1.0 - long_sum
    ok = cash_left >= limits.cash_reserve - TOLERANCE
    checks.append(LimitCheck(
        "cash_reserve", limits.cash_reserve, cash_left, ok,
        f"cash_reserve: 1 - long weights = {cash_left:.6g} {'meets' if ok else 'is below'} "
        f"reserve {limits.cash_reserve:.6g}",
    ))
    checks.extend(_var_checks(weights, equity, limits, var_figures))
    return checks


def _var_checks(weights: dict[str, float], equity: float, limits: RiskLimits,
                figures: VarFigures | None) -> list[LimitCheck]:
    names = ("max_position_var", "max_portfolio_var")
    caps = (limits.max_position_var, limits.max_portfolio_var)
    if figures is None:
        why = "no VaR figures were given, so the limit cannot be shown to hold"
        return [LimitCheck(n, c, math.nan, False, f"{n}: {why}") for n, c in zip(names, caps)]
    covered = figures.weights()
    mismatch = sorted(
        s for s in set(weights) | set(covered)
        if not math.isclose(weights.get(s, 0.0), covered.get(s, 0.0), rel_tol=1e-9, abs_tol=1e-12)
    )
    if mismatch:
        why = f"VaR figures were computed for other weights (differ on {', '.join(mismatch[:5])})"
        return [LimitCheck(n, c, math.nan, False, f"{n}: {why}") for n, c in zip(names, caps)]
    if not math.isclose(figures.equity, equity, rel_tol=1e-9):
        why = f"VaR figures were computed for equity {figures.equity}, not {equity}"
        return [LimitCheck(n, c, math.nan, False, f"{n}: {why}") for n, c in zip(names, caps)]
    worst = figures.max_position_var
    return [
        _at_most("max_position_var", limits.max_position_var, worst, "largest position VaR (fraction of equity)"),
        _at_most("max_portfolio_var", limits.max_portfolio_var, figures.portfolio_var,
                 "portfolio VaR (fraction of equity)"),
    ]


def check_orders(
    intents: list[OrderIntent],
    prices: Mapping[str, float],
    buying_power: float,
    limits: RiskLimits,
    current_positions: Mapping[str, float] | None = None,
) -> list[LimitCheck]:
    """Order count, minimum order value and total buy value against buying power.

    Orders are valued at `prices`; an order without a usable price fails the minimum-value
    check. Sell proceeds do not count towards the buys: sells fill only at the next open,
    so buys alone must fit in `buying_power`. When `current_positions` (symbol -> shares) is
    given, a sell that closes a long position entirely is exempt from the minimum (the
    rebalancer never leaves a small remainder held forever).
    """
    current = current_positions or {}
    too_small: list[str] = []
    smallest = math.inf
    buy_value = 0.0
    for intent in intents:
        price = prices.get(intent.symbol)
        held = current.get(intent.symbol, 0.0)
        full_exit = intent.side is Side.SELL and current_positions is not None and held > 0 \
            and math.isclose(intent.quantity, held, rel_tol=1e-12)
        if price is None or not (math.isfinite(price) and price > 0):
            if not full_exit:
                too_small.append(f"{intent.symbol} (no price)")
                smallest = math.nan
            continue
        value = intent.quantity * price
        if intent.side is Side.BUY:
            buy_value += value
        if full_exit:
            continue
        if not math.isnan(smallest):
            smallest = min(smallest, value)
        if value < limits.min_order_value - TOLERANCE:
            too_small.append(f"{intent.symbol} ${value:,.2f}")
    checks = [_at_most("max_orders_per_day", limits.max_orders_per_day, len(intents), "orders")]
    smallest_shown = 0.0 if smallest == math.inf else smallest
    checks.append(LimitCheck(
        "min_order_value", limits.min_order_value, smallest_shown, not too_small,
        "min_order_value: every order is worth at least the minimum" if not too_small else
        f"min_order_value: {len(too_small)} orders below ${limits.min_order_value:,.2f} or unvalued: "
        + ", ".join(too_small[:10]),
    ))
    ok = buy_value <= buying_power + TOLERANCE * max(1.0, abs(buying_power))
    checks.append(LimitCheck(
        "buying_power", buying_power, buy_value, ok,
        f"buying_power: buys ${buy_value:,.2f} {'fit in' if ok else 'exceed'} buying power ${buying_power:,.2f}",
    ))
    return checks
