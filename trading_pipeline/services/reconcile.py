"""Bring the ledger up to date from the broker, then list every difference as a break."""

from __future__ import annotations

from dataclasses import dataclass
import math
from datetime import UTC, date, timedelta

import polars as pl

from trading_pipeline.brokers.base import Broker
from trading_pipeline.domain import reconciliation as rec
from trading_pipeline.domain.calendar import session_close
from trading_pipeline.domain.market.plausibility import SPLIT_RATIOS
from trading_pipeline.domain.orders import AccountSnapshot, PositionReport
from trading_pipeline.storage import adoption_store, market_store
from trading_pipeline.storage.ledger import Ledger

# How far back to ask for fills: comfortably longer than any gap between runs.
FILL_LOOKBACK = timedelta(days=30)
# An adjustment event whose ratio is this close (in log) to a split ratio is a split; anything
# else (a dividend's 1.00x) leaves quantities alone.
SPLIT_RATIO_TOLERANCE = 0.02


@dataclass(frozen=True)
class Reconciliation:
    session: date
    breaks: pl.DataFrame
    positions: list[PositionReport]
    account: AccountSnapshot
    new_fills: int
    read_only: bool = False  # reported from the record: this run reconciled nothing

    @property
    def break_count(self) -> int:
        return self.breaks.height


def reconcile(broker: Broker, ledger: Ledger, session: date) -> Reconciliation:
    ours = ledger.order_ids(broker.name)
    # Measured from the session, not the wall clock, so replays of past sessions work too.
    broker_fills = broker.fills(since=session_close(session) - FILL_LOOKBACK)
    opening = adoption_store.opening_state(ledger.warehouse, broker.name)  # None: the account began flat
    if opening is not None:  # fills from before the adoption are in its positions already
        broker_fills = [f for f in broker_fills if f.fill_id not in opening.fill_ids]
    new_fills = ledger.record_fills(broker_fills, broker.name, session)

    open_in_ledger = ledger.open_orders(broker.name)
    statuses = {}
    for cid in open_in_ledger["client_order_id"].to_list():
        report = broker.order_status(cid)
        statuses[cid] = report
        if report is not None:
            ledger.record_status(report)
    filled = ledger.filled_quantity_by_order(broker.name)
    broker_open = broker.open_orders()
    breaks = rec.foreign_fills(broker_fills, ours)
    breaks += rec.order_breaks(
        dict(zip(open_in_ledger["client_order_id"], open_in_ledger["symbol"])),
        statuses, filled, broker_open, ours,
    )
    missed = {b.symbol for b in breaks if b.kind is rec.BreakKind.MISSED_FILL}
    positions = broker.positions()
    breaks += rec.position_breaks(_expected_positions(ledger, broker.name, opening), positions, missed)
    breaks += rec.unknown_state_breaks(ledger.orders_in_unknown_state(broker.name))

    account = broker.account()
    ledger.snapshot_session(session, broker.name, positions, account)
    return Reconciliation(session, rec.breaks_frame(breaks), positions, account, new_fills)


def _expected_positions(ledger: Ledger, account: str, opening) -> dict[str, float]:
    """The ledger's fills, on top of the adopted opening positions for an adopted account, each
    times the splits that came after it (the broker reports the split quantity)."""
    fills = ledger.fills(account)
    splits = _splits(ledger)
    if fills.height and splits:
        factor = pl.lit(1.0)
        for symbol, ex_date, _, ratio in splits:  # a fill recorded before the ex-date's run was split since
            factor = factor * pl.when((pl.col("symbol") == symbol) & (pl.col("recorded_session") < ex_date)) \
                .then(ratio).otherwise(1.0)
        fills = fills.with_columns(pl.col("quantity") * factor)
    if opening is None:
        return rec.expected_positions(fills)
    adopted_at = adoption_store.adoption(ledger.warehouse, account)["adopted_at"]
    expected = dict(opening.positions)
    for symbol, _, seen_at, ratio in splits:  # seen after the adoption: the adopted quantity was split since
        if symbol in expected and seen_at > adopted_at:
            expected[symbol] *= ratio
    after = fills.filter(~fills["fill_id"].is_in(list(opening.fill_ids))) if fills.height else fills
    for symbol, quantity in rec.expected_positions(after).items():
        expected[symbol] = expected.get(symbol, 0.0) + quantity
    return expected


def _splits(ledger: Ledger) -> list[tuple[str, date, object, float]]:
    """(symbol, ex-date, when it was seen (naive UTC), ratio) of every split the market data
    recorded (adjustment_events; a daily sync sees a split on its ex-date's run)."""
    events = market_store.adjustment_events(ledger.warehouse)
    found = []
    for symbol, detected, seen_at, ratio in events.select("symbol", "session_detected", "recorded_at",
                                                          "ratio").iter_rows():
        fit = [r for base in SPLIT_RATIOS for r in (base, 1 / base)
               if ratio > 0 and abs(math.log(ratio / r)) <= SPLIT_RATIO_TOLERANCE]
        if fit:
            found.append((symbol, detected, seen_at.astimezone(UTC).replace(tzinfo=None) if seen_at.tzinfo else seen_at, fit[0]))
    return found
