
import dagster as dg

from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.metadata import markdown_table
from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.monitor import checks_frame
from trading_pipeline.services import trading
from trading_pipeline.services.charts import equity_against_backtest_png, markdown_image
from trading_pipeline.services.monitor import monitor_session


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
    with warehouse.warehouse.held(), broker.connected(warehouse.warehouse, market.market(), session) as client:
        result, equity = trading.build_target(warehouse.warehouse, client, session, strategy)
    target, var = result.frame, result.var_figures
    return dg.MaterializeResult(metadata={
        "positions": target.height, "equity": equity,
        "gross_weight": float(target["weight"].abs().sum()) if target.height else 0.0,
        "max_weight": float(target["weight"].abs().max()) if target.height else 0.0,
        "portfolio_var_95": float(var.portfolio_var),
        "portfolio_var_95_dollars": float(var.portfolio_var_dollars),
        "portfolio_es_95": float(var.portfolio_es),
        "portfolio_parametric_var_95": float(var.portfolio_parametric_var),
        "max_position_var_95": float(var.max_position_var),
        "target": markdown_table(target),
        "position_var": markdown_table(var.positions),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "_none_"),
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
    with warehouse.warehouse.held(), broker.connected(warehouse.warehouse, market.market(), session) as client:
        summary = trading.submit_rebalance(warehouse.ledger, client, session, strategy)
    outcomes = summary.outcomes
    if not summary.entries.send:
        context.log.warning(f"new entries for {session} not sent: {summary.entries.explanation}")
    engaged, why = warehouse.ledger.kill_switch_engaged(broker.venue)
    return dg.MaterializeResult(metadata={
        "orders": outcomes.height,
        "sent_now": int(outcomes["sent_now"].sum()) if outcomes.height else 0,
        "entries": summary.entries.explanation,
        "kill_switch": f"ENGAGED: {why}" if engaged else "released",
        "stops_placed": summary.stops_placed, "stops_canceled": summary.stops_canceled,
        "risk_failures": len(summary.risk_failures),
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
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with warehouse.warehouse.held(), broker.connected(warehouse.warehouse, market.market(), session) as client:
        result = trading.reconcile_session(warehouse.warehouse, warehouse.ledger, client, session)
    if result.break_count:
        alerts.send(Alert(kind=AlertKind.RECONCILIATION_BREAK, severity=Severity.CRITICAL, session=session,
                          title=f"{result.break_count} reconciliation breaks at {broker.venue}",
                          details={f"{row['kind']} {row['symbol'] or ''}".strip(): row["detail"]
                                   for row in result.breaks.head(20).iter_rows(named=True)}),
                    log=context.log)
    return dg.MaterializeResult(metadata={
        "breaks": result.break_count, "new_fills": result.new_fills,
        "positions": len(result.positions), "equity": result.account.equity,
        "cash": result.account.cash, "breaks_table": markdown_table(result.breaks),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["reconciled_positions"],
    group_name="trading",
    description="Equity, daily P&L and drawdown of the account through session D, against the "
    "backtest of the same sessions (plot and monitor checks, alerts on breaches); the daily-loss "
    "and drawdown kill switch.",
    kinds={"polars", "matplotlib"},
)
def performance(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    broker: BrokerResource,
    strategy: StrategyResource,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with warehouse.warehouse.held():
        return _performance(context, warehouse, broker, strategy, alerts, session)


def _performance(context, warehouse, broker, strategy, alerts, session) -> dg.MaterializeResult:
    result = trading.performance_through(warehouse.ledger, broker.venue, session, strategy)
    curve = result.curve
    stats = perf.summary(curve, result.initial_equity)
    today = curve.filter(curve["session"] == session)
    if result.kill_switch_newly_engaged:
        alerts.send(Alert(kind=AlertKind.KILL_SWITCH, severity=Severity.CRITICAL, session=session,
                          title="kill switch engaged: no new entries until clear_kill_switch_job runs",
                          details={"why": result.kill_switch_reason or "", "equity": stats.get("equity", 0.0)}),
                    log=context.log)
    report = monitor_session(warehouse.ledger, broker.venue, session, strategy, strategy.monitor_thresholds())
    if report.breached:
        alerts.send(Alert(kind=AlertKind.MONITOR, severity=Severity.WARNING, session=session,
                          title=f"track record outside the backtest's expectation on {len(report.breached)} checks",
                          details={c.name: c.detail for c in report.breached}), log=context.log)
    chart = equity_against_backtest_png(report.track, report.shadow,
                                        f"{broker.venue}: equity against the backtest, to {session}")
    return dg.MaterializeResult(metadata={
        **{k: float(v) for k, v in stats.items()},
        "daily_pnl": float(today["daily_pnl"][0]) if today.height else 0.0,
        "drawdown": float(today["drawdown"][0]) if today.height else 0.0,
        "kill_switch": f"ENGAGED: {result.kill_switch_reason}" if result.kill_switch_engaged else "released",
        "monitor_breaches": len(report.breached),
        "backtest_equity": float(report.shadow["equity"][-1]),
        "equity_vs_backtest": dg.MetadataValue.md(markdown_image(chart, "equity against the backtest")),
        "monitor": markdown_table(checks_frame(report.checks)),
        "equity_curve": markdown_table(curve.tail(30), max_rows=30),
    })
