"""Jobs. Every job that writes the warehouse runs in-process: DuckDB has one writer."""


import dagster as dg

from trading_pipeline.defs.location import CODE_LOCATION_TAGS
from trading_pipeline.defs.partitions import sessions_partitions
from trading_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    StrategyResource,
    WarehouseResource,
)

DAILY_ASSETS = [
    "market_bars", "features", "predictions", "drift_report",
    "target_portfolio", "submitted_orders", "reconciled_positions", "performance", "account_view",
]
AFTER_PREDICTIONS = ["predictions", "drift_report", "target_portfolio", "submitted_orders",
                     "reconciled_positions", "performance"]

daily_trading_job = dg.define_asset_job(
    "daily_trading_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    partitions_def=sessions_partitions,
    executor_def=dg.in_process_executor,
    tags={"trading/lane": "daily", **CODE_LOCATION_TAGS},  # DAILY_LANE_TAG: one run at a time (dagster.yaml)
    description="The daily loop for one NYSE session: bars to reconciled positions.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("trained_model"),
    executor_def=dg.in_process_executor,
    tags={"trading/lane": "daily", **CODE_LOCATION_TAGS},  # writes the warehouse too: in line with the daily runs
    description="Train a new model version; it becomes champion only if it beats the current one.",
)


# Runs of these two jobs carry this tag, which no concurrency limit in dagster.yaml names, so
# they never queue behind daily and backfill runs (tagged DAILY_LANE_TAG); they go first.
EMERGENCY_LANE_TAG = {"trading/lane": "emergency"}
DAILY_LANE_TAG = {"trading/lane": "daily"}  # limited to one run at a time in dagster.yaml
EMERGENCY_RUN_TAGS = {**EMERGENCY_LANE_TAG, "dagster/priority": "100", **CODE_LOCATION_TAGS}


class EmergencyStopConfig(dg.Config):
    reason: str = "emergency stop"
    flatten: bool = False  # also close every position with market orders
    # in live, closing positions also needs TRADING_LIVE_ENABLED=true, dry-run off and this set
    # to "FLATTEN <account>" (e.g. "FLATTEN alpaca-live"): a typed confirmation, not a default
    confirm_live_flatten: str = ""


@dg.op
def engage_kill_switch_and_cancel(context: dg.OpExecutionContext, config: EmergencyStopConfig,
                                  warehouse: WarehouseResource, market: MarketDataResource,
                                  broker: BrokerResource, strategy: StrategyResource,
                                  alerts: AlertsResource) -> None:
    from trading_pipeline.alerts import Alert, AlertKind, Severity
    from trading_pipeline.defs.assets.controls import kill_switch_materialization
    from trading_pipeline.services.emergency import FlattenKeys, emergency_stop

    account = broker.venue
    # First, before any broker or warehouse call that could wait: the switch stops new entries.
    warehouse.ledger.set_kill_switch(account, True, config.reason, actor=f"run {context.run_id}")
    context.log_event(kill_switch_materialization(warehouse.ledger, account, "engaged by emergency_stop_job"))
    keys = FlattenKeys(trading_env=strategy.trading_env, live_enabled=strategy.live_enabled,
                       dry_run=strategy.dry_run, confirmation=config.confirm_live_flatten, account=account)
    # None: the account as it is now; the paper simulator's clock does not move.
    with broker.connected(warehouse.warehouse, market.market(), None) as client:
        result = emergency_stop(client, warehouse.ledger, flatten=config.flatten, keys=keys)
    if result.held_back or result.unknown:
        context.log.warning(result.summary)
    else:
        context.log.info(result.summary)
    alerts.send(Alert(kind=AlertKind.KILL_SWITCH, severity=Severity.CRITICAL, session=result.session,
                      title=f"emergency stop: kill switch engaged for {account} ({config.reason})",
                      details={"summary": result.summary, "flatten": config.flatten}), log=context.log)


@dg.job(executor_def=dg.in_process_executor, tags=EMERGENCY_RUN_TAGS,
        description="Engage the kill switch, cancel every open order, optionally flatten "
                    "(in live: with TRADING_LIVE_ENABLED, dry-run off and confirm_live_flatten).")
def emergency_stop_job():
    engage_kill_switch_and_cancel()


class ClearKillSwitchConfig(dg.Config):
    reason: str  # required: who cleared it and why


@dg.op
def clear_kill_switch(context: dg.OpExecutionContext, config: ClearKillSwitchConfig,
                      warehouse: WarehouseResource, broker: BrokerResource) -> None:
    from trading_pipeline.defs.assets.controls import kill_switch_materialization

    warehouse.ledger.set_kill_switch(broker.venue, False, config.reason, actor=f"run {context.run_id}")
    context.log_event(kill_switch_materialization(warehouse.ledger, broker.venue, "released by clear_kill_switch_job"))
    context.log.info(f"kill switch cleared for {broker.venue}: {config.reason}")


@dg.job(executor_def=dg.in_process_executor, tags=EMERGENCY_RUN_TAGS,
        description="Release the kill switch; a reason is required and recorded.")
def clear_kill_switch_job():
    clear_kill_switch()


from trading_pipeline.defs.quality import release_quarantine_job  # noqa: E402

all_jobs = [daily_trading_job, training_job, emergency_stop_job, clear_kill_switch_job, release_quarantine_job]
