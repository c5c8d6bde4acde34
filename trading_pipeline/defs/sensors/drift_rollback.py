"""Severe drift on the champion moves `champion` back one version and re-runs the session."""


import dagster as dg

from trading_pipeline.defs.jobs import AFTER_PREDICTIONS, daily_trading_job
from trading_pipeline.defs.resources import ModelStoreResource, StrategyResource, WarehouseResource
from trading_pipeline.services import modeling
from trading_pipeline.services.drift import DRIFT_TABLE


@dg.sensor(job=daily_trading_job, minimum_interval_seconds=300,
           description="On a severe drift report for the current champion: roll back to the newest "
           "earlier version not itself flagged, record why, and re-run predictions onwards for "
           "that session. With auto-rollback off (default in live) it raises an alert instead.")
def drift_rollback_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                          model_store: ModelStoreResource, strategy: StrategyResource):
    if not warehouse.warehouse.table_exists(DRIFT_TABLE):
        return dg.SkipReason("no drift report yet")
    latest = warehouse.warehouse.query(
        f"select * from {DRIFT_TABLE} order by session desc limit 1").row(0, named=True)
    report_key = f"{latest['session']}:{latest['model_version']}:{latest['severity']}"
    if context.cursor == report_key:
        return dg.SkipReason(f"report {report_key} already handled")
    if latest["severity"] != "severe":
        context.update_cursor(report_key)
        return dg.SkipReason(f"latest report ({report_key}) is {latest['severity']}")
    registry = model_store.registry()
    if registry.champion_version() != latest["model_version"]:
        context.update_cursor(report_key)
        return dg.SkipReason(f"report {report_key} is about a version that is no longer champion")
    reason = (f"severe drift on {latest['session']}: {latest['drifted_share']:.0%} of columns "
              f"drifted for v{latest['model_version']}")
    context.update_cursor(report_key)  # one decision per report, whatever happens next
    if not strategy.auto_rollback:
        context.log.error(f"ALERT: {reason}; auto-rollback is off (TRADING_AUTO_ROLLBACK): "
                          "review the drift report and move the champion alias by hand")
        return dg.SkipReason("severe drift: alert raised, auto-rollback is off")
    flagged = set(warehouse.warehouse.query(
        f"select distinct model_version from {DRIFT_TABLE} where severity = 'severe'")["model_version"])
    moved = modeling.rollback_champion(registry, warehouse.ledger, reason, flagged)
    if moved is None:
        context.log.error(f"ALERT: {reason}; no earlier version free of severe drift to roll back to")
        return dg.SkipReason("severe drift but no earlier unflagged version")
    context.log.warning(f"{reason}: champion v{moved[0]} -> v{moved[1]}")
    session = str(latest["session"])
    return dg.RunRequest(
        run_key=f"rollback-{report_key}",
        partition_key=session,
        asset_selection=[dg.AssetKey(k) for k in AFTER_PREDICTIONS],
        tags={"trading/rollback_from": moved[0], "trading/rollback_to": moved[1]},
    )
