"""Daily evaluation of the paper-to-live promotion gates; every decision is recorded."""


import dagster as dg

from trading_pipeline.defs.resources import ModelStoreResource, StrategyResource, WarehouseResource
from trading_pipeline.domain.promotion import PromotionGates
from trading_pipeline.services.promotion import evaluate_and_record


@dg.sensor(minimum_interval_seconds=3600,
           description="After the minimum number of paper sessions, decide approved / rejected / "
           "needs_review from the track record, breaks, risk events and drift, and record it.")
def paper_to_live_promotion_sensor(context: dg.SensorEvaluationContext,
                                   warehouse: WarehouseResource, model_store: ModelStoreResource,
                                   strategy: StrategyResource):
    if strategy.trading_env == "live":
        return dg.SkipReason("already live")
    gates = PromotionGates(min_sessions=strategy.promotion_min_sessions)
    outcome = evaluate_and_record(warehouse.ledger, strategy.strategy,
                                  model_store.registry().champion_version(), gates,
                                  stage_from=strategy.trading_env, last_key=context.cursor)
    if outcome is None:
        return dg.SkipReason("no new session since the last decision")
    key, result = outcome
    context.update_cursor(key)
    context.log.info(f"promotion decision: {result.decision} ({'; '.join(result.reasons)})")
    return dg.SkipReason(f"recorded {result.decision}")
