"""Asset checks on the edges of the loop. Blocking checks stop every downstream step."""


import dagster as dg
import polars as pl

from trading_pipeline.defs.metadata import markdown_table
from trading_pipeline.defs.partitions import session_of
from trading_pipeline.defs.resources import BrokerResource, StrategyResource, WarehouseResource
from trading_pipeline.services.modeling import unscored
from trading_pipeline.services.trading import BREAKS, RISK_CHECKS, read_account_table
from trading_pipeline.storage import market_store


@dg.asset_check(asset="market_bars", blocking=True,
                description="Bars are stored for the session and at most `max_suspect_share` of its "
                "symbols are quarantined (suspect, unchanged or missing bars: named, left out of the "
                "session's trading with the reason). More than that stops the run before any order.")
def bar_quality(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                strategy: StrategyResource) -> dg.AssetCheckResult:
    from trading_pipeline.defs.quality import quarantine_table
    from trading_pipeline.services.data_quality import QUALITY

    session = session_of(context)
    today = market_store.read_bars(warehouse.warehouse, [session])
    records = warehouse.warehouse.read_partition(QUALITY, session) if today.height else pl.DataFrame()
    quarantined = records.filter(pl.col("quarantined")) if records.height else records
    symbols = today["symbol"].n_unique() + (quarantined.filter(pl.col("kind") == "missing").height if records.height else 0)
    share = quarantined.height / symbols if symbols else 0.0
    by_kind = quarantined.group_by("kind").len().sort("kind").iter_rows() if quarantined.height else []
    return dg.AssetCheckResult(
        passed=today.height > 0 and share <= strategy.risk.max_suspect_share,
        description=(f"no bars stored for {session}" if today.is_empty() else
                     f"{quarantined.height} of {symbols} symbols quarantined ({share:.1%}; the run stops above "
                     f"{strategy.risk.max_suspect_share:.0%})"),
        metadata={"rows": today.height, "quarantined": quarantined.height, "quarantined_share": round(share, 6),
                  "max_suspect_share": strategy.risk.max_suspect_share,
                  **{f"quarantined_{kind}": count for kind, count in by_kind},
                  "quarantined_symbols": ", ".join(quarantined["symbol"].to_list()[:50]) if quarantined.height else "none",
                  "data_quality": quarantine_table(records) if records.height else dg.MetadataValue.md("_(none)_")},
    )


@dg.asset_check(asset="predictions", blocking=True,
                description="Every score finite, every row carries the model version; or no score "
                "at all, recorded with why (hold cash: no champion with signal).")
def prediction_sanity(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                      broker: BrokerResource) -> dg.AssetCheckResult:
    nothing = unscored(warehouse.warehouse, session_of(context), broker.venue)
    if nothing is not None:  # the plan holds cash: nothing scored is the expected outcome
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0, "unscored": nothing.reason})
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


@dg.multi_asset_check(
    name="risk_limits",
    specs=[dg.AssetCheckSpec(name, asset="target_portfolio", blocking=True, description=text)
           for name, text in TARGET_LIMITS.items()],
    description="The target's risk limits as recorded by the plan: one step for the six checks "
    "(each still its own blocking check in the UI), not six steps of a second each.",
)
def risk_limit_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                      broker: BrokerResource):
    checks = read_account_table(warehouse.warehouse, RISK_CHECKS, broker.venue, session_of(context))
    for name in TARGET_LIMITS:
        row = checks.filter(pl.col("check") == name) if checks.height else checks
        if row.is_empty():
            yield dg.AssetCheckResult(asset_key="target_portfolio", check_name=name, passed=False,
                                      metadata={"detail": f"no {name} figure stored"})
            continue
        found = row.row(0, named=True)
        yield dg.AssetCheckResult(asset_key="target_portfolio", check_name=name,
                                  passed=bool(found["passed"]), metadata={
                                      "limit": found["limit"], "actual": found["actual"],
                                      "detail": found["detail"]})


@dg.asset_check(asset="reconciled_positions",
                description="No unexplained difference between the broker and the ledger.")
def no_reconciliation_breaks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                             broker: BrokerResource) -> dg.AssetCheckResult:
    breaks = read_account_table(warehouse.warehouse, BREAKS, broker.venue, session_of(context))
    breaks = breaks.drop("account", "session", strict=False)
    return dg.AssetCheckResult(
        passed=breaks.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"breaks": breaks.height, "table": markdown_table(breaks)},
    )


all_checks = [bar_quality, prediction_sanity, risk_limit_checks, no_reconciliation_breaks]
