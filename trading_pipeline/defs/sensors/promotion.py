"""Daily evaluation of the promotion gates for the current stage; every decision is recorded."""

import dagster as dg
import polars as pl

from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.metadata import markdown_table
from trading_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    ModelStoreResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain.promotion import Decision
from trading_pipeline.services.approval import waiting_for_person
from trading_pipeline.services.promotion import evaluate_and_record

SEVERITY = {Decision.APPROVED: Severity.WARNING, Decision.REJECTED: Severity.WARNING,
            Decision.NEEDS_REVIEW: Severity.INFO}


@dg.sensor(minimum_interval_seconds=3600,
           description="After the minimum number of sessions in a stage (local simulator, broker "
           "paper, live), decide approved / rejected / needs_review for the next stage from the "
           "track record against the backtest, breaks, risk events, drift and evidence that the "
           "strategy traded (filled orders, sessions holding positions, rejected share); record "
           "it, alert, and show it on the `performance` asset. Live also needs the human key.")
def paper_to_live_promotion_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                                   model_store: ModelStoreResource, strategy: StrategyResource,
                                   broker: BrokerResource, alerts: AlertsResource):
    if strategy.trading_env == "live":
        return dg.SkipReason("already live: nothing to promote to")
    outcome = evaluate_and_record(
        warehouse.ledger, strategy.strategy, broker.venue, model_store.registry().champion_version(),
        strategy.promotion_gates(),
        stage_from=strategy.trading_env,
        live_enabled=strategy.live_enabled, last_key=context.cursor)
    if outcome is None:
        return dg.SkipReason("no new session since the last decision")
    context.update_cursor(outcome.key)
    result = outcome.result
    title = (f"promotion {outcome.stage_from} -> {outcome.stage_to} of v{outcome.model_version}: "
             f"{result.decision}")
    alerts.send(Alert(kind=AlertKind.PROMOTION, severity=SEVERITY[result.decision], title=title,
                      details={f"reason {i + 1}": r for i, r in enumerate(result.reasons)}),
                log=context.log)
    checks = pl.DataFrame({"gate": list(result.checks), "passed": list(result.checks.values())})
    return dg.SensorResult(asset_events=[dg.AssetObservation(
        asset_key="performance", metadata={
            "promotion_decision": str(result.decision),
            "promotion_stage": f"{outcome.stage_from} -> {outcome.stage_to}",
            "promotion_model_version": outcome.model_version or "none",
            "promotion_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.reasons)),
            "promotion_gates": markdown_table(checks),
            "waiting_for": outcome.waiting_for or "nothing",
            # a needs_review, or an approval for live, waits on a person (approval_job)
            "waiting_for_person": waiting_for_person(warehouse.ledger, strategy.strategy, outcome.model_version,
                                                     outcome.stage_to, result.decision) or "nothing",
        })])
