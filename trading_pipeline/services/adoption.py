"""Adopt an account that already holds positions: the broker's positions, cash and open orders
become the ledger's opening state for that account, once, with who, when and why.

Without it the first reconciliation of an account that is not flat would call every position a
break (the ledger expects nothing). Adoption is a one-time opening, never a way to explain a
later difference away: an account the ledger already trades is refused, and its breaks stay.
Orders found open are followed by the ledger and left alone (or cancelled when the operator
asks); every adopted long without a working stop gets one from the strategy's stop policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import polars as pl

from trading_pipeline.brokers.base import Broker, BrokerError, OrderStateUnknown
from trading_pipeline.domain.calendar import latest_completed_session, session_close
from trading_pipeline.domain.orders import (
    QUANTITY_EPSILON,
    OrderStatusReport,
    PositionReport,
)
from trading_pipeline.domain.risk.stops import StopPolicy, plan_stops, working_stops_from
from trading_pipeline.domain.safety import SubmissionKeys, may_submit
from trading_pipeline.services.reconcile import FILL_LOOKBACK
from trading_pipeline.storage import adoption_store
from trading_pipeline.storage.adoption_store import AdoptedOrder
from trading_pipeline.storage.ledger import NOT_SENT, SUBMITTING, Ledger

LEFT_ALONE = "left alone"
CANCELED = "canceled"


class AccountNotAdopted(RuntimeError):
    """The account holds positions or orders the ledger never recorded and was never adopted."""


class AdoptionRefused(ValueError):
    """Adoption is not possible for this account (adopted already, traded already, bad form)."""


def require_adopted(ledger: Ledger, account: str, positions: Sequence[PositionReport],
                    open_orders: Sequence[OrderStatusReport]) -> None:
    """Refuse to trade an account that holds what the ledger never recorded, until it is
    adopted. An account the ledger has traded, or one that starts flat, passes."""
    if not positions and not open_orders:
        return
    warehouse = ledger.warehouse
    if adoption_store.is_adopted(warehouse, account) or adoption_store.ledger_has_traded(warehouse, account):
        return
    held = ", ".join(f"{p.symbol} {p.quantity:g}" for p in positions[:10])
    more = f" and {len(positions) - 10} more" if len(positions) > 10 else ""
    raise AccountNotAdopted(
        f"account {account!r} already holds {len(positions)} positions ({held}{more}) and "
        f"{len(open_orders)} open orders that this pipeline never placed: nothing is traded until "
        "the account is adopted. Run adoption_job once (config: operator, reason; "
        "cancel_foreign_orders to cancel the open orders) to record them as the account's opening "
        "state; see the README, 'Run it on your paper account'")


@dataclass(frozen=True)
class AdoptionResult:
    account: str
    session: date
    cash: float
    equity: float
    positions: pl.DataFrame  # symbol, quantity, avg_entry_price, market_price
    orders: pl.DataFrame  # the orders found open, with what was done to them
    stops: pl.DataFrame  # symbol, client_order_id, quantity, stop_price, status, reason
    notes: tuple[str, ...]


def adoption_session(account_at: datetime | None) -> date:
    """The account's latest closed session: as of the account's own time where it has one
    (the paper simulator's clock), else as of now."""
    return latest_completed_session(account_at) if account_at is not None else latest_completed_session()


def adopt_account(ledger: Ledger, broker: Broker, *, strategy: str, stop_policy: StopPolicy,
                  keys: SubmissionKeys, operator: str, reason: str, cancel_foreign_orders: bool = False,
                  run_id: str | None = None) -> AdoptionResult:
    """Record `broker`'s account as it is now as the ledger's opening state, then protect
    adopted longs that have no working stop. `keys` decide whether those stops are sent (in
    live, every key; otherwise they are recorded `not_sent` with why and the next daily plan
    places them)."""
    account = broker.name
    _check_form(operator, reason)
    warehouse = ledger.warehouse
    earlier = adoption_store.adoption(warehouse, account)
    if earlier is not None:
        raise AdoptionRefused(
            f"account {account!r} was adopted already, on {earlier['adopted_at']:%Y-%m-%d %H:%M} UTC by "
            f"{earlier['operator']} ({earlier['reason']}): adoption is a one-time opening. A difference "
            "found since is a reconciliation break: check the account at the broker and resolve it there")
    if adoption_store.ledger_has_traded(warehouse, account):
        raise AdoptionRefused(
            f"the ledger already trades account {account!r}: adoption is only for an account the ledger "
            "has never traded. A difference between the ledger and the broker stays a reconciliation "
            "break (see reconciled_positions): check the account at the broker and resolve it there")

    snapshot = broker.account()
    session = adoption_session(snapshot.at)
    positions = broker.positions()
    found_open = broker.open_orders()
    # Fills the broker still reports are in the positions already: known, never counted again.
    fills = broker.fills(since=session_close(session) - FILL_LOOKBACK)
    orders = [_handle_open_order(broker, order, cancel_foreign_orders) for order in found_open]
    if cancel_foreign_orders:
        snapshot = broker.account()  # cancelled buys free buying power
    notes = _notes(positions, orders)
    adoption_store.record_adoption(
        warehouse, account, session=session, operator=operator.strip(), reason=reason.strip(), run_id=run_id,
        snapshot=snapshot, positions=positions, orders=orders, fills=fills,
        cancel_foreign_orders=cancel_foreign_orders, notes=notes)

    still_open = [o.report for o in orders if o.report.status.is_open]
    stops = _protect_longs(ledger, broker, session, strategy, stop_policy, keys, positions, still_open)
    return AdoptionResult(
        account=account, session=session, cash=snapshot.cash, equity=snapshot.equity,
        positions=adoption_store.adopted_positions(warehouse, account),
        orders=adoption_store.adopted_orders(warehouse, account),
        stops=stops, notes=notes)


def _check_form(operator: str, reason: str) -> None:
    missing = [name for name, value in (("operator", operator), ("reason", reason)) if not value.strip()]
    if missing:
        raise AdoptionRefused(f"adoption needs {' and '.join(missing)}: say who adopts the account and why "
                              "(both are recorded with what was imported)")


def _handle_open_order(broker: Broker, order: OrderStatusReport, cancel: bool) -> AdoptedOrder:
    if not cancel:
        return AdoptedOrder(order, LEFT_ALONE)
    return AdoptedOrder(broker.cancel(order.client_order_id), CANCELED)


def _notes(positions: Sequence[PositionReport], orders: Sequence[AdoptedOrder]) -> tuple[str, ...]:
    notes = [f"adopted {p.symbol}: {p.quantity:g} @ {p.avg_entry_price:g}" for p in positions]
    for adopted in orders:
        o = adopted.report
        notes.append(f"order {o.client_order_id} ({o.side} {o.quantity:g} {o.symbol} {o.order_type}) was not "
                     f"placed by this pipeline: {adopted.action}")
    return tuple(notes)


STOP_COLUMNS = {"symbol": pl.String, "client_order_id": pl.String, "quantity": pl.Float64,
                "stop_price": pl.Float64, "status": pl.String, "reason": pl.String}


def _protect_longs(ledger: Ledger, broker: Broker, session: date, strategy: str, policy: StopPolicy,
                   keys: SubmissionKeys, positions: Sequence[PositionReport],
                   open_orders: Sequence[OrderStatusReport]) -> pl.DataFrame:
    """One stop per adopted long with no stop working (a working stop, ours or not, is left as it is)."""
    protected = {stop.symbol for stop in working_stops_from(open_orders)}
    longs = {p.symbol: p.quantity for p in positions
             if p.quantity > QUANTITY_EPSILON and p.symbol not in protected}
    entries = {p.symbol: p.avg_entry_price for p in positions}
    # Salted ids: never the ids the daily plan of the same session gives its own stops.
    plan = plan_stops(session, f"{strategy}#adopted", longs, entries, [], policy)
    decision = may_submit(keys, reduces_exposure=True)
    rows = []
    for intent in plan.place:
        intent = replace(intent, strategy=strategy)
        if not decision.send:
            ledger.record_intent(intent, broker.name, dry_run=True, status=NOT_SENT,
                                 reason=f"adoption stop held: {decision.explanation}")
            rows.append(_stop_row(intent, NOT_SENT, decision.explanation))
            continue
        ledger.record_intent(intent, broker.name, dry_run=False, status=SUBMITTING)
        try:
            report = broker.submit(intent)
        except OrderStateUnknown as unknown:
            ledger.mark_unknown(intent.client_order_id, str(unknown))
            rows.append(_stop_row(intent, "unknown", str(unknown)))
            continue
        except BrokerError as error:  # the adoption stands; the next daily plan places the stop
            ledger.hold(intent.client_order_id, f"not placed at adoption: {error}")
            rows.append(_stop_row(intent, NOT_SENT, str(error)))
            continue
        ledger.record_status(report)
        rows.append(_stop_row(intent, str(report.status), report.reason))
    return pl.DataFrame(rows, schema=STOP_COLUMNS)


def _stop_row(intent, status: str, reason: str | None) -> dict:
    return {"symbol": intent.symbol, "client_order_id": intent.client_order_id, "quantity": intent.quantity,
            "stop_price": intent.stop_price, "status": status, "reason": reason}
