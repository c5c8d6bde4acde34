"""The one protocol every broker adapter implements, the paper simulator included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatusReport,
    PositionReport,
)


class BrokerError(RuntimeError):
    """A broker call failed. Messages never contain credentials."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer within the bounded time and retries."""


class OrderNotFound(BrokerError):
    """The broker does not know this client order id."""


class OrderStateUnknown(BrokerError):
    """The venue cannot say whether an order with this client order id exists (it keeps no
    record old enough, or the connection dropped between send and answer). Never re-send on
    this: the caller marks the intent `unknown`, stops sending for that symbol and raises a
    reconciliation break for a person to decide."""


@dataclass(frozen=True, slots=True)
class UnreadableItem:
    """One item of a venue's answer the adapter could not understand (an asset class or an
    order state it does not know, a multi-leg order...). The rest of the answer is still
    used; adapters list these in `unreadable_items` for reconciliation to raise as breaks."""

    kind: str  # "position", "order", "fill"
    key: str  # what names it at the venue: a symbol, an order id
    reason: str


def account_key(venue: str, mode: str | None = None) -> str:
    """The name an account's rows carry in the ledger. A venue with a paper and a live account
    names both ("alpaca-paper", "alpaca-live"): one warehouse keeps the paper track record and
    the live ledger apart, so going live never reconciles the live account against paper fills."""
    return f"{venue}-{mode}" if mode else venue


@runtime_checkable
class Broker(Protocol):
    """What the daily loop needs from a venue.

    `submit` is idempotent by `client_order_id`: when the broker already has an order with
    that id, it returns that order's status and sends nothing. A rejection is an answer
    (status REJECTED with a reason), not an exception; an unreachable broker raises
    `BrokerUnavailable` after bounded retries.
    """

    name: str  # the account's key in the ledger: see `account_key`

    def submit(self, intent: OrderIntent) -> OrderStatusReport: ...

    def cancel(self, client_order_id: str) -> OrderStatusReport: ...

    def order_status(self, client_order_id: str) -> OrderStatusReport | None: ...

    def open_orders(self) -> list[OrderStatusReport]: ...

    def fills(self, since: datetime) -> list[FillReport]: ...

    def positions(self) -> list[PositionReport]: ...

    def account(self) -> AccountSnapshot: ...

    def close(self) -> None: ...
