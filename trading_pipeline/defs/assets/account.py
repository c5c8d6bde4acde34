"""The trader's desk: one asset whose latest materialization answers what a person asks of the
account each morning, in Dagster's own metadata types (tables, an inline chart, links), with
numbers keyed by session so the asset's Plots tab draws their history."""


from pathlib import Path

import polars as pl

import dagster as dg

from trading_pipeline.defs.metadata import image, money, percent, table
from trading_pipeline.defs.partitions import session_of, sessions_partitions
from trading_pipeline.defs.resources import (
    BrokerResource,
    ModelStoreResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.domain.calendar import trailing_unbroken
from trading_pipeline.services import account_view as view
from trading_pipeline.services.charts import equity_and_drawdown_png
from trading_pipeline.services.report_links import drift_report_url, mlflow_ui_url


@dg.asset(
    partitions_def=sessions_partitions,
    deps=["performance", "drift_report"],
    group_name="trading",
    description="The account at a glance after session D: cash, equity, P&L and drawdown; "
    "positions with entry, last price, market value, unrealised P&L, weight and stop; the orders "
    "decided at D and the fills recorded at D; equity against the backtest and an equal-weight "
    "benchmark; the kill switch; the champion and why; the drift report. Only reads the ledger.",
    kinds={"duckdb", "matplotlib"},
)
def account_view(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    broker: BrokerResource,
    strategy: StrategyResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    session = session_of(context)
    ledger = warehouse.ledger
    with warehouse.warehouse.held():
        try:
            desk = view.account_view(ledger, broker.venue, session)
        except LookupError as missing:
            raise dg.Failure(description=str(missing)) from None
        backtest, backtest_note = _backtest(ledger, desk, strategy)
        latest = ledger.latest_snapshot_session(broker.venue)
        drift = view.drift_row(ledger, session, desk.account)
    registry = model_store.registry()
    models = view.model_story(registry)
    drift_url = (drift_report_url(registry, drift["model_version"], Path(drift["html_path"]).name)
                 if drift and drift.get("html_path") else None)
    return dg.MaterializeResult(metadata=desk_metadata(desk, backtest, backtest_note, models, drift, drift_url,
                                                       latest, mlflow_ui_url(registry.tracking_uri)))


def _backtest(ledger, desk: view.AccountView, strategy) -> tuple[pl.DataFrame | None, str]:
    """The backtest of the predictions the loop used, over the newest unbroken stretch of traded
    sessions (as the performance monitor compares them); None with why when it cannot run."""
    from trading_pipeline.services.modeling import read_predictions
    from trading_pipeline.services.monitor import shadow_backtest

    stored = read_predictions(ledger.warehouse, desk.account, desk.curve["session"][0], desk.session)
    predicted = set(stored["session"]) if stored.width else set()
    stretch = trailing_unbroken([s for s in desk.curve["session"] if s in predicted])
    if len(stretch) < 2:
        return None, "too few sessions for a backtest yet"
    track = desk.curve.filter(pl.col("session").is_between(stretch[0], stretch[-1])).select("session", "equity")
    try:
        return shadow_backtest(ledger, track, strategy, desk.account).daily.select("session", "equity"), ""
    except Exception as error:  # the view still answers everything else; the reason is shown
        return None, f"backtest unavailable: {error}"


def desk_metadata(desk: view.AccountView, backtest: pl.DataFrame | None, backtest_note: str,
                  models: pl.DataFrame, drift: dict | None, drift_url: str | None, latest_session,
                  mlflow_ui: str) -> dict:
    today = desk.today
    invested = float(desk.positions["market_value"].sum()) if desk.positions.height else 0.0
    stats = {"sessions": desk.curve.height, "total_return": desk.curve["equity"][-1] / desk.curve["equity"][0] - 1,
             "max_drawdown": float(desk.curve["drawdown"].min())}
    champion = models.filter(pl.col("role") == "champion")
    champion_row = champion.row(0, named=True) if champion.height else None
    switch = f"ENGAGED: {desk.kill_switch_reason}" if desk.kill_switch_engaged else "released"
    backtest_last = float(backtest["equity"][-1]) if backtest is not None and backtest.height else None
    benchmark_last = float(desk.benchmark["equity"][-1]) if desk.benchmark.height else None
    figures = [
        ("account", desk.account),
        ("session", f"{desk.session}" + ("" if latest_session in (None, desk.session)
                                        else f" (the account has moved on to {latest_session})")),
        ("equity", money(desk.equity)),
        ("cash", money(desk.cash)),
        ("invested", f"{money(invested)} in {desk.positions.height} positions"),
        ("unrealised P&L", money(desk.unrealised_pnl)),
        ("daily P&L", f"{money(today.get('daily_pnl'))} ({percent(today.get('daily_return'))})"),
        ("total return", f"{percent(stats['total_return'])} over {stats['sessions']} sessions"),
        ("drawdown", f"{percent(today.get('drawdown'))} (worst {percent(stats['max_drawdown'])})"),
        ("backtest, same sessions", money(backtest_last) if backtest_last is not None else backtest_note),
        ("benchmark: universe, equal weight", money(benchmark_last) if benchmark_last is not None else "none"),
        ("turnover", percent(desk.turnover)),
        ("orders decided", f"{desk.orders.height} (they fill at the next session)"),
        ("fills recorded", str(desk.fills.height)),
        ("kill switch", switch),
        ("champion", f"{champion_row['version']}: {champion_row['why']}" if champion_row else "none yet"),
        ("drift", "no report for this session" if not drift else drift["reasons"]
         if drift["drifted_share"] is None  # no model in use: nothing was judged
         else f"{drift['severity']}: {percent(drift['drifted_share'], 0)} of columns drifted"),
    ]
    metadata: dict = {
        "summary": dg.MetadataValue.table(
            [dg.TableRecord({"figure": k, "value": v}) for k, v in figures],
            schema=dg.TableSchema(columns=[dg.TableColumn("figure", "string"), dg.TableColumn("value", "string")])),
        "equity_chart": image(equity_and_drawdown_png(
            desk.curve, backtest, desk.benchmark, f"{desk.account}: equity and drawdown to {desk.session}"),
            "equity against the backtest and the benchmark, with drawdown"),
        "positions": table(desk.positions, {
            "quantity": "shares", "entry": "price", "last": "price", "market_value": "money",
            "unrealised_pnl": "money", "unrealised_return": "percent", "weight": "percent", "stop": "price"}),
        "orders_today": table(desk.orders, {"quantity": "shares", "filled": "shares", "fill_price": "price",
                                            "trigger": "price"}),
        "fills_today": table(desk.fills, {"quantity": "shares", "price": "price", "commission": "money"}),
        "kill_switch": switch,
        "kill_switch_history": table(desk.kill_switch_history.head(10)),
        "models": table(models, {"rank_ic": "number", "ic": "number", "hit_rate": "percent"}),
        "mlflow": dg.MetadataValue.url(f"{mlflow_ui}/#/models"),
    }
    if drift_url:
        metadata["drift_report"] = dg.MetadataValue.url(drift_url)  # opens with `make mlflow` running
    # Numbers keyed by the session: the asset's Plots tab draws each one's history.
    metadata.update({
        "equity_usd": round(desk.equity, 2),
        "cash_usd": round(desk.cash, 2),
        "unrealised_pnl_usd": round(desk.unrealised_pnl, 2),
        "daily_pnl_usd": round(float(today.get("daily_pnl") or 0.0), 2),
        "drawdown_pct": round(float(today.get("drawdown") or 0.0) * 100, 3),
        "turnover_pct": round(desk.turnover * 100, 3),
        "positions_held": desk.positions.height,
        "champion_rank_ic": _float(drift.get("decay_rank_ic")) if drift else float("nan"),
        "drift_share_pct": (round(float(drift["drifted_share"]) * 100, 2)
                            if drift and drift["drifted_share"] is not None else float("nan")),
    })
    return metadata


def _float(value) -> float:
    # NaN, not None: a float entry keeps one type in the UI's plot over partitions
    return float("nan") if value is None else round(float(value), 4)
