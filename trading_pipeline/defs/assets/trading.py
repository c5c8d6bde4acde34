
import dagster as dg

from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.metadata import image, table
from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import (
    AccountLockResource,
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.calendar import require_closed
from trading_pipeline.domain.monitor import checks_frame
from trading_pipeline.services import trading
from trading_pipeline.services.charts import equity_against_backtest_png
from trading_pipeline.services.monitor import monitor_session


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["predictions"],
    group_name="trading",
    description="The session's whole plan, decided once per account after D's close and recorded "
    "before anything is sent: target weights and shares for D+1 after every limit, the orders and "
    "protective stops that reach it, the stops to cancel. Re-materialising reports the recorded plan.",
    kinds={"polars"},
)
def target_portfolio(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
    strategy: StrategyResource,
    account_lock: AccountLockResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    require_closed(session)
    wh = warehouse.warehouse
    with wh.held():
        decided = trading.decide_session(warehouse.ledger, broker.venue, session, strategy,
                                         lambda: broker.connected(wh, market.market(), session),
                                         run_id=context.run_id)
    target, plan = decided.target, decided.plan
    var = decided.var_positions
    return dg.MaterializeResult(metadata={
        "account": broker.venue,
        "decided": (f"recorded earlier by run {plan['run_id']} at {plan['planned_at']:%Y-%m-%d %H:%M:%S} UTC: "
                    "nothing was decided again" if decided.recorded_earlier else "now"),
        "model_version": plan["model_version"] or "",
        "positions": target.height, "equity": round(float(plan["equity"]), 2),
        "gross_weight": float(target["weight"].abs().sum()) if target.height else 0.0,
        "max_weight": float(target["weight"].abs().max()) if target.height else 0.0,
        "max_position_var_95": float(var["var"].max()) if var.height else 0.0,
        "target": table(target.drop("account", strict=False)),
        "position_var": table(var.drop("account", strict=False)),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in plan["notes"]) or "_none_"),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["target_portfolio"],
    group_name="trading",
    description="The recorded plan sent in order: stale stops cancelled, then each order with its "
    "deterministic client order id, sent once (or recorded as not sent, with why). After a crash a "
    "re-run sends exactly what was not yet acknowledged; once the account has moved on it only reports.",
    kinds={"duckdb"},
)
def submitted_orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
    strategy: StrategyResource,
    account_lock: AccountLockResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    wh = warehouse.warehouse
    with wh.held():
        summary = trading.send_session(warehouse.ledger, broker.venue, session, strategy,
                                       lambda: broker.connected(wh, market.market(), session))
    outcomes = summary.outcomes
    if not summary.entries.send:
        context.log.warning(f"new entries for {session} not sent: {summary.entries.explanation}")
    for note in summary.notes:
        context.log.info(note)
    engaged, why = warehouse.ledger.kill_switch_engaged(broker.venue)
    return dg.MaterializeResult(metadata={
        "account": broker.venue,
        "read_only": summary.read_only,
        "orders": outcomes.height,
        "by_status": dg.MetadataValue.json(
            {s: int(n) for s, n in outcomes.group_by("status").len().iter_rows()} if outcomes.height else {}),
        "entries": summary.entries.explanation,
        "kill_switch": f"ENGAGED: {why}" if engaged else "released",
        "stops_placed": summary.stops_placed, "stops_canceled": summary.stops_canceled,
        "risk_failures": len(summary.risk_failures),
        "orders_table": table(outcomes),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["submitted_orders"],
    group_name="trading",
    description="The broker's fills, orders and positions against the ledger; every difference "
    "is a break with its likely cause. The session's account snapshot is written once.",
    kinds={"duckdb"},
)
def reconciled_positions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    market: MarketDataResource,
    broker: BrokerResource,
    alerts: AlertsResource,
    account_lock: AccountLockResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    wh = warehouse.warehouse
    with wh.held():
        result = trading.reconcile_session(wh, warehouse.ledger, broker.venue, session,
                                           lambda: broker.connected(wh, market.market(), session))
    if result.break_count and not result.read_only:
        alerts.send(Alert(kind=AlertKind.RECONCILIATION_BREAK, severity=Severity.CRITICAL, session=session,
                          title=f"{result.break_count} reconciliation breaks at {broker.venue}",
                          details={f"{row['kind']} {row['symbol'] or ''}".strip(): row["detail"]
                                   for row in result.breaks.head(20).iter_rows(named=True)}),
                    log=context.log)
    return dg.MaterializeResult(metadata={
        "account": broker.venue, "read_only": result.read_only,
        "breaks": result.break_count, "new_fills": result.new_fills,
        "positions": len(result.positions), "equity": round(result.account.equity, 2),
        "cash": round(result.account.cash, 2), "breaks_table": table(result.breaks),
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
    account_lock: AccountLockResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    with warehouse.warehouse.held():
        return _performance(context, warehouse, broker, strategy, alerts, session)


def _performance(context, warehouse, broker, strategy, alerts, session) -> dg.MaterializeResult:
    result = trading.performance_through(warehouse.ledger, broker.venue, session, strategy)
    curve = result.curve
    stats = perf.summary(curve.filter(curve["session"] <= session), result.initial_equity)
    today = curve.filter(curve["session"] == session)
    if result.read_only:  # scored by an earlier run: report, write and alert nothing
        return dg.MaterializeResult(metadata={
            "account": broker.venue, "read_only": True,
            **_rounded(stats),
            "daily_pnl": round(float(today["daily_pnl"][0]), 2) if today.height else 0.0,
            "drawdown": round(float(today["drawdown"][0]), 6) if today.height else 0.0,
            "kill_switch": f"ENGAGED: {result.kill_switch_reason}" if result.kill_switch_engaged else "released",
        })
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
        **_rounded(stats),
        "daily_pnl": round(float(today["daily_pnl"][0]), 2) if today.height else 0.0,
        "drawdown": round(float(today["drawdown"][0]), 6) if today.height else 0.0,
        "kill_switch": f"ENGAGED: {result.kill_switch_reason}" if result.kill_switch_engaged else "released",
        "monitor_breaches": len(report.breached),
        # none while holding cash for want of a model: nothing to compare with
        "backtest_equity": round(float(report.shadow["equity"][-1]), 2) if report.shadow.height else float("nan"),
        "equity_vs_backtest": image(chart, "equity against the backtest"),
        "monitor": table(checks_frame(report.checks)),
        "equity_curve": table(curve.tail(30), max_rows=30),
    })


def _rounded(stats: dict) -> dict[str, float]:
    """Money to the cent, ratios to 6 places: what a person reads, and what the plots need."""
    return {k: round(float(v), 2 if k == "equity" else 6) for k, v in stats.items()}
