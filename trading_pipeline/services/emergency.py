"""Emergency stop: cancel every open order at the broker, optionally close every position.

Cancels only reduce risk and are always allowed. Closing positions sends market orders, so it
is no side door around the safety model: in live it needs the human key
(TRADING_LIVE_ENABLED=true), dry-run off, and a confirmation naming the account in the job's
config. Without them every closing order is still decided and recorded as `not_sent` with the
reason, and a later confirmed run sends it once.

The account is used as it is now: the paper simulator's clock is never moved here (a clock
moved to today would value the next backfilled session at today's prices).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

from trading_pipeline.brokers.base import Broker, OrderStateUnknown
from trading_pipeline.domain.calendar import latest_completed_session
from trading_pipeline.domain.orders import (
    QUANTITY_EPSILON,
    OrderIntent,
    OrderPurpose,
    OrderStatusReport,
    Side,
    make_client_order_id,
)
from trading_pipeline.domain.session_plan import order_id_key
from trading_pipeline.storage.ledger import Ledger

STRATEGY = "emergency"  # the ledger's strategy for closing orders an emergency stop sends


def confirmation_phrase(account: str) -> str:
    """What `confirm_live_flatten` must say to close a live account's positions."""
    return f"FLATTEN {account}"


@dataclass(frozen=True, slots=True)
class FlattenKeys:
    trading_env: str  # local | paper | live
    live_enabled: bool  # TRADING_LIVE_ENABLED
    dry_run: bool
    confirmation: str  # the job config's confirm_live_flatten
    account: str  # the broker's ledger name, e.g. "alpaca-live"


def flatten_refusals(keys: FlattenKeys) -> tuple[str, ...]:
    """Every reason not to send closing orders; none means they may go. The kill switch and
    a promotion are not keys here: closing positions only reduces risk."""
    reasons: list[str] = []
    if keys.dry_run:
        reasons.append("dry-run is on (TRADING_DRY_RUN=false to send)")
    if keys.trading_env == "live":
        if not keys.live_enabled:
            reasons.append("live trading is not enabled (TRADING_LIVE_ENABLED=true)")
        if keys.confirmation.strip() != confirmation_phrase(keys.account):
            reasons.append(f'a live flatten needs confirm_live_flatten: "{confirmation_phrase(keys.account)}" '
                           "in the job's config")
    elif keys.trading_env not in ("local", "paper"):
        reasons.append(f"unknown TRADING_ENV {keys.trading_env!r}")
    return tuple(reasons)


def account_session(broker: Broker) -> date:
    """The session the account is at: the paper simulator's clock, or for a real venue the
    latest completed session."""
    clock = getattr(broker, "clock", None)  # only the simulator keeps a clock
    return clock if isinstance(clock, date) else latest_completed_session()


@dataclass
class EmergencyStopResult:
    session: date
    canceled: list[str] = field(default_factory=list)  # client order ids
    sent: list[str] = field(default_factory=list)  # symbols sent to close
    already_working: list[str] = field(default_factory=list)  # closing orders sent by an earlier stop
    held_back: dict[str, str] = field(default_factory=dict)  # symbol -> why not sent
    unknown: dict[str, str] = field(default_factory=dict)  # symbol -> the venue could not say
    refusals: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        parts = [f"{len(self.canceled)} open orders canceled"]
        if self.sent or self.already_working or self.held_back:
            parts.append(f"{len(self.sent)} positions sent to close")
        if self.already_working:
            parts.append(f"{len(self.already_working)} closing orders already working")
        if self.held_back:
            parts.append(f"nothing sent to close positions in {', '.join(sorted(self.held_back))}: "
                         + "; ".join(sorted(set(self.held_back.values()))))
        if self.unknown:
            parts.append(f"closing orders in an unknown state at the venue (check by hand): "
                         f"{', '.join(sorted(self.unknown))}")
        return ", ".join(parts)


