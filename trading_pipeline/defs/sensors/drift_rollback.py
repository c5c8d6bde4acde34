"""Severe drift on the champion moves `champion` back one version and re-runs the session."""


import dagster as dg

from trading_pipeline.defs.jobs import AFTER_PREDICTIONS, daily_trading_job, training_job
from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    ModelStoreResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.services.rollback import decide_on_latest_report


@dg.sensor(jobs=[daily_trading_job, training_job], minimum_interval_seconds=300,
           description="On a severe drift report (data drift or performance decay) for the current "
           "champion: roll back to the newest earlier version not itself flagged, record why, and "
           "re-run predictions onwards for that session; at most one rollback per drift episode. "
           "With auto-rollback off (default in live) it raises an alert instead.")
def drift_rollback_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                          model_store: ModelStoreResource, strategy: StrategyResource,
                          alerts: AlertsResource, broker: BrokerResource):
    decision = decide_on_latest_report(warehouse.ledger, model_store.registry(),
                                       auto_rollback=strategy.auto_rollback, handled_key=context.cursor,
                                       account=broker.venue)  # this environment's reports only
    if decision.report_key is not None:
        context.update_cursor(decision.report_key)  # one decision per report, whatever happens next
    if decision.action == "none":
        return dg.SkipReason(decision.reason)
    if decision.action == "alert":
        alerts.send(Alert(kind=AlertKind.DRIFT, severity=Severity.CRITICAL, session=decision.session,
                          title="severe drift: the champion was not rolled back",
                          details={"why": decision.reason}), log=context.log)
        return dg.SkipReason(f"alert raised: {decision.reason}")
    moved_from, moved_to = decision.moved
    alerts.send(Alert(kind=AlertKind.ROLLBACK, severity=Severity.WARNING, session=decision.session,
                      title=f"champion rolled back v{moved_from} -> v{moved_to}",
                      details={"why": decision.reason, "re-run": f"predictions onwards for {decision.session}",
                               "retraining": "requested" if strategy.model.retrain_after_rollback else "not requested"}),
                log=context.log)
    tags = {"trading/rollback_from": moved_from, "trading/rollback_to": moved_to}
    requests = [dg.RunRequest(
        run_key=f"rollback-{decision.report_key}", job_name=daily_trading_job.name,
        partition_key=str(decision.session), tags=tags,
        asset_selection=[dg.AssetKey(k) for k in AFTER_PREDICTIONS],
    )]
    if strategy.model.retrain_after_rollback:
        requests.append(dg.RunRequest(run_key=f"retrain-{decision.report_key}",
                                      job_name=training_job.name, tags=tags))
    return requests
