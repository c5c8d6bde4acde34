"""Dagster glue for data quality: the quarantine step of `market_bars`, its metadata and alert,
and the job that releases a quarantine (a recorded decision)."""


from datetime import date

import dagster as dg
import polars as pl

from trading_pipeline.alerts import Alert, AlertKind, Severity
from trading_pipeline.defs.location import CODE_LOCATION_TAGS
from trading_pipeline.defs.resources import AlertsResource, WarehouseResource
from trading_pipeline.services import data_quality
from trading_pipeline.services.data_quality import SessionQuality

QUARANTINE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("symbol", "string"), dg.TableColumn("kind", "string"),
    dg.TableColumn("quarantined", "bool"), dg.TableColumn("reason", "string"),
])
MAX_TABLE_ROWS = 200


def quarantine_table(records: pl.DataFrame) -> dg.MetadataValue:
    rows = records.select("symbol", "kind", "quarantined", "reason").head(MAX_TABLE_ROWS)
    return dg.MetadataValue.table(
        records=[dg.TableRecord(dict(row)) for row in rows.iter_rows(named=True)], schema=QUARANTINE_COLUMNS)


def quarantine_session(context: dg.AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource,
                       session: date) -> dict:
    """Assess the session's stored bars, record the result, alert on any quarantine, and
    return market_bars's metadata about it."""
    quality = data_quality.assess_session(warehouse.warehouse, session)
    quarantined = quality.quarantined
    if quarantined.height or quality.corrections.height:
        _alert(context, alerts, quality)
    return {
        "quarantined": quarantined.height,
        "quarantined_share": float(round(quality.suspect_share, 6)),
        "quarantined_symbols": ", ".join(quarantined["symbol"].to_list()[:50]) or "none",
        "data_quality": quarantine_table(quality.records),
        "corrections": quality.corrections.height,
    }


def _alert(context, alerts: AlertsResource, quality: SessionQuality) -> None:
    quarantined = quality.quarantined
    details = {f"{s} ({k})": r for s, k, r in quarantined.select("symbol", "kind", "reason").head(20).iter_rows()}
    details.update({f"{s} corrected": d for s, d in quality.corrections.select("symbol", "detail").iter_rows()})
    title = (f"{quarantined.height} symbol(s) quarantined on {quality.session} "
             f"({quality.suspect_share:.1%} of {quality.symbols}): no new order in them this session")
    if quarantined.is_empty():
        title = f"{quality.corrections.height} quarantined bar(s) corrected by a later load"
    alerts.send(Alert(kind=AlertKind.DATA_QUALITY, severity=Severity.WARNING, session=quality.session,
                      title=title, details=details), log=context.log)


class ReleaseQuarantineConfig(dg.Config):
    session: str  # YYYY-MM-DD
    symbol: str
    reason: str  # required: what you checked; recorded with the run that made the decision


@dg.op
def release_quarantine(context: dg.OpExecutionContext, config: ReleaseQuarantineConfig,
                       warehouse: WarehouseResource) -> None:
    try:
        session = date.fromisoformat(config.session.strip())
    except ValueError:
        raise dg.Failure(description=f"session {config.session!r} is not a YYYY-MM-DD date") from None
    try:
        event = data_quality.release(warehouse.warehouse, session, config.symbol.strip(), config.reason,
                                     actor=f"run {context.run_id}")
    except data_quality.QuarantineReleaseError as refused:
        raise dg.Failure(description=str(refused)) from None
    context.log.info(f"released {config.symbol} on {session}: {event['detail'][0]}")
    context.log.info("re-materialise the session's target_portfolio and submitted_orders to trade it")


@dg.job(executor_def=dg.in_process_executor, tags=CODE_LOCATION_TAGS,
        description="Release a quarantined symbol-session: the bar trades and values the book again; "
        "the reason and the run are recorded in data_quality_events.")
def release_quarantine_job():
    release_quarantine()