def emergency_stop(broker: Broker, ledger: Ledger, *, flatten: bool, keys: FlattenKeys) -> EmergencyStopResult:
    result = EmergencyStopResult(session=account_session(broker))
    # Cancel at the broker first and record afterwards: a daily run writing the warehouse must
    # not hold the cancels back. An earlier stop's closing orders stay: they only reduce risk,
    # and cancelling them would leave the positions open.
    reports = [broker.cancel(order.client_order_id) for order in broker.open_orders()
               if not _is_closing_order(order, result.session, broker.name)]
    for report in reports:
        if ledger.order(report.client_order_id) is not None:
            ledger.record_status(report)
        result.canceled.append(report.client_order_id)
    if flatten:
        result.refusals = flatten_refusals(keys)
        for position in broker.positions():
            if abs(position.quantity) > QUANTITY_EPSILON:
                _close(broker, ledger, position.symbol, position.quantity, result)
    return result


_ATTEMPTS_RECOGNISED = 20  # closing orders per symbol and session an emergency stop leaves working


def _is_closing_order(order: OrderStatusReport, session: date, account: str) -> bool:
    """Whether the order is one of this session's emergency closing orders, from its id alone."""
    return any(order.client_order_id
               == _closing_intent(order.symbol, order.side, 1.0, session, attempt, account).client_order_id
               for attempt in range(1, _ATTEMPTS_RECOGNISED + 1))


FINISHED = frozenset({"filled", "canceled", "expired", "rejected"})  # an order that can do no more


def _close(broker: Broker, ledger: Ledger, symbol: str, quantity: float, result: EmergencyStopResult) -> None:
    side = Side.SELL if quantity > 0 else Side.BUY
    for attempt in itertools.count(1):
        intent = _closing_intent(symbol, side, abs(quantity), result.session, attempt, broker.name)
        recorded = ledger.order(intent.client_order_id)
        # A closing order that is over (cancelled at the broker, rejected) while the position is
        # still open: the next attempt gets an id of its own, so it is neither lost nor doubled.
        if recorded is None or recorded["status"] not in FINISHED:
            break
    status = recorded["status"] if recorded else None
    if status in ("new", "partially_filled"):
        result.already_working.append(symbol)
        return
    if status == "unknown":
        result.unknown[symbol] = "an earlier closing order is in an unknown state at the venue"
        return
    if result.refusals:
        reason = "; ".join(result.refusals)
        if recorded is None:
            ledger.record_intent(intent, broker.name, dry_run=True, status="not_sent", reason=reason)
        result.held_back[symbol] = reason
        return
    if recorded is None:
        ledger.record_intent(intent, broker.name, dry_run=False, status="submitting")
    elif status == "not_sent":
        if abs(recorded["quantity"] - intent.quantity) > QUANTITY_EPSILON:
            result.held_back[symbol] = (
                f"a closing order for {recorded['quantity']:g} shares was held back earlier this session "
                f"and the position is now {intent.quantity:g}: close {symbol} at the broker by hand")
            return
        ledger.mark_submitting(intent.client_order_id)  # held back earlier, confirmed now
    # else `submitting`: recorded, then a crash before the answer; `submit` is idempotent by id
    try:
        ledger.record_status(broker.submit(intent))
    except OrderStateUnknown as unknown:
        # never re-sent on this: the intent stays `submitting` for reconciliation to raise
        result.unknown[symbol] = str(unknown)
        return
    result.sent.append(symbol)


def _closing_intent(symbol: str, side: Side, quantity: float, session: date, attempt: int,
                    account: str) -> OrderIntent:
    # the first attempt keeps the id an emergency flatten always had; a broker account's ids
    # include it, so paper's closing order is never taken for live's in the one ledger
    strategy = order_id_key(STRATEGY, account)
    key = strategy if attempt == 1 else f"{strategy}#{attempt}"
    return OrderIntent(
        client_order_id=make_client_order_id(key, session, symbol, side, OrderPurpose.FLATTEN),
        symbol=symbol, side=side, quantity=quantity, session=session, strategy=STRATEGY,
        purpose=OrderPurpose.FLATTEN,
    )
