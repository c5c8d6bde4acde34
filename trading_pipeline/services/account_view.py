"""What a trader asks of an account each morning, read from the ledger as of one session:
positions with P&L, the session's orders and fills, cash and equity, the equity curve against
the backtest and a benchmark, drawdown, the kill switch, and the model that decided.

It only reads: a view of recorded facts, the same whenever it is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain import performance as perf
from trading_pipeline.storage.ledger import OPEN_STATUSES, Ledger

POSITION_COLUMNS = ["symbol", "quantity", "entry", "last", "market_value", "unrealised_pnl",
                    "unrealised_return", "weight", "stop"]


@dataclass(frozen=True)
class AccountView:
    account: str
    session: date
    equity: float
    cash: float
    positions: pl.DataFrame  # POSITION_COLUMNS
    orders: pl.DataFrame  # the orders decided at the session (they fill at the next one)
    fills: pl.DataFrame  # the fills recorded at the session (orders of the session before)
    curve: pl.DataFrame  # session, equity, daily_pnl, daily_return, peak_equity, drawdown
    benchmark: pl.DataFrame  # session, equity: the universe, equal weight, from the same start
    turnover: float  # filled notional at the session / equity
    kill_switch_engaged: bool
    kill_switch_reason: str | None
    kill_switch_history: pl.DataFrame  # recorded_at, state, reason, actor (newest first)

    @property
    def today(self) -> dict:
        row = self.curve.filter(pl.col("session") == self.session)
        return row.row(0, named=True) if row.height else {}

    @property
    def unrealised_pnl(self) -> float:
        return float(self.positions["unrealised_pnl"].sum()) if self.positions.height else 0.0


def account_view(ledger: Ledger, account: str, session: date) -> AccountView:
    snapshot = ledger.account_snapshot(account, session)
    if snapshot is None:
        raise LookupError(f"account {account!r} has no snapshot for {session}: materialise "
                          "reconciled_positions for that session first")
    history = ledger.account_history(account, session)
    curve = perf.equity_curve(history, float(history["equity"][0]))
    engaged, reason = ledger.kill_switch_engaged(account)
    switch = ledger.kill_switch_history(account)
    fills = _fills(ledger, account, session)
    return AccountView(
        account=account, session=session, equity=snapshot.equity, cash=snapshot.cash,
        positions=_positions(ledger, account, session, snapshot.equity),
        orders=_orders(ledger, account, session), fills=fills, curve=curve,
        benchmark=equal_weight_benchmark(ledger, curve),
        turnover=float((fills["quantity"] * fills["price"]).sum()) / snapshot.equity
        if fills.height and snapshot.equity else 0.0,
        kill_switch_engaged=engaged, kill_switch_reason=reason,
        kill_switch_history=switch.reverse().select(
            pl.col("recorded_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
            pl.when(pl.col("engaged")).then(pl.lit("engaged")).otherwise(pl.lit("released")).alias("state"),
            "reason", "actor") if switch.height else pl.DataFrame(
            schema={"recorded_at": pl.String, "state": pl.String, "reason": pl.String, "actor": pl.String}),
    )


def _positions(ledger: Ledger, account: str, session: date, equity: float) -> pl.DataFrame:
    held = ledger.warehouse.query(
        """select symbol, quantity, avg_entry_price as entry, market_price as last
           from ledger_positions where broker = ? and session = ? and quantity <> 0 order by symbol""",
        [account, session])
    stops = ledger.warehouse.query(
        f"""select symbol, max(coalesce(stop_price, limit_price)) as stop from ledger_orders
            where broker = ? and purpose = 'stop_loss' and session <= ? and not dry_run
              and status in ({", ".join("?" * len(OPEN_STATUSES))})
            group by symbol""", [account, session, *OPEN_STATUSES])
    return held.join(stops, on="symbol", how="left").with_columns(
        (pl.col("quantity") * pl.col("last")).alias("market_value"),
        (pl.col("quantity") * (pl.col("last") - pl.col("entry"))).alias("unrealised_pnl"),
        (pl.col("last") / pl.col("entry") - 1.0).alias("unrealised_return"),
        (pl.col("quantity") * pl.col("last") / equity).alias("weight") if equity else pl.lit(0.0).alias("weight"),
    ).select(POSITION_COLUMNS).sort("market_value", descending=True)


def _orders(ledger: Ledger, account: str, session: date) -> pl.DataFrame:
    return ledger.warehouse.query(
        """select symbol, side, quantity, order_type as type, purpose, status, filled_quantity as filled,
                  avg_fill_price as fill_price, coalesce(stop_price, limit_price) as trigger, reason
           from ledger_orders where broker = ? and session = ?
           order by coalesce(plan_seq, 1000000), symbol""", [account, session])


def _fills(ledger: Ledger, account: str, session: date) -> pl.DataFrame:
    return ledger.warehouse.query(
        """select strftime(filled_at, '%Y-%m-%d %H:%M') as filled_at, symbol, side, quantity, price,
                  commission from ledger_fills where broker = ? and recorded_session = ?
           order by filled_at, symbol""", [account, session])


def equal_weight_benchmark(ledger: Ledger, curve: pl.DataFrame) -> pl.DataFrame:
    """The universe held in equal weights, rebalanced daily, from the account's first session and
    equity: what doing nothing clever would have earned over the same sessions."""
    if curve.is_empty() or not ledger.warehouse.table_exists("bars"):
        return pl.DataFrame(schema={"session": pl.Date, "equity": pl.Float64})
    first, last = curve["session"][0], curve["session"][-1]
    daily = ledger.warehouse.query(
        """with r as (select session, close / lag(close) over (partition by symbol order by session) - 1 as ret
                      from bars where session between ? and ? and close > 0)
           select session, coalesce(avg(ret), 0) as ret from r group by session order by session""",
        [first, last])
    start = float(curve["equity"][0])
    return daily.with_columns(
        pl.when(pl.col("session") == first).then(0.0).otherwise(pl.col("ret")).alias("ret")
    ).select("session", (start * (1.0 + pl.col("ret")).cum_prod()).alias("equity"))


MODEL_COLUMNS = ["role", "version", "training_end", "rank_ic", "ic", "hit_rate", "since", "why"]


def model_story(registry, roles: tuple[str, ...] = ("champion", "challenger")) -> pl.DataFrame:
    """The champion and the challenger: their out-of-sample figures and why each holds its alias
    (the reason recorded on the version when the alias moved to it)."""
    rows = []
    tags_by_version = registry.version_tags() if registry.versions() else {}
    for role in roles:
        version = registry.alias_version(role)
        if version is None:
            continue
        tags = tags_by_version.get(version, {})
        metrics = registry.metrics(version)
        rows.append({
            "role": role, "version": f"v{version}",
            "training_end": tags.get("training_end", tags.get("last_session", "")),
            "rank_ic": metrics.get("rank_ic"), "ic": metrics.get("ic"), "hit_rate": metrics.get("hit_rate"),
            "since": tags.get(f"alias.{role}.set_at", "")[:16].replace("T", " "),
            "why": tags.get(f"alias.{role}.reason", ""),
        })
    return pl.DataFrame(rows, schema={"role": pl.String, "version": pl.String, "training_end": pl.String,
                                      "rank_ic": pl.Float64, "ic": pl.Float64, "hit_rate": pl.Float64,
                                      "since": pl.String, "why": pl.String})


def drift_row(ledger: Ledger, session: date, account: str | None = None) -> dict | None:
    """The session's drift report as recorded for `account` (severity, drifted share, the
    champion's realised rank IC, the HTML file), or None before drift_report ran."""
    from trading_pipeline.storage.account_tables import read_account_range

    rows = read_account_range(ledger.warehouse, "drift_reports", account, session, session)
    return rows.row(0, named=True) if rows.height else None
