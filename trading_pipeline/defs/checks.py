"""Asset checks on the edges of the loop. Blocking checks stop every downstream step."""


import dagster as dg
import polars as pl

from trading_pipeline.defs.metadata import markdown_table
from trading_pipeline.defs.partitions import session_of
from trading_pipeline.defs.resources import WarehouseResource
from trading_pipeline.domain.calendar import previous_session
from trading_pipeline.services.trading import BREAKS, RISK_CHECKS
from trading_pipeline.storage import market_store


@dg.asset_check(asset="market_bars", blocking=True,
                description="No NaN or non-positive prices, no symbol missing against the "
                "previous session, no stale (unchanged OHLC) bars.")
def bar_quality(context: dg.AssetCheckExecutionContext,
                warehouse: WarehouseResource) -> dg.AssetCheckResult:
    session = session_of(context)
    today = market_store.read_bars(warehouse.warehouse, [session])
    before = market_store.read_bars(warehouse.warehouse, [previous_session(session)])
    prices = ["open", "high", "low", "close"]
    bad_price = today.filter(pl.any_horizontal([pl.col(c).is_nan() | (pl.col(c) <= 0) for c in prices])).height
    missing = sorted(set(before["symbol"]) - set(today["symbol"])) if before.height else []
    stale = 0
    if before.height:
        joined = today.join(before, on="symbol", suffix="_prev")
        stale = joined.filter(pl.all_horizontal([pl.col(c) == pl.col(f"{c}_prev") for c in prices])).height
    return dg.AssetCheckResult(
        passed=today.height > 0 and bad_price == 0 and not missing and stale == 0,
        metadata={"rows": today.height, "bad_prices": bad_price, "missing_symbols": len(missing),
                  "missing": ", ".join(missing[:20]), "stale_bars": stale},
    )


@dg.asset_check(asset="predictions", blocking=True,
                description="Every score finite, every row carries the model version.")
def prediction_sanity(context: dg.AssetCheckExecutionContext,
                      warehouse: WarehouseResource) -> dg.AssetCheckResult:
    scores = warehouse.warehouse.read_partition("predictions", session_of(context))
    non_finite = scores.filter(~pl.col("score").is_finite() | pl.col("score").is_null()).height if scores.height else 0
    versions = scores["model_version"].n_unique() if scores.height else 0
    return dg.AssetCheckResult(
        passed=scores.height > 0 and non_finite == 0 and versions == 1,
        metadata={"rows": scores.height, "non_finite_scores": non_finite, "model_versions": versions},
    )


TARGET_LIMITS = {
    "max_positions": "At most `max_positions` names.",
    "max_position_weight": "No position above `max_position_weight` of equity.",
    "max_gross_leverage": "Gross exposure at most `max_gross_leverage` times equity.",
    "cash_reserve": "Long weights leave at least `cash_reserve` in cash.",
    "max_position_var": "No position's 1-day 95 % historical VaR above `max_position_var` of equity.",
    "max_portfolio_var": "The book's 1-day 95 % historical VaR (joint history) within `max_portfolio_var`.",
}


def _risk_limit_check(name: str, description: str):
    @dg.asset_check(asset="target_portfolio", name=name, blocking=True, description=description)
    def _check(context: dg.AssetCheckExecutionContext,
               warehouse: WarehouseResource) -> dg.AssetCheckResult:
        checks = warehouse.warehouse.read_partition(RISK_CHECKS, session_of(context))
        row = checks.filter(pl.col("check") == name) if checks.height else checks
        if row.is_empty():
            return dg.AssetCheckResult(passed=False, metadata={"detail": f"no {name} figure stored"})
        found = row.row(0, named=True)
        return dg.AssetCheckResult(passed=bool(found["passed"]), metadata={
            "limit": found["limit"], "actual": found["actual"], "detail": found["detail"]})
    return _check


risk_limit_checks = [_risk_limit_check(name, text) for name, text in TARGET_LIMITS.items()]


@dg.asset_check(asset="reconciled_positions",
                description="No unexplained difference between the broker and the ledger.")
def no_reconciliation_breaks(context: dg.AssetCheckExecutionContext,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    breaks = warehouse.warehouse.read_partition(BREAKS, session_of(context))
    return dg.AssetCheckResult(
        passed=breaks.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"breaks": breaks.height, "table": markdown_table(breaks)},
    )


all_checks = [bar_quality, prediction_sanity, *risk_limit_checks, no_reconciliation_breaks]
