"""The IBKR side of the fault soak: the real adapter through ib_insync against the fake TWS,
with the faults TWS is known for (see the fake's knobs in brokers/fakes/tws/server.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
from trading_pipeline_tests.benchmarks.soak.runner import VenueExecution, VenueOrder, VenueTruth
from trading_pipeline_tests.brokers.fakes.tws import FakeTws

_NEW_YORK = ZoneInfo("America/New_York")
_STATUS = {"Filled": "filled", "Cancelled": "canceled", "ApiCancelled": "canceled",
           "Inactive": "rejected"}

TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # TWS keeps the order, its answer is lost
DISCONNECT_MID_BATCH = "disconnect_mid_batch"  # the socket breaks right after an order's ack
INFORMATIONAL_CODE = "informational_10349"  # ib_insync cancels its copy, TWS keeps the order
REJECTION = "rejection"  # a genuine refusal (error 201, then Inactive)
CORRECTION = "execution_correction"  # an execution comes again as ".02" with another price
LATE_COMMISSION = "late_commission"  # commission reports come after the first reconcile
OUTAGE_ANNOUNCED = "outage_1100"  # 1100 before the send, 1102 later; held orders transmitted
OUTAGE_SILENT = "outage_unannounced"  # the order goes into an outage TWS reports afterwards


class IbkrSoakHarness:
    venue = "ibkr"
    symbols = ("AAA", "BBB", "CCC", "DDD", "EEE")
    fault_kinds = (TIMEOUT_AFTER_ACCEPT, DISCONNECT_MID_BATCH, INFORMATIONAL_CODE, REJECTION,
                   CORRECTION, LATE_COMMISSION, OUTAGE_ANNOUNCED, OUTAGE_SILENT)

    def __init__(self, fake: FakeTws, rng: random.Random):
        self.fake, self.rng = fake, rng
        self._corrections_due = False
        self._client_ids = iter(range(100, 10_000_000))

    def open_broker(self) -> IbkrBroker:
        # a new process is a new API client; TWS frees the old id only when it notices
        config = IbkrConfig(port=self.fake.port, client_id=next(self._client_ids),
                            connect_timeout=3, request_timeout=0.3, max_attempts=2,
                            retry_base_delay=0.0, mode="paper")
        return IbkrBroker(config, sleep=lambda _s: None)

    def arm(self, fault: str, rng: random.Random) -> None:
        fake = self.fake
        if fault == TIMEOUT_AFTER_ACCEPT:
            fake.swallow_next_order()
        elif fault == DISCONNECT_MID_BATCH:
            fake.drop_after_next_order()
        elif fault == INFORMATIONAL_CODE:
            fake.warn_next_order(10349, "Order TIF was set to DAY based on order preset.")
        elif fault == REJECTION:
            fake.reject_next_order("insufficient buying power")
        elif fault == CORRECTION:
            self._corrections_due = True
        elif fault == LATE_COMMISSION:
            fake.delay_commissions = True
        elif fault == OUTAGE_ANNOUNCED:
            fake.start_outage()
        elif fault == OUTAGE_SILENT:
            fake.start_outage(announce=False)

    def after_failure(self, fault: str, error: BaseException, rng: random.Random) -> None:
        if self.fake.in_outage:
            # IB comes back; an order caught inside TWS is transmitted, or lost for good
            self.fake.end_outage(transmit_held=rng.random() < 0.5, data_lost=rng.random() < 0.3)

    def settle(self, rng: random.Random) -> None:
        """Most working orders fill at the open (some in two executions), some stay working."""
        with self.fake._lock:
            working = [o for o in self.fake.state.orders if o.is_open]
        for order in working:
            if rng.random() < 0.2:
                continue
            price = round(100.0 * (1 + rng.uniform(-0.02, 0.02)), 2)
            if order.quantity > 1 and rng.random() < 0.3:
                self.fake.fill_order(order.order_ref, price, quantity=order.quantity // 2)
            self.fake.fill_order(order.order_ref, price)

    def late_events(self, rng: random.Random) -> None:
        if self._corrections_due:
            self._corrections_due = False
            with self.fake._lock:
                refs = sorted({e.order.order_ref for e in self.fake.state.executions})
            for ref in rng.sample(refs, k=min(2, len(refs))):
                self.fake.correct_execution(ref, round(100.0 * (1 + rng.uniform(-0.02, 0.02)), 2))
        if self.fake.delay_commissions:
            self.fake.release_commissions()
            self.fake.delay_commissions = False

    def end_of_day(self, today: date) -> None:
        if self.fake.in_outage:
            self.fake.end_outage(transmit_held=self.rng.random() < 0.5)
        self.fake.roll_day(datetime.combine(today, time(18, 30), _NEW_YORK))

    def truth(self) -> VenueTruth:
        state = self.fake.state
        with self.fake._lock:
            orders = [
                VenueOrder(o.order_ref, str(o.perm_id),
                           "open" if o.is_open else _STATUS.get(o.status, o.status.lower()),
                           o.filled)
                for o in state.forgotten_orders + state.orders
            ]
            latest: dict[str, object] = {}
            for e in state.forgotten_executions + state.executions:
                if e.base_id not in latest or e.revision > latest[e.base_id].revision:
                    latest[e.base_id] = e
            executions = [VenueExecution(e.base_id, e.order.order_ref, e.shares, e.price,
                                         e.commission) for e in latest.values()]
        return VenueTruth(orders, executions)


@contextmanager
def open_harness(rng: random.Random) -> Iterator[IbkrSoakHarness]:
    fake = FakeTws(prices={s: 100.0 for s in IbkrSoakHarness.symbols}).start()
    try:
        yield IbkrSoakHarness(fake, rng)
    finally:
        fake.stop()
