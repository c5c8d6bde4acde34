
import dagster as dg
import polars as pl
from pydantic import Field

from trading_pipeline.defs.metadata import markdown_table, table
from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import (
    BrokerResource,
    ModelStoreResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain.calendar import previous_session, sessions_back
from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.model import NoQualifyingModel
from trading_pipeline.services import drift as drift_service
from trading_pipeline.services import modeling
from trading_pipeline.services.account_view import model_story
from trading_pipeline.services.report_links import DEFAULT_KEEP_SESSIONS, publish_drift_report
from trading_pipeline.storage import market_store


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["market_bars"],
    group_name="model",
    description="Point-in-time features for session D, computed only from bars on or before D.",
    kinds={"polars"},
)
def features(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
             strategy: StrategyResource) -> dg.MaterializeResult:
    session = session_of(context)
    history = sessions_back(session, MIN_HISTORY_SESSIONS + 1)
    bars = market_store.read_bars_through(warehouse.warehouse, session, history[0])
    rows = compute_features(bars, strategy.model.feature_set).filter(pl.col("session") == session)
    warehouse.warehouse.replace_partition("features", session, rows)
    complete = rows.drop_nulls().height
    return dg.MaterializeResult(metadata={"rows": rows.height, "complete_rows": complete,
                                          "features": rows.width - 2})


class TrainingConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="Train on bars up to this date (YYYY-MM-DD); the version may then score every "
        "later session (a backfill from the next session on). Default: the latest completed session.")


