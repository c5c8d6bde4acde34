"""Jobs. Every job that writes the warehouse runs in-process: DuckDB has one writer."""


import dagster as dg

from trading_pipeline.defs.location import CODE_LOCATION_TAGS
from trading_pipeline.defs.partitions import sessions_partitions
from trading_pipeline.defs.resources import (
    AccountLockResource,
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    ModelStoreResource,
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


class AdoptionConfig(dg.Config):
    operator: str  # who adopts the account (recorded)
    reason: str  # why, e.g. "first run against the paper account I already trade by hand" (recorded)
    # Orders found open at the broker are left alone and followed by the ledger; true cancels them.
    cancel_foreign_orders: bool = False


@dg.op(description="Record the account as it is now (positions, cash, open orders) as the ledger's "
                   "opening state, once; place protective stops for adopted longs without one.")
def adopt_existing_account(context: dg.OpExecutionContext, config: AdoptionConfig,
                           warehouse: WarehouseResource, market: MarketDataResource,
                           broker: BrokerResource, strategy: StrategyResource,
                           model_store: ModelStoreResource, account_lock: AccountLockResource) -> None:
    from trading_pipeline.defs.metadata import table
    from trading_pipeline.domain.safety import SubmissionKeys
    from trading_pipeline.services.adoption import AdoptionRefused, adopt_account
    from trading_pipeline.services.approval import live_approval

    ledger = warehouse.ledger
    account = broker.venue
    engaged, _ = ledger.kill_switch_engaged(account)
    promotion_approved, human_approved = (
        live_approval(ledger, strategy.strategy, model_store.registry().champion_version())
        if strategy.trading_env == "live" else (False, False))
    # The stops only reduce exposure, but in live they still need every other key.
    keys = SubmissionKeys(trading_env=strategy.trading_env, live_enabled=strategy.live_enabled,
                          promotion_approved=promotion_approved, kill_switch_engaged=engaged,
                          dry_run=strategy.dry_run, human_approved=human_approved)
    with warehouse.warehouse.held(), broker.connected(warehouse.warehouse, market.market(), None) as client:
        try:
            result = adopt_account(ledger, client, strategy=strategy.strategy, stop_policy=strategy.stop_policy(),
                                   keys=keys, operator=config.operator, reason=config.reason,
                                   cancel_foreign_orders=config.cancel_foreign_orders, run_id=context.run_id)
        except AdoptionRefused as refused:
            raise dg.Failure(description=str(refused)) from None
    summary = (f"account {account} adopted at session {result.session} by {config.operator}: "
               f"{result.positions.height} positions, cash {result.cash:,.2f}, {result.orders.height} open orders "
               f"({'cancelled' if config.cancel_foreign_orders else 'left alone'}), "
               f"{result.stops.filter(result.stops['status'] == 'new').height} protective stops placed")
    context.log.info(summary)
    context.log_event(dg.AssetObservation(asset_key="account_view", metadata={
        "adoption": summary, "adopted_by": config.operator, "adoption_reason": config.reason,
        "adopted_session": str(result.session), "account": account,
        "cash": round(result.cash, 2), "equity": round(result.equity, 2),
        "adopted_positions": table(result.positions), "adopted_orders": table(result.orders),
        "adoption_stops": table(result.stops),
    }))


@dg.job(executor_def=dg.in_process_executor, tags={**DAILY_LANE_TAG, **CODE_LOCATION_TAGS},
        description="Adopt an account that already holds positions: its positions, cash and open "
                    "orders become the ledger's opening state, recorded with who and why. Once per "
                    "account, before its first daily run; refused on an account the ledger already trades.")
def adoption_job():
    adopt_existing_account()


class ApprovalConfig(dg.Config):
    strategy: str  # e.g. daily_ml (TRADING_STRATEGY)
    model_version: str  # the version the promotion sensor evaluated (performance: promotion_model_version)
    decision: str  # approve | reject
    reason: str  # recorded
    name: str  # who decides (recorded)
    stage_to: str = "live"


@dg.op(description="Record a person's approval or rejection of a promotion, beside the sensor's decision.")
def record_human_decision(context: dg.OpExecutionContext, config: ApprovalConfig,
                          warehouse: WarehouseResource) -> None:
    from trading_pipeline.services.approval import ApprovalRefused, record_decision

    try:
        decided = record_decision(warehouse.ledger, strategy=config.strategy, model_version=config.model_version,
                                  decision=config.decision, reason=config.reason, operator=config.name,
                                  stage_to=config.stage_to, run_id=context.run_id)
    except ApprovalRefused as refused:
        raise dg.Failure(description=str(refused)) from None
    context.log.info(f"{decided.strategy} v{decided.model_version} to {decided.stage_to}: {decided.in_force}")
    context.log_event(dg.AssetObservation(asset_key="performance", metadata={
        "human_decision": decided.decision, "human_decision_by": decided.operator,
        "human_decision_reason": decided.reason, "human_decision_model_version": decided.model_version,
        "human_decision_stage": decided.stage_to, "sensor_decision": decided.sensor_decision or "none",
        "in_force": decided.in_force,
    }))


@dg.job(executor_def=dg.in_process_executor, tags={**DAILY_LANE_TAG, **CODE_LOCATION_TAGS},
        description="A person approves or rejects a promotion of a model version (live orders wait "
                    "for an approval), with a reason and a name, recorded beside the sensor's decision.")
def approval_job():
    record_human_decision()


from trading_pipeline.defs.quality import release_quarantine_job  # noqa: E402

all_jobs = [daily_trading_job, training_job, emergency_stop_job, clear_kill_switch_job, release_quarantine_job,
            adoption_job, approval_job]
