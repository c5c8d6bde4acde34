"""A broker market data source, session by session: fetch only what is missing, notice splits
and dividends, keep the universe's members honest, and store it all in the warehouse.

Per session (`sync_session`):

1. Symbols with nothing stored are back-filled from the history start (one fetch for all).
2. The others are fetched from the earliest of their last stored sessions on, adjusted, in
   one request for the whole universe while it fits one page. That first day is already
   stored: its adjusted close, fetched again, tells whether a split or dividend happened since
   (the venue restates every adjusted price before an ex-date). Where it did not, the newer
   bars have no action after them, so their adjusted prices are the traded ones.
3. A symbol whose stored adjusted close changed by more than `tolerance` (relative) has its
   new traded bars and its whole adjusted history fetched again and the stored adjusted closes replaced (features are
   computed from stored bars, so the next computation sees the restated history); the event
   is recorded in `adjustment_events` (symbol, session detected, the reference day's old and
   new adjusted close, their ratio).
4. New bars, replaced adjusted closes and events are written in one transaction; the bars go
   through the same validation as files (`validate_bars`).
5. The universe is reviewed (`domain/market/universe.review_members`): `universe_events`
   records who joined, entered (has the history features need), exited (stopped trading) or
   was removed. A symbol with no data is reported, not fatal; an exited one is not fetched.
   A symbol an account holds is fetched even outside the universe (`held_symbols`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

import polars as pl

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.factors import FEATURE_SETS
from trading_pipeline.domain.market.bars import BAR_SCHEMA, validate_bars
from trading_pipeline.domain.market.universe import (
    DEFAULT_EXIT_AFTER_SESSIONS,
    MemberStatus,
    SymbolRecord,
    removed_members,
    review_members,
)
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

# A stored adjusted close that moves by more than this (relative) was restated by a split or
# dividend; below it is rounding (prices come with four decimals).
DEFAULT_TOLERANCE = 5e-4
# The history a new symbol needs before it is scored: the longest lookback the factor library
# declares for any feature set.
HISTORY_NEEDED = max(feature_set.lookback for feature_set in FEATURE_SETS.values())


class FetchingSource(Protocol):
    """A broker source the service can fetch from by symbol and range (Alpaca, IBKR)."""

    name: str
    universe: tuple[str, ...]

    @property
    def requests(self) -> int: ...

    def fetch_bars(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """Validated BAR_SCHEMA bars: traded prices with the adjusted close."""
        ...

    def fetch_traded(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """session, symbol, open, high, low, close, volume as traded."""
        ...

    def fetch_adjusted(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        """The same columns, split- and dividend-adjusted as of now."""
        ...


@dataclass(frozen=True)
class SyncReport:
    session: date
    source: str
    requests: int  # requests (pages) sent to the venue for this session
    backfilled: list[str]  # symbols whose history was loaded from the history start
    stored_rows: int  # new bars stored
    session_rows: int  # bars stored for the session itself
    adjustments: pl.DataFrame  # ADJUSTMENT_EVENT_SCHEMA rows recorded now
    readjusted_rows: int  # stored rows whose adjusted close was replaced
    statuses: list[MemberStatus] = field(default_factory=list)
    events: pl.DataFrame = field(default_factory=pl.DataFrame)  # UNIVERSE_EVENT_SCHEMA rows recorded now
    held_outside: list[str] = field(default_factory=list)  # held, not in the universe: fetched to value and exit

    def with_status(self, status: str) -> list[str]:
        return [s.symbol for s in self.statuses if s.status == status]

    def metadata(self) -> dict:
        """What a person reads on the materialisation."""
        def listed(symbols: list[str]) -> str:
            return ", ".join(symbols[:30]) + (f" ... and {len(symbols) - 30} more" if len(symbols) > 30 else "") or "none"

        adjusted = [f"{sym} (ratio {ratio:.4g}, {ref}: {old:.4f} -> {new:.4f})" for sym, ref, old, new, ratio in
                    self.adjustments.select("symbol", "reference_session", "old_adj_close", "new_adj_close",
                                            "ratio").iter_rows()]
        return {
            "data_source": self.source,
            "data_requests": self.requests,
            "bars_stored": self.stored_rows,
            "symbols_backfilled": len(self.backfilled),
            "active_symbols": len(self.with_status("active")),
            "waiting_for_history": listed(self.with_status("waiting")),
            "halted_symbols": listed(self.with_status("halted")),
            "symbols_without_data": listed(self.with_status("no_data")),
            "held_outside_universe": listed(self.held_outside),
            "exited_this_session": listed(self.events.filter(pl.col("event") == "exited")["symbol"].to_list()
                                          if self.events.height else []),
            "splits_or_dividends": "; ".join(adjusted) or "none",
            "adjusted_rows_replaced": self.readjusted_rows,
        }


def sessions_after(first: date, last: date) -> int:
    """Sessions after `first` up to and including `last`."""
    return max(0, len([s for s in sessions_between(first, last) if s > first]))


def sync_session(
    warehouse: Warehouse,
    source: FetchingSource,
    session: date,
    history_start: date,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    history_needed: int = HISTORY_NEEDED,
    exit_after: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncReport:
    """Bring the warehouse's bars of `source`'s universe up to `session` (see the module)."""
    exit_after = DEFAULT_EXIT_AFTER_SESSIONS if exit_after is None else exit_after
    requests_before = source.requests
    recorded = market_store.universe_events(warehouse)
    exited = _with_event(recorded, "exited")
    outside = [s for s in held_symbols(warehouse, session) if s not in source.universe and s not in exited]
    chosen = [s for s in source.universe if s not in exited] + outside
    coverage = {row["symbol"]: row for row in market_store.symbol_coverage(warehouse, session).iter_rows(named=True)}

    new_symbols = [s for s in chosen if s not in coverage]
    behind = [s for s in chosen if s in coverage and coverage[s]["last_bar"] < session]
    fetched = [source.fetch_bars(new_symbols, history_start, session)] if new_symbols else []
    changes = pl.DataFrame(schema=market_store.ADJUSTMENT_EVENT_SCHEMA)
    readjusted = pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "adj_close": pl.Float64})
    if behind:
        last_stored = pl.DataFrame({"symbol": behind, "__last__": [coverage[s]["last_bar"] for s in behind]},
                                   schema={"symbol": pl.String, "__last__": pl.Date})
        # One request: adjusted bars from the earliest last stored day. Where that day's adjusted
        # close is unchanged, no action happened since, so the newer bars are the traded ones.
        recent = source.fetch_adjusted(behind, min(coverage[s]["last_bar"] for s in behind), session)
        recent = recent.join(last_stored, on="symbol")
        changes = _restated(warehouse, recent.filter(pl.col("session") <= pl.col("__last__")), tolerance,
                            source.name, session, now())
        restated = changes["symbol"].to_list()
        fresh = recent.filter((pl.col("session") > pl.col("__last__")) & ~pl.col("symbol").is_in(restated))
        fetched.append(_validated(fresh.drop("__last__").with_columns(pl.col("close").alias("adj_close")), source))
        if restated:
            since = min(coverage[s]["last_bar"] for s in restated)
            traded = source.fetch_traded(restated, since, session).join(last_stored, on="symbol")
            history = source.fetch_adjusted(restated, min(coverage[s]["first_bar"] for s in restated), session)
            history = history.select("session", "symbol", pl.col("close").alias("adj_close"))
            fetched.append(_validated(traded.filter(pl.col("session") > pl.col("__last__")).drop("__last__")
                                      .join(history, on=["session", "symbol"], how="left"), source))
            readjusted = history.join(last_stored, on="symbol").filter(
                pl.col("session") <= pl.col("__last__")).drop("__last__")
    bars = pl.concat(fetched).select(*BAR_SCHEMA) if fetched else pl.DataFrame(schema=BAR_SCHEMA)
    replaced = market_store.store_fetched(warehouse, bars, readjusted, _with_rows(changes, readjusted))
    statuses, events = _review(warehouse, source, session, recorded, exited, history_needed, exit_after, now())
    return SyncReport(
        session=session, source=source.name, requests=source.requests - requests_before, held_outside=outside,
        backfilled=sorted(set(new_symbols) & set(bars["symbol"].to_list())), stored_rows=bars.height,
        session_rows=bars.filter(pl.col("session") == session).height, adjustments=_with_rows(changes, readjusted),
        readjusted_rows=replaced, statuses=statuses, events=events)


def held_symbols(warehouse: Warehouse, session: date) -> list[str]:
    """Symbols an account of this warehouse holds: its latest position snapshot on or before
    `session`, or what an adoption took on. Their bars are fetched even outside the universe
    (removed from it, or held before adoption), so a holding can always be valued and exited."""
    held: set[str] = set()
    if warehouse.table_exists("ledger_positions"):
        held |= set(warehouse.query(
            """select symbol from ledger_positions p where quantity <> 0 and session = (
                   select max(session) from ledger_positions q where q.broker = p.broker and q.session <= ?)""",
            [session])["symbol"].to_list())
    if warehouse.table_exists("adopted_positions"):
        held |= set(warehouse.query("select symbol from adopted_positions where quantity <> 0")["symbol"].to_list())
    return sorted(held)


def _validated(bars: pl.DataFrame, source: FetchingSource) -> pl.DataFrame:
    """The bar rules every source's bars pass (`validate_bars`), or BarValidationError."""
    if bars.is_empty():
        return pl.DataFrame(schema=BAR_SCHEMA)
    return validate_bars(bars, f"{source.name} market data")