@dg.asset(
    deps=["market_bars"],
    group_name="model",
    description="LightGBM fitted on a walk-forward window of stored bars up to `as_of` (run "
    "config; default the latest completed session), registered in MLflow as a new version with "
    "its training end; becomes `champion` only if it beats the current one out of sample.",
    kinds={"mlflow", "lightgbm"},
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    strategy: StrategyResource,
) -> dg.MaterializeResult:
    try:
        as_of = modeling.parse_as_of(config.as_of)
        outcome = modeling.train_as_of(
            warehouse.warehouse, warehouse.ledger, model_store.registry(), as_of,
            window=strategy.model.train_window_sessions, horizon=strategy.model.label_horizon,
            why=f"training run {context.run_id}" + (f" as of {as_of}" if as_of else ""),
            rules=strategy.selection_rules(), backtest=strategy,
            options=strategy.training_options(),
        )
    except (ValueError, modeling.NotEnoughHistory) as error:
        raise dg.Failure(description=str(error)) from None
    models = model_story(model_store.registry())
    context.log.info(f"v{outcome.version} {'is the new champion' if outcome.became_champion else 'stays challenger'}: "
                     f"{outcome.reason}; rank IC {outcome.metrics.get('rank_ic', float('nan')):.4f}")
    return dg.MaterializeResult(metadata={
        # the champion and the challenger side by side, with why each holds its alias
        "models": table(models, {"rank_ic": "number", "ic": "number", "hit_rate": "percent"}),
        "version": outcome.version, "became_champion": outcome.became_champion,
        "reason": outcome.reason, "trained_from": str(outcome.first_session),
        "trained_through": str(outcome.last_session),
        "training_end": str(outcome.training_end),
        "scores_sessions_after": str(outcome.training_end),
        **{k: float(v) for k, v in outcome.metrics.items()},
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["features", "trained_model"],
    group_name="model",
    description="Scores for session D by a version trained on data that ended before D: the "
    "champion, or for a backfill the newest earlier champion (or point-in-time version) that "
    "qualifies; the version and its training end on every row. Trains a first model (as of the "
    "session before D) if none exists. With TRADING_WITHOUT_SIGNAL=hold_cash and no champion "
    "with signal, records that nothing is scored, why, and the next step: the plan holds cash.",
    kinds={"mlflow"},
)
def predictions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    strategy: StrategyResource,
    broker: BrokerResource,  # only its account name: paper and live keep their own predictions
) -> dg.MaterializeResult:
    session = session_of(context)
    registry = model_store.registry()
    options = strategy.training_options()
    if modeling.trains_first_model(registry, options):
        as_of = previous_session(session)
        context.log.info(f"no champion yet: training a first model on bars through {as_of}")
        modeling.train_as_of(warehouse.warehouse, warehouse.ledger, registry, as_of,
                             window=strategy.model.train_window_sessions, horizon=strategy.model.label_horizon,
                             why=f"bootstrap for {session}", rules=strategy.selection_rules(),
                             backtest=strategy, options=options)
    nothing = modeling.nothing_to_score(warehouse.warehouse, registry, options)
    if nothing is not None:
        modeling.record_unscored(warehouse.warehouse, session, nothing, broker.venue)
        context.log.warning(f"{session} not scored: {nothing.reason}. Next: {nothing.next_step}")
        return dg.MaterializeResult(metadata={
            "scored": False, "model_version": "none", "rows": 0,
            "reason": nothing.reason, "next_step": nothing.next_step})
    try:
        choice = modeling.model_for_session(warehouse.warehouse, registry, session)
    except NoQualifyingModel as error:
        raise dg.Failure(description=(
            f"{error}: run training_job with run config "
            f"{{\"ops\": {{\"trained_model\": {{\"config\": {{\"as_of\": \"{error.as_of}\"}}}}}}}} "
            "(dagster job execute ... -j training_job --config FILE), then this session again"),
        ) from None
    context.log.info(f"scoring {session} with v{choice.version}: {choice.reason}")
    scores = modeling.score_session(warehouse.warehouse, registry, session, choice)
    modeling.write_predictions(warehouse.warehouse, session, scores, broker.venue)
    return dg.MaterializeResult(metadata={
        "scored": True,
        "model_version": choice.version, "model_training_end": str(choice.training_end),
        "model_choice": choice.reason, "rows": scores.height,
        "top": table(scores.sort("score", descending=True).head(10)),
    })


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["predictions"],
    group_name="model",
    description="Evidently drift report: recent features and predictions against the champion's "
    "training reference (drifted share, data severity), and the decay of the champion's realised "
    "rank IC; a breached decay makes the report severe. HTML saved.",
    kinds={"evidently"},
)
def drift_report(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    strategy: StrategyResource,
    broker: BrokerResource,  # only its account name: paper and live keep their own reports
) -> dg.MaterializeResult:
    session = session_of(context)
    no_model = drift_service.no_model_in_use(warehouse.warehouse, session, broker.venue)
    if no_model is not None:  # holding cash: nothing scored, nothing to judge
        return dg.MaterializeResult(metadata={"severity": "none", "model_version": "none",
                                              "reasons": no_model})
    html = strategy.reports_path / "drift" / broker.venue / f"drift_{session}.html"
    report = drift_service.drift_for_session(
        warehouse.warehouse, model_store.registry(), session,
        window=strategy.drift.window_sessions, warn_share=strategy.drift.warn_share,
        column_threshold=strategy.drift.column_threshold,
        severe_share=strategy.drift.severe_share, html_path=html,
        decay=strategy.decay_policy(), horizon=strategy.model.label_horizon, account=broker.venue,
    )
    result, decay = report.drift, report.decay
    link = _publish(context, model_store, report.model_version, result.html_path or html,
                    DEFAULT_KEEP_SESSIONS)
    return dg.MaterializeResult(metadata={
        **({"report_url": dg.MetadataValue.url(link)} if link else {}),
        "severity": report.severity, "data_severity": result.severity, "reasons": report.reasons,
        # rounded: read as a percentage, plotted by session
        "drifted_share": round(float(result.drifted_share), 4),
        "drifted_columns": int(result.drifted_count), "model_version": report.model_version,
        "prediction_drift_score": float(result.prediction_drift_score),
        "prediction_drifted": bool(result.prediction_drifted),
        # NaN, not None: a float entry keeps one type in the UI's plot over partitions
        "decay_rank_ic": float("nan") if decay.rank_ic is None else decay.rank_ic,
        "decay_sessions": decay.sessions, "decay_breached": decay.breached,
        "decay_min_rank_ic": decay.policy.min_rank_ic,
        "summary": markdown_table(drift_service.summary_table(
            report, warn_share=strategy.drift.warn_share, severe_share=strategy.drift.severe_share)),
        "report": dg.MetadataValue.path(str(html)),
        "columns": table(result.per_column, max_rows=40),
    })


def _publish(context, model_store: ModelStoreResource, version: str, html, keep: int) -> str | None:
    """The report as an MLflow artifact of the version's run (a link that opens it), with the
    retention rule applied; a failure here leaves the recorded report as it is and is logged."""
    from pathlib import Path

    if not Path(html).is_file():
        return None
    try:
        published = publish_drift_report(model_store.registry(), version, Path(html), keep=keep)
    except Exception as error:  # noqa: BLE001 - the drift figures are recorded; the link is a convenience
        context.log.warning(f"drift report not published to MLflow ({type(error).__name__}: {error}); "
                            f"it is at {html}")
        return None
    if published.removed:
        context.log.info(f"retention: removed {len(published.removed)} older drift reports")
    return published.url
