
import dagster as dg

from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import MarketDataResource, WarehouseResource
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.storage import market_store


@dg.asset(
    partitions_def=sessions_partitions,
    group_name="market",
    description="Daily OHLCV bars of the universe for session D; the first run also loads "
    "the history the model needs (from the history start).",
    kinds={"duckdb", "polars"},
)
def market_bars(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    session = session_of(context)
    source = market.market()
    stored = market_store.stored_sessions(warehouse.warehouse)
    missing = [s for s in sessions_between(market.first_session, session) if s not in stored and s != session]
    if missing:
        context.log.info(f"loading {len(missing)} sessions of history ({missing[0]} .. {missing[-1]})")
        market_store.append_history(warehouse.warehouse, source.bars(missing))
    bars = source.bars([session])
    if bars.is_empty():
        raise dg.Failure(
            description=f"the market data source has no bars for session {session}",
            metadata={"source": market.source},
        )
    market_store.write_session(warehouse.warehouse, session, bars)
    return dg.MaterializeResult(
        metadata={
            "rows": bars.height,
            "symbols": bars["symbol"].n_unique(),
            "history_sessions_loaded": len(missing),
            "preview": dg.MetadataValue.md(bars.head(10).to_pandas().to_markdown(index=False)),
        }
    )