def _restated(warehouse: Warehouse, overlap: pl.DataFrame, tolerance: float, source: str, session: date,
              stamp: datetime) -> pl.DataFrame:
    """One event per symbol whose already-stored adjusted close was restated, on its latest
    overlapping day: old and new adjusted close and ratio old / new (2.0: a 2-for-1 split)."""
    if overlap.is_empty():
        return pl.DataFrame(schema=market_store.ADJUSTMENT_EVENT_SCHEMA)
    stored = market_store.stored_adjusted(warehouse, overlap["symbol"].unique().to_list(),
                                          overlap["session"].min(), overlap["session"].max())
    compared = (overlap.select("session", "symbol", pl.col("close").alias("new_adj_close"))
                .join(stored.rename({"adj_close": "old_adj_close"}), on=["session", "symbol"])
                .filter((pl.col("new_adj_close") / pl.col("old_adj_close") - 1).abs() > tolerance)
                .sort("session").group_by("symbol", maintain_order=True).last())
    return compared.select(
        pl.lit(session).alias("session_detected"), "symbol", pl.col("session").alias("reference_session"),
        "old_adj_close", "new_adj_close", (pl.col("old_adj_close") / pl.col("new_adj_close")).alias("ratio"),
        pl.lit(0).alias("rows_replaced"), pl.lit(source).alias("source"), pl.lit(stamp).alias("recorded_at"),
    ).cast(market_store.ADJUSTMENT_EVENT_SCHEMA).sort("symbol")  # type: ignore[arg-type]


