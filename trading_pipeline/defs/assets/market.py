
import dagster as dg
import polars as pl

from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.quality import quarantine_session
from trading_pipeline.defs.resources import AlertsResource, MarketDataResource, WarehouseResource
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import FileBarSource
from trading_pipeline.storage import market_store


@dg.asset(
    partitions_def=sessions_partitions,
    group_name="market",
    description="Daily OHLCV bars of the universe for session D; the first run also loads "
    "the history the model needs (from the history start).",
    kinds={"duckdb", "polars"},
)
def market_bars(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    source = market.market()
    # Everything the run needs is checked before anything is written.
    _check_history_start(market, session)
    if market.from_broker:
        return _from_broker(context, market, warehouse, alerts, session)
    loaded = source.load() if isinstance(source, FileBarSource) else None
    bars = source.bars([session])
    if bars.is_empty():
        raise dg.Failure(description=_no_bars(source, session), metadata={"source": market.source})
    stored = market_store.stored_sessions(warehouse.warehouse)
    missing = [s for s in sessions_between(market.first_session, session) if s not in stored and s != session]
    history = source.bars(missing) if missing else bars.clear()
    if missing:
        context.log.info(f"loading {len(missing)} sessions of history ({missing[0]} .. {missing[-1]})")
    market_store.store_session(warehouse.warehouse, session, bars, history)
    metadata = {
        "rows": bars.height,
        "symbols": bars["symbol"].n_unique(),
        "history_sessions_loaded": len(missing),
        "preview": dg.MetadataValue.md(bars.head(10).to_pandas().to_markdown(index=False)),
    }
    if loaded is not None:
        metadata.update(_file_metadata(source, loaded, session))
    metadata.update(quarantine_session(context, warehouse, alerts, session))  # suspect bars never trade
    return dg.MaterializeResult(metadata=metadata)


def _from_broker(context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource,
                 alerts: AlertsResource, session) -> dg.MaterializeResult:
    """Fetch what is missing from the broker's market data, restate split or dividend history."""
    from trading_pipeline.services.market_data import sync_session

    report = sync_session(warehouse.warehouse, market.market(), session, market.first_session)
    bars = market_store.read_bars(warehouse.warehouse, [session])
    if bars.is_empty():
        raise dg.Failure(description=f"{market.source} has no bars for session {session} for any symbol of the "
                         "universe (a holiday the calendar does not know, or the feed lags); the bars fetched for "
                         "earlier sessions are stored. Run the session again later", metadata=report.metadata())
    context.log.info(f"{report.source}: {report.requests} requests, {report.stored_rows} bars stored, "
                     f"{report.adjustments.height} split(s)/dividend(s) restated")
    metadata = {"rows": bars.height, "symbols": bars["symbol"].n_unique(), **report.metadata(),
                "preview": dg.MetadataValue.md(bars.head(10).to_pandas().to_markdown(index=False))}
    metadata.update(quarantine_session(context, warehouse, alerts, session))  # suspect bars never trade
    return dg.MaterializeResult(metadata=metadata)


def _check_history_start(market: MarketDataResource, session) -> None:
    if market.first_session > session:
        raise dg.Failure(
            description=f"the history start {market.first_session} (TRADING_HISTORY_START) is after session "
            f"{session}: set it to the first session the model's history should come from; nothing was written")


def _no_bars(source, session) -> str:
    if not isinstance(source, FileBarSource):
        return f"the market data source has no bars for session {session}; nothing was written"
    sessions = source.sessions()
    held = f"they hold {sessions[0]} .. {sessions[-1]}" if sessions else "they hold no bars"
    return (f"the files in {source.path} have no bars for session {session} ({held}); nothing was written. "
            "Run a session the files have: `python -m trading_pipeline.cli latest-session` prints the last one")


def _file_metadata(source: FileBarSource, loaded, session) -> dict:
    gaps = source.gaps()
    today = gaps.filter(pl.col("session") == session)
    return {
        "files": loaded.files,
        "files_read": loaded.files_read,
        "files_unchanged": loaded.files_unchanged,
        "files_removed": loaded.files_removed,
        "file_load_seconds": round(loaded.seconds, 3),
        # A gap is a row with a date and no values: the symbol has no bar that session.
        "gaps_in_data": gaps.height,
        "gaps_this_session": today.height,
        "gap_symbols_this_session": ", ".join(today["symbol"].sort().to_list()) or "none",
    }
