"""Jobs. Every job that writes the warehouse runs in-process: DuckDB has one writer."""


import dagster as dg

from trading_pipeline.defs.partitions import sessions_partitions
from trading_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    WarehouseResource,
)
from trading_pipeline.domain.calendar import latest_completed_session

DAILY_ASSETS = [
    "market_bars", "features", "predictions", "drift_report",
    "target_portfolio", "submitted_orders", "reconciled_positions", "performance",
]
AFTER_PREDICTIONS = ["predictions", "drift_report", "target_portfolio", "submitted_orders",
                     "reconciled_positions", "performance"]

daily_trading_job = dg.define_asset_job(
    "daily_trading_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    partitions_def=sessions_partitions,
    executor_def=dg.in_process_executor,
    description="The daily loop for one NYSE session: bars to reconciled positions.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("trained_model"),
    executor_def=dg.in_process_executor,
    description="Train a new model version; it becomes champion only if it beats the current one.",
)


class EmergencyStopConfig(dg.Config):
    reason: str = "emergency stop"
    flatten: bool = False  # also close every position with market orders


@dg.op
def engage_kill_switch_and_cancel(context: dg.OpExecutionContext, config: EmergencyStopConfig,
                                  warehouse: WarehouseResource, market: MarketDataResource,
                                  broker: BrokerResource, alerts: AlertsResource) -> None:
    from trading_pipeline.alerts import Alert, AlertKind, Severity
    from trading_pipeline.services.emergency import emergency_stop

    warehouse.ledger.set_kill_switch(broker.venue, True, config.reason, actor=f"run {context.run_id}")
    session = latest_completed_session()
    with broker.connected(warehouse.warehouse, market.market(), session) as client:
        summary = emergency_stop(client, warehouse.ledger, flatten=config.flatten, session=session)
    alerts.send(Alert(kind=AlertKind.KILL_SWITCH, severity=Severity.CRITICAL, session=session,
                      title=f"emergency stop: kill switch engaged ({config.reason})",
                      details={"summary": str(summary), "flatten": config.flatten}), log=context.log)


@dg.job(executor_def=dg.in_process_executor,
        description="Engage the kill switch, cancel every open order, optionally flatten.")
def emergency_stop_job():
    engage_kill_switch_and_cancel()


class ClearKillSwitchConfig(dg.Config):
    reason: str  # required: who cleared it and why


@dg.op
def clear_kill_switch(context: dg.OpExecutionContext, config: ClearKillSwitchConfig,
                      warehouse: WarehouseResource, broker: BrokerResource) -> None:
    warehouse.ledger.set_kill_switch(broker.venue, False, config.reason, actor=f"run {context.run_id}")
    context.log.info(f"kill switch cleared: {config.reason}")


@dg.job(executor_def=dg.in_process_executor,
        description="Release the kill switch; a reason is required and recorded.")
def clear_kill_switch_job():
    clear_kill_switch()


all_jobs = [daily_trading_job, training_job, emergency_stop_job, clear_kill_switch_job]