def _with_rows(changes: pl.DataFrame, readjusted: pl.DataFrame) -> pl.DataFrame:
    if changes.is_empty():
        return changes
    counts = readjusted.group_by("symbol").len("__rows__")
    return (changes.join(counts, on="symbol", how="left")
            .with_columns(pl.col("__rows__").fill_null(0).cast(pl.Int64).alias("rows_replaced")).drop("__rows__"))


def _with_event(events: pl.DataFrame, kind: str) -> set[str]:
    return set(events.filter(pl.col("event") == kind)["symbol"].to_list()) if events.height else set()


def _review(warehouse: Warehouse, source: FetchingSource, session: date, recorded: pl.DataFrame, exited: set[str],
            history_needed: int, exit_after: int, stamp: datetime) -> tuple[list[MemberStatus], pl.DataFrame]:
    coverage = market_store.symbol_coverage(warehouse, session)
    joined_on = {s: d for s, d in recorded.filter(pl.col("event") == "joined").select("symbol", "session").iter_rows()} \
        if recorded.height else {}
    records = {
        symbol: SymbolRecord(bars, last_bar, joined_on.get(symbol, session))
        for symbol, bars, last_bar in coverage.select("symbol", "bars", "last_bar").iter_rows()
    }
    for symbol in source.universe:
        records.setdefault(symbol, SymbolRecord(0, None, joined_on.get(symbol, session)))
    statuses, events = review_members(
        session, list(source.universe), records, history_needed=history_needed, sessions_since=sessions_after,
        joined=set(joined_on), entered=_with_event(recorded, "entered"), exited=exited, exit_after=exit_after)
    gone = removed_members(session, list(source.universe), sorted(joined_on), exited | _with_event(recorded, "removed"))
    rows = pl.DataFrame(
        [{"session": e.session, "symbol": e.symbol, "event": e.event, "reason": e.reason, "recorded_at": stamp}
         for e in [*events, *gone]], schema=market_store.UNIVERSE_EVENT_SCHEMA)
    market_store.record_universe_events(warehouse, rows)
    return statuses, rows


__all__ = ["DEFAULT_EXIT_AFTER_SESSIONS", "DEFAULT_TOLERANCE", "FetchingSource", "HISTORY_NEEDED", "SyncReport",
           "sync_session"]
