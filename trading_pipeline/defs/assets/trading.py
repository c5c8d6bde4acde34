
import dagster as dg

from trading_pipeline.defs.metadata import markdown_table
from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import (
    BrokerResource,
    MarketDataResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain import performance as perf
from trading_pipeline.services import trading


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["predictions"],
    group_name="trading",
    description="Target weights and shares to hold from the open of D+1, after every limit.",
    kinds={"polars"},
)
def target_portfolio(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
    strategy: StrategyResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with broker.connected(warehouse.warehouse, market.market(), session) as client:
        target, equity = trading.build_target(warehouse.warehouse, client, session,
                                              strategy.portfolio_limits())
    return dg.MaterializeResult(metadata={
        "positions": target.height, "equity": equity,
        "invested_weight": float(target["weight"].sum()) if target.height else 0.0,
        "max_weight": float(target["weight"].max()) if target.height else 0.0,
        "target": markdown_table(target),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["target_portfolio"],
    group_name="trading",
    description="Orders that move the broker's positions to the target, with deterministic client "
    "order ids, sent once (or recorded as not sent, with why) and the broker's answers.",
    kinds={"duckdb"},
)
def submitted_orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
    strategy: StrategyResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with broker.connected(warehouse.warehouse, market.market(), session) as client:
        outcomes, decision = trading.submit_rebalance(warehouse.ledger, client, session, strategy)
    if not decision.send:
        context.log.warning(f"orders for {session} not sent: {decision.explanation}")
    return dg.MaterializeResult(metadata={
        "orders": outcomes.height,
        "sent_now": int(outcomes["sent_now"].sum()) if outcomes.height else 0,
        "submission": decision.explanation,
        "orders_table": markdown_table(outcomes),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["submitted_orders"],
    group_name="trading",
    description="The broker's fills, orders and positions against the ledger; every difference "
    "is a break with its likely cause.",
    kinds={"duckdb"},
)
def reconciled_positions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with broker.connected(warehouse.warehouse, market.market(), session) as client:
        result = trading.reconcile_session(warehouse.warehouse, warehouse.ledger, client, session)
    return dg.MaterializeResult(metadata={
        "breaks": result.break_count, "new_fills": result.new_fills,
        "positions": len(result.positions), "equity": result.account.equity,
        "cash": result.account.cash, "breaks_table": markdown_table(result.breaks),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["reconciled_positions"],
    group_name="trading",
    description="Equity, daily P&L and drawdown of the account through session D.",
    kinds={"polars"},
)
def performance(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, broker: BrokerResource
) -> dg.MaterializeResult:
    session = session_of(context)
    curve, initial = trading.performance_through(warehouse.warehouse, warehouse.ledger, broker.venue, session)
    stats = perf.summary(curve, initial)
    today = curve.filter(curve["session"] == session)
    return dg.MaterializeResult(metadata={
        **{k: float(v) for k, v in stats.items()},
        "daily_pnl": float(today["daily_pnl"][0]) if today.height else 0.0,
        "drawdown": float(today["drawdown"][0]) if today.height else 0.0,
        "equity_curve": markdown_table(curve.tail(30), max_rows=30),
    })
