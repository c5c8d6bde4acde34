"""The contract every broker adapter passes: the simulator directly, the others through
their real SDKs against fake servers on 127.0.0.1.

A test module for an adapter subclasses `BrokerContract` and defines a `harness` fixture
returning an object with the `BrokerHarness` shape.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import pytest

from trading_pipeline.brokers.base import Broker, BrokerUnavailable
from trading_pipeline.domain.attached_stops import attached_stop_id
from trading_pipeline.domain.reconciliation import BreakKind, LikelyCause
from trading_pipeline.domain.safety import SubmissionDecision
from trading_pipeline.services.reconcile import reconcile
from trading_pipeline.services.submission import submit_intents
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)


class BrokerHarness(Protocol):
    broker: Broker

    def reference_price(self, symbol: str) -> float:
        """A price near where `symbol` trades now."""

    def settle(self) -> None:
        """Let the market move on so that working marketable orders fill
        (simulator: process the next session's bars; fakes: fill at the current price)."""

    def orders_at_broker(self, client_order_id: str) -> int:
        """How many orders the (fake) broker holds with this client order id."""

    def fail_next_submit_after_accept(self) -> None:
        """The next order the broker accepts gets no answer back to the client
        (a timeout after acceptance). Adapters that cannot time out may skip this."""

    def set_position_by_hand(self, symbol: str, quantity: float) -> None:
        """Change a position at the broker behind our back (a trade made by hand)."""

    def forget_order(self, client_order_id: str) -> None:
        """The broker loses every trace of this order."""


SYMBOL = "AAA"
SESSION = date(2024, 3, 1)
SEND = lambda intent: SubmissionDecision(send=True, reasons=())  # every key turned
LEDGERED = {"session": SESSION, "strategy": "contract"}  # what the ledger records with each intent


class FillFeedLosing:
    """The broker as seen through a fill feed that dropped every fill (IBKR, for one, keeps
    executions for a day only): orders and positions still tell the truth."""

    def __init__(self, broker: Broker):
        self._broker = broker
        self.name = broker.name

    def fills(self, since):
        return []

    def __getattr__(self, attribute):
        return getattr(self._broker, attribute)


def intent(cid: str, side: Side = Side.BUY, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol=SYMBOL, side=side, quantity=quantity, **kw)


class BrokerContract:
    """Behaviour the daily loop relies on, the same for every venue."""

    supports_timeout_injection = True

    def test_implements_protocol(self, harness):
        assert isinstance(harness.broker, Broker)

    def test_account_has_positive_equity(self, harness):
        account = harness.broker.account()
        assert account.equity > 0
        assert account.buying_power >= 0

    def test_market_order_fills_after_settle(self, harness):
        broker = harness.broker
        start = datetime.now(UTC) - timedelta(days=3650)
        report = broker.submit(intent("contract-mkt-1"))
        assert report.client_order_id == "contract-mkt-1"
        assert report.status in (OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
        harness.settle()
        status = broker.order_status("contract-mkt-1")
        assert status is not None and status.status is OrderStatus.FILLED
        assert status.filled_quantity == pytest.approx(10)
        fills = [f for f in broker.fills(since=start) if f.client_order_id == "contract-mkt-1"]
        assert sum(f.quantity for f in fills) == pytest.approx(10)
        assert all(f.price > 0 for f in fills)
        held = {p.symbol: p.quantity for p in broker.positions()}
        assert held.get(SYMBOL) == pytest.approx(10)

    def test_submit_is_idempotent_by_client_order_id(self, harness):
        first = harness.broker.submit(intent("contract-dup-1"))
        second = harness.broker.submit(intent("contract-dup-1"))
        assert harness.orders_at_broker("contract-dup-1") == 1
        assert first.client_order_id == second.client_order_id == "contract-dup-1"

    def test_retry_after_timeout_leaves_one_order(self, harness):
        if not self.supports_timeout_injection:
            pytest.skip("this venue has no way to lose an answer")
        harness.fail_next_submit_after_accept()
        try:
            harness.broker.submit(intent("contract-timeout-1"))
        except BrokerUnavailable:
            pass  # the answer was lost; the caller retries
        harness.broker.submit(intent("contract-timeout-1"))
        assert harness.orders_at_broker("contract-timeout-1") == 1

    def test_unknown_order_has_no_status(self, harness):
        assert harness.broker.order_status("contract-never-sent") is None

    def test_working_limit_order_is_open_then_canceled(self, harness):
        price = harness.reference_price(SYMBOL)
        far = round(price * 0.5, 2)
        harness.broker.submit(
            intent("contract-lmt-1", order_type=OrderType.LIMIT, limit_price=far,
                   time_in_force=TimeInForce.GTC)
        )
        open_ids = {o.client_order_id for o in harness.broker.open_orders()}
        assert "contract-lmt-1" in open_ids
        canceled = harness.broker.cancel("contract-lmt-1")
        assert canceled.status is OrderStatus.CANCELED
        assert "contract-lmt-1" not in {o.client_order_id for o in harness.broker.open_orders()}

    @pytest.mark.parametrize(
        "kind",
        ["limit", "stop", "stop_limit", "trailing_percent", "trailing_amount"],
    )
    def test_every_order_type_is_accepted(self, harness, kind):
        broker = harness.broker
        # hold shares first so protective sell stops are valid everywhere
        broker.submit(intent(f"contract-seed-{kind}", quantity=5))
        harness.settle()
        price = harness.reference_price(SYMBOL)
        below = round(price * 0.9, 2)
        kw = {
            "limit": dict(order_type=OrderType.LIMIT, limit_price=below),
            "stop": dict(order_type=OrderType.STOP, stop_price=below),
            "stop_limit": dict(order_type=OrderType.STOP_LIMIT, stop_price=below,
                               limit_price=round(below * 0.99, 2)),
            "trailing_percent": dict(order_type=OrderType.TRAILING_STOP, trail_percent=5.0),
            "trailing_amount": dict(order_type=OrderType.TRAILING_STOP,
                                    trail_amount=round(price * 0.05, 2)),
        }[kind]
        side = Side.BUY if kind == "limit" else Side.SELL
        report = broker.submit(
            intent(f"contract-type-{kind}", side=side, quantity=5,
                   time_in_force=TimeInForce.GTC, **kw)
        )
        assert report.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
        assert report.order_type is OrderType(kw["order_type"])
        assert broker.order_status(f"contract-type-{kind}") is not None

    def test_position_changed_by_hand_is_visible(self, harness):
        harness.set_position_by_hand("BBB", 7)
        held = {p.symbol: p.quantity for p in harness.broker.positions()}
        assert held.get("BBB") == pytest.approx(7)

    # -- a stop that goes with its entry (where the venue can hold one) -------------------

    def _entry_with_stop(self, harness, cid: str, **entry_kw):
        """The entry and its stop; None for a venue that cannot hold a stop for an entry
        (Robinhood: the stop follows at the next session), which must then not offer to."""
        if not getattr(harness.broker, "attaches_stops", False):
            assert not hasattr(harness.broker, "submit_with_stop"), \
                "a venue that does not declare attaches_stops must not take an entry with its stop"
            return None
        far = round(harness.reference_price(SYMBOL) * 0.5, 2)
        entry = intent(cid, quantity=10, **entry_kw)
        stop = intent(attached_stop_id(cid), side=Side.SELL, quantity=10, order_type=OrderType.STOP,
                      stop_price=far, time_in_force=TimeInForce.GTC)
        return entry, stop

    def test_the_stop_sent_with_an_entry_works_once_the_entry_fills(self, harness):
        broker = harness.broker
        if (pair := self._entry_with_stop(harness, "contract-oto-1")) is None:
            return
        entry, stop = pair
        entry_report, stop_report = broker.submit_with_stop(entry, stop)
        assert entry_report.client_order_id == entry.client_order_id
        assert stop_report.client_order_id == stop.client_order_id and stop_report.status is OrderStatus.NEW
        assert stop_report.broker_order_id not in (None, entry_report.broker_order_id)  # the leg's own id
        # listed under our id from the start (never an order we did not send)
        assert stop.client_order_id in {o.client_order_id for o in broker.open_orders()}
        harness.settle()
        assert broker.order_status(entry.client_order_id).status is OrderStatus.FILLED
        working = broker.order_status(stop.client_order_id)
        assert working.status is OrderStatus.NEW and working.order_type is OrderType.STOP
        assert {p.symbol: p.quantity for p in broker.positions()}.get(SYMBOL) == pytest.approx(10)
        again = broker.submit_with_stop(entry, stop)  # a re-run sends nothing twice
        assert [r.client_order_id for r in again] == [entry.client_order_id, stop.client_order_id]
        assert harness.orders_at_broker(entry.client_order_id) == 1
        assert broker.cancel(stop.client_order_id).status is OrderStatus.CANCELED

    def test_the_stop_of_an_entry_that_never_fills_goes_with_it(self, harness):
        broker = harness.broker
        far = round(harness.reference_price(SYMBOL) * 0.5, 2)
        if (pair := self._entry_with_stop(harness, "contract-oto-2", order_type=OrderType.LIMIT,
                                            limit_price=far, time_in_force=TimeInForce.DAY)) is None:
            return
        entry, stop = pair
        broker.submit_with_stop(entry, stop)
        broker.cancel(entry.client_order_id)
        harness.settle()
        assert broker.order_status(stop.client_order_id).status is OrderStatus.CANCELED
        assert SYMBOL not in {p.symbol for p in broker.positions()}


class ReconciliationContract:
    """Every difference between the ledger and the broker is a break with its likely cause."""

    @pytest.fixture
    def ledger(self, tmp_path):
        return Ledger(Warehouse(tmp_path / "ledger.duckdb"))

    def _breaks(self, broker, ledger):
        result = reconcile(broker, ledger, SESSION)
        return [(r["kind"], r["likely_cause"], r["symbol"], r["client_order_id"])
                for r in result.breaks.iter_rows(named=True)]

    def test_ledger_and_broker_agree_after_a_fill(self, harness, ledger):
        submit_intents([intent("recon-ok-1", quantity=3, **LEDGERED)], harness.broker, ledger, SEND)
        harness.settle()
        assert self._breaks(harness.broker, ledger) == []
        assert ledger.filled_quantity_by_order(harness.broker.name) == {"recon-ok-1": pytest.approx(3)}

    def test_position_changed_by_hand_is_a_manual_trade(self, harness, ledger):
        harness.set_position_by_hand("BBB", 7)
        breaks = self._breaks(harness.broker, ledger)
        assert (BreakKind.POSITION_MISMATCH, LikelyCause.MANUAL_TRADE, "BBB", None) in breaks

    def test_fill_the_ledger_missed(self, harness, ledger):
        submit_intents([intent("recon-miss-1", quantity=4, **LEDGERED)], harness.broker, ledger, SEND)
        harness.settle()
        breaks = self._breaks(FillFeedLosing(harness.broker), ledger)
        assert (BreakKind.MISSED_FILL, LikelyCause.FILL_WE_MISSED, SYMBOL, "recon-miss-1") in breaks
        assert (BreakKind.POSITION_MISMATCH, LikelyCause.FILL_WE_MISSED, SYMBOL, None) in breaks

    def test_order_the_broker_lost(self, harness, ledger):
        far = round(harness.reference_price(SYMBOL) * 0.5, 2)
        lost = intent("recon-lost-1", order_type=OrderType.LIMIT, limit_price=far,
                      time_in_force=TimeInForce.GTC, **LEDGERED)
        submit_intents([lost], harness.broker, ledger, SEND)
        harness.forget_order("recon-lost-1")
        breaks = self._breaks(harness.broker, ledger)
        assert (BreakKind.UNKNOWN_ORDER, LikelyCause.ORDER_LOST_BY_BROKER, SYMBOL, "recon-lost-1") in breaks
