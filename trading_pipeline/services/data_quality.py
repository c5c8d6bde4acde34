"""Data quality against the warehouse: assess a session's stored bars, quarantine what is
suspect, record corrections and releases, and hand the order path what it may trade.

Tables (created here on first write):

- `data_quality`: one row per named symbol-session (kind, quarantined, reason, the close and
  adjusted close judged), replaced when the session is assessed again (derived data).
- `data_quality_events`: append-only facts: `corrected` (a later load changed a quarantined
  bar and it now passes), `released` (a person's decision, with the reason and who).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.market.plausibility import PlausibilityRules, assess_bars, believed_returns
from trading_pipeline.domain.market.universe import DEFAULT_EXIT_AFTER_SESSIONS
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

QUALITY = "data_quality"
QUALITY_EVENTS = "data_quality_events"
# Sessions read behind the assessed one: the volatility (60) and volume (20) windows, plus room.
WINDOW_SESSIONS = 90
# Kinds whose close is still the real last price (no trade, or no bar at all).
PRICE_STILL_REAL = ("stale", "missing")
QUALITY_SCHEMA = {
    "session": pl.Date, "symbol": pl.String, "kind": pl.String, "quarantined": pl.Boolean,
    "reason": pl.String, "close": pl.Float64, "adj_close": pl.Float64, "assessed_at": pl.Datetime("us", "UTC"),
}
EVENT_SCHEMA = {
    "session": pl.Date, "symbol": pl.String, "event": pl.String, "detail": pl.String,
    "actor": pl.String, "recorded_at": pl.Datetime("us", "UTC"),
}


class QuarantineReleaseError(ValueError):
    """A release that cannot be recorded: no such quarantine, or no reason given."""


@dataclass(frozen=True)
class SessionQuality:
    session: date
    symbols: int  # symbols with a bar this session or the one before
    records: pl.DataFrame  # QUALITY_SCHEMA rows written for the session
    corrections: pl.DataFrame  # EVENT_SCHEMA rows recorded by this assessment

    @property
    def quarantined(self) -> pl.DataFrame:
        return self.records.filter(pl.col("quarantined"))

    @property
    def suspect_share(self) -> float:
        return self.quarantined.height / self.symbols if self.symbols else 0.0

    def too_suspect(self, max_share: float) -> bool:
        return self.suspect_share > max_share

    def table(self) -> pl.DataFrame:
        """What a person reads: symbol, kind, quarantined, reason."""
        return self.records.select("symbol", "kind", "quarantined", "reason")


def assess_session(warehouse: Warehouse, session: date, rules: PlausibilityRules | None = None,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> SessionQuality:
    """Judge the stored bars of `session` against the sessions before it and record the result.

    Earlier decisions hold: a bar quarantined before stays quarantined while it is unchanged,
    a released one is a reference. A quarantined bar of an earlier session in the window that
    a later load changed is judged again; if it now passes, the correction is recorded."""
    window = sessions_back(session, WINDOW_SESSIONS)
    bars = market_store.read_bars_through(warehouse, session, window[0])
    if bars.is_empty() or bars.filter(pl.col("session") == session).is_empty():
        raise ValueError(f"no bars stored for {session}: store the session's bars before assessing them")
    earlier = _records_between(warehouse, window[0], session)
    released = _released(warehouse, window[0], session)
    stored_now = bars.select("session", "symbol", pl.col("close").alias("__close_now__"))
    kept = earlier.join(stored_now, on=["session", "symbol"], how="left")
    unchanged = kept.filter(pl.col("close").eq_missing(pl.col("__close_now__")) | (pl.col("kind") == "missing"))
    changed = kept.filter(pl.col("quarantined") & ~pl.col("close").eq_missing(pl.col("__close_now__"))
                          & (pl.col("kind") != "missing"))
    known = pl.concat([
        unchanged.filter(pl.col("session") < session).select("session", "symbol", "quarantined"),
        released.select("session", "symbol", pl.lit(False).alias("quarantined")),
    ]).unique(["session", "symbol"], keep="last")
    found = assess_bars(bars, rules, known)
    stamp = now()
    corrections = _corrections(warehouse, changed, found, bars, stamp)
    today = found.filter(pl.col("session") == session)
    missing = _missing(bars, session)
    released_today = set(released.filter(pl.col("session") == session)["symbol"].to_list())
    records = (
        pl.concat([today, missing])
        .join(bars.filter(pl.col("session") == session).select("symbol", "close", "adj_close"), on="symbol", how="left")
        .with_columns(
            (pl.col("quarantined") & ~pl.col("symbol").is_in(list(released_today))).alias("quarantined"),
            pl.when(pl.col("symbol").is_in(list(released_today)))
            .then(pl.concat_str(pl.col("reason"), pl.lit(" [released]"))).otherwise(pl.col("reason")).alias("reason"),
            pl.lit(stamp).cast(QUALITY_SCHEMA["assessed_at"]).alias("assessed_at"),
        )
        .select(*QUALITY_SCHEMA)
        .cast(QUALITY_SCHEMA)
        .sort("symbol")
    )
    warehouse.replace_partition(QUALITY, session, records)
    symbols = bars.filter(pl.col("session") == session)["symbol"].n_unique() + missing.height
    return SessionQuality(session, symbols, records, corrections)


def _records_between(warehouse: Warehouse, first: date, last: date) -> pl.DataFrame:
    if not warehouse.table_exists(QUALITY):
        return pl.DataFrame(schema=QUALITY_SCHEMA)
    return warehouse.query(f"select * from {QUALITY} where session between ? and ?", [first, last]).cast(QUALITY_SCHEMA)


def _released(warehouse: Warehouse, first: date, last: date) -> pl.DataFrame:
    if not warehouse.table_exists(QUALITY_EVENTS):
        return pl.DataFrame(schema=EVENT_SCHEMA)
    return warehouse.query(
        f"select * from {QUALITY_EVENTS} where event = 'released' and session between ? and ?", [first, last]
    ).cast(EVENT_SCHEMA)


def _missing(bars: pl.DataFrame, session: date) -> pl.DataFrame:
    """Symbols with a bar in one of the `DEFAULT_EXIT_AFTER_SESSIONS` stored sessions before
    `session` and none on it: every day of a halt, not only its first, so a held symbol stays
    frozen (kept, valued at its last close) until it trades again or the universe exits it."""
    before = bars.filter(pl.col("session") < session)
    if before.is_empty():
        return pl.DataFrame(schema={k: QUALITY_SCHEMA[k] for k in ("session", "symbol", "kind", "quarantined", "reason")})
    recent = before["session"].unique().sort().tail(DEFAULT_EXIT_AFTER_SESSIONS)
    today = set(bars.filter(pl.col("session") == session)["symbol"].to_list())
    gone = (before.filter((pl.col("session") >= recent.min()) & ~pl.col("symbol").is_in(list(today)))
            .sort("session").group_by("symbol", maintain_order=True).last().sort("symbol"))
    return gone.select(
        pl.lit(session).alias("session"), "symbol", pl.lit("missing").alias("kind"), pl.lit(True).alias("quarantined"),
        pl.format("no bar on {} (last bar on {}, close {}): the symbol is halted, stopped trading, was delisted "
                  "or the source has a gap; kept as it is, left out of this session's trading", pl.lit(str(session)),
                  pl.col("session").cast(pl.String), pl.col("close").round_sig_figs(6).cast(pl.String)).alias("reason"),
    )


def _corrections(warehouse: Warehouse, changed: pl.DataFrame, found: pl.DataFrame, bars: pl.DataFrame,
                 stamp: datetime) -> pl.DataFrame:
    """Quarantined bars a later load changed and that now pass: recorded, and their session's
    record updated so the bar trades and values the book again."""
    if changed.is_empty():
        return pl.DataFrame(schema=EVENT_SCHEMA)
    still = found.filter(pl.col("quarantined")).select("session", "symbol")
    fixed = changed.join(still, on=["session", "symbol"], how="anti")
    if fixed.is_empty():
        return pl.DataFrame(schema=EVENT_SCHEMA)
    events = fixed.select(
        "session", "symbol", pl.lit("corrected").alias("event"),
        pl.format("a later load changed the close from {} to {} and the bar now passes (was {}: {})",
                  pl.col("close").round_sig_figs(6).cast(pl.String),
                  pl.col("__close_now__").round_sig_figs(6).cast(pl.String), pl.col("kind"), pl.col("reason")).alias("detail"),
        pl.lit("market_bars").alias("actor"), pl.lit(stamp).alias("recorded_at"),
    ).cast(EVENT_SCHEMA)
    warehouse.append(QUALITY_EVENTS, events)
    for session in events["session"].unique().to_list():
        fixed_here = events.filter(pl.col("session") == session)["symbol"].to_list()
        rows = _records_between(warehouse, session, session).filter(~pl.col("symbol").is_in(fixed_here))
        warehouse.replace_partition(QUALITY, session, rows)
    return events


def quarantined_symbols(warehouse: Warehouse, session: date) -> dict[str, str]:
    """symbol -> reason for every quarantined (not released) symbol of `session`: no new order
    in these; a holding is kept; the book is valued at their last good close."""
    if not warehouse.table_exists(QUALITY):
        return {}
    rows = warehouse.read_partition(QUALITY, session)
    if rows.is_empty():
        return {}
    rows = rows.filter(pl.col("quarantined")).sort("symbol")
    return {s: f"{k}: {r}" for s, k, r in rows.select("symbol", "kind", "reason").iter_rows()}


def release(warehouse: Warehouse, session: date, symbol: str, reason: str, actor: str) -> pl.DataFrame:
    """Release a quarantined symbol-session: a recorded decision (who, why). The bar then trades,
    values the book and is the reference later bars are judged against."""
    if not reason or not reason.strip():
        raise QuarantineReleaseError("a release needs a reason: say what you checked (it is recorded)")
    quarantined = quarantined_symbols(warehouse, session)
    if symbol not in quarantined:
        listed = ", ".join(sorted(quarantined)) or "none"
        raise QuarantineReleaseError(
            f"{symbol!r} is not quarantined on {session} (quarantined then: {listed}); "
            "see the data_quality table or market_bars's metadata for that session")
    event = pl.DataFrame(
        {"session": [session], "symbol": [symbol], "event": ["released"],
         "detail": [f"{reason.strip()} (was {quarantined[symbol]})"], "actor": [actor],
         "recorded_at": [datetime.now(UTC)]}, schema=EVENT_SCHEMA)
    rows = _records_between(warehouse, session, session).with_columns(
        pl.when(pl.col("symbol") == symbol).then(False).otherwise(pl.col("quarantined")).alias("quarantined"),
        pl.when(pl.col("symbol") == symbol).then(pl.concat_str(pl.col("reason"), pl.lit(" [released]")))
        .otherwise(pl.col("reason")).alias("reason"),
    )
    with warehouse.held():
        warehouse.append(QUALITY_EVENTS, event)
        warehouse.replace_partition(QUALITY, session, rows)
    return event


def events(warehouse: Warehouse, session: date | None = None) -> pl.DataFrame:
    """Corrections and releases, oldest first (of one session, or all)."""
    if not warehouse.table_exists(QUALITY_EVENTS):
        return pl.DataFrame(schema=EVENT_SCHEMA)
    where, params = ("where session = ?", [session]) if session else ("", [])
    return warehouse.query(f"select * from {QUALITY_EVENTS} {where} order by recorded_at", params)


def _untrusted(warehouse: Warehouse, first: date, last: date) -> pl.DataFrame:
    """(session, symbol) whose prices are not to be believed: quarantined, not merely idle."""
    records = _records_between(warehouse, first, last)
    return records.filter(pl.col("quarantined") & ~pl.col("kind").is_in(PRICE_STILL_REAL)).select("session", "symbol")


def tradable_bars(warehouse: Warehouse, session: date, fallback: Callable[[date], pl.DataFrame] | None = None
                  ) -> pl.DataFrame:
    """The stored bars of `session` without its quarantined symbols: what a paper venue fills
    against and marks the book with (a dropped symbol keeps its last good mark). Where nothing
    is stored for the session, `fallback(session)` (the source) minus quarantined symbols."""
    bars = market_store.read_bars(warehouse, [session])
    if bars.is_empty() and fallback is not None:
        bars = fallback(session)
    held_out = set(quarantined_symbols(warehouse, session))
    return bars.filter(~pl.col("symbol").is_in(list(held_out))) if held_out and bars.height else bars


def last_good_closes(warehouse: Warehouse, session: date) -> pl.DataFrame:
    """symbol, close for planning `session`: the session's close, or for a quarantined or
    missing symbol its last close that was not quarantined (within the assessment window)."""
    first = sessions_back(session, WINDOW_SESSIONS)[0]
    bars = market_store.read_bars_through(warehouse, session, first)
    if bars.is_empty():
        return pl.DataFrame(schema={"symbol": pl.String, "close": pl.Float64})
    bad = _untrusted(warehouse, first, session)
    good = bars.join(bad, on=["session", "symbol"], how="anti")
    return good.sort("session").group_by("symbol", maintain_order=True).last().select("symbol", "close").sort("symbol")


def clean_returns_history(warehouse: Warehouse, session: date, lookback: int) -> pl.DataFrame:
    """Daily adjusted-close returns (session, symbol, return) of the `lookback` sessions to
    `session`, where a quarantined bar's price is not believed: the adjusted close holds its
    last good value through it (a 0 return that day) and the move lands on the next good bar."""
    sessions = sessions_back(session, lookback + 1)
    bars = market_store.read_bars_through(warehouse, session, sessions[0])
    if bars.is_empty():
        return pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "return": pl.Float64})
    returns = believed_returns(bars, _untrusted(warehouse, sessions[0], session))
    return returns.filter(pl.col("session") > sessions[0])
