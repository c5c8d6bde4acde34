"""Compare what the ledger expects with what the broker reports; name every difference.

Small pure functions (after NautilusTrader's `live/reconciliation.py`): the caller gathers
the facts from the ledger and the broker, these functions only judge them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from trading_pipeline.domain.orders import FillReport, OrderStatusReport, PositionReport

QUANTITY_TOLERANCE = 1e-6


class BreakKind(StrEnum):
    POSITION_MISMATCH = "position_mismatch"
    MISSED_FILL = "missed_fill"
    UNKNOWN_ORDER = "unknown_order"  # the ledger has it open, the broker does not know it
    FOREIGN_ORDER = "foreign_order"  # open at the broker, never sent by this pipeline
    FOREIGN_FILL = "foreign_fill"  # a fill for an order this pipeline never sent
    STATE_UNKNOWN = "state_unknown"  # the venue cannot say whether our order exists


class LikelyCause(StrEnum):
    FILL_WE_MISSED = "a fill we missed"
    MANUAL_TRADE = "a trade made by hand at the broker"
    ORDER_LOST_BY_BROKER = "an order the broker does not know"
    QUANTITY_MISMATCH = "a quantity mismatch"
    VENUE_CANNOT_SAY = "the venue cannot say whether the order reached it"


@dataclass(frozen=True, slots=True)
class Break:
    kind: BreakKind
    likely_cause: LikelyCause
    symbol: str
    detail: str
    client_order_id: str | None = None
    ledger_quantity: float | None = None
    broker_quantity: float | None = None


BREAK_SCHEMA = {
    "kind": pl.String,
    "likely_cause": pl.String,
    "symbol": pl.String,
    "client_order_id": pl.String,
    "ledger_quantity": pl.Float64,
    "broker_quantity": pl.Float64,
    "detail": pl.String,
}


def breaks_frame(breaks: Iterable[Break]) -> pl.DataFrame:
    rows = [
        {
            "kind": str(b.kind),
            "likely_cause": str(b.likely_cause),
            "symbol": b.symbol,
            "client_order_id": b.client_order_id,
            "ledger_quantity": b.ledger_quantity,
            "broker_quantity": b.broker_quantity,
            "detail": b.detail,
        }
        for b in breaks
    ]
    return pl.DataFrame(rows, schema=BREAK_SCHEMA)


def foreign_fills(fills: Iterable[FillReport], our_order_ids: set[str]) -> list[Break]:
    return [
        Break(
            BreakKind.FOREIGN_FILL,
            LikelyCause.MANUAL_TRADE,
            f.symbol,
            f"fill {f.fill_id} ({f.side} {f.quantity:g} @ {f.price:g}) belongs to no order of ours",
            client_order_id=f.client_order_id,
            broker_quantity=f.signed_quantity,
        )
        for f in fills
        if f.client_order_id not in our_order_ids
    ]


def order_breaks(
    ledger_open: Mapping[str, str],
    broker_status: Mapping[str, OrderStatusReport | None],
    ledger_filled: Mapping[str, float],
    broker_open: Iterable[OrderStatusReport],
    our_order_ids: set[str],
) -> list[Break]:
    """Orders the two sides disagree on.

    `ledger_open`: client id -> symbol of orders the ledger believes were sent and not done.
    `broker_status`: client id -> the broker's report (None: unknown there), for those ids and
    any others worth checking. `ledger_filled`: client id -> quantity the ledger has fills for.
    """
    found: list[Break] = []
    for cid, symbol in sorted(ledger_open.items()):
        if broker_status.get(cid) is None:
            found.append(
                Break(BreakKind.UNKNOWN_ORDER, LikelyCause.ORDER_LOST_BY_BROKER, symbol,
                      f"order {cid} is open in the ledger but the broker does not know it",
                      client_order_id=cid)
            )
    for cid, report in sorted(broker_status.items()):
        if report is None:
            continue
        have = ledger_filled.get(cid, 0.0)
        if report.filled_quantity - have > QUANTITY_TOLERANCE:
            found.append(
                Break(BreakKind.MISSED_FILL, LikelyCause.FILL_WE_MISSED, report.symbol,
                      f"broker reports {report.filled_quantity:g} filled on {cid}, "
                      f"the ledger has fills for {have:g}",
                      client_order_id=cid, ledger_quantity=have,
                      broker_quantity=report.filled_quantity)
            )
    for report in broker_open:
        if report.client_order_id not in our_order_ids:
            found.append(
                Break(BreakKind.FOREIGN_ORDER, LikelyCause.MANUAL_TRADE, report.symbol,
                      f"open order {report.client_order_id} at the broker was not sent by this pipeline",
                      client_order_id=report.client_order_id,
                      broker_quantity=report.quantity)
            )
    return found


def position_breaks(
    expected: Mapping[str, float],
    broker_positions: Iterable[PositionReport],
    missed_fill_symbols: set[str] = frozenset(),
) -> list[Break]:
    """Symbols whose broker quantity differs from the ledger's expectation."""
    actual = {p.symbol: p.quantity for p in broker_positions}
    found: list[Break] = []
    for symbol in sorted(set(expected) | set(actual)):
        want, have = expected.get(symbol, 0.0), actual.get(symbol, 0.0)
        if abs(want - have) <= QUANTITY_TOLERANCE:
            continue
        if symbol in missed_fill_symbols:
            cause = LikelyCause.FILL_WE_MISSED
        elif abs(want) <= QUANTITY_TOLERANCE or abs(have) <= QUANTITY_TOLERANCE:
            cause = LikelyCause.MANUAL_TRADE
        else:
            cause = LikelyCause.QUANTITY_MISMATCH
        found.append(
            Break(BreakKind.POSITION_MISMATCH, cause, symbol,
                  f"ledger expects {want:g} {symbol}, broker holds {have:g}",
                  ledger_quantity=want, broker_quantity=have)
        )
    return found


def expected_positions(fills: pl.DataFrame) -> dict[str, float]:
    """Net quantity per symbol from ledger fills (side, symbol, quantity)."""
    if fills.is_empty():
        return {}
    signed = fills.with_columns(
        pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity")).alias("q")
    )
    totals = signed.group_by("symbol").agg(pl.col("q").sum())
    return {s: q for s, q in zip(totals["symbol"], totals["q"]) if abs(q) > QUANTITY_TOLERANCE}


def unknown_state_breaks(orders: Iterable[tuple[str, str, str | None]]) -> list[Break]:
    """One break per order the venue could not vouch for: (client_order_id, symbol, reason).
    Nothing more is sent in that symbol until a person has looked at the account."""
    return [
        Break(BreakKind.STATE_UNKNOWN, LikelyCause.VENUE_CANNOT_SAY, symbol,
              f"{client_order_id}: {reason or 'state unknown'}; check the account at the venue, "
              "then record what it shows (the order was not re-sent)", client_order_id=client_order_id)
        for client_order_id, symbol, reason in orders
    ]
