"""The Robinhood side of the fault soak: the real adapter through robin_stocks against the fake
Robinhood, with the faults its private API shows (see brokers/fakes/robinhood/server.py).
Rate limits and retry back-off run on a virtual clock, so the soak waits only for real timeouts."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from trading_pipeline.brokers.robinhood.translate import ref_id_for
from trading_pipeline_tests.benchmarks.soak.runner import VenueExecution, VenueOrder, VenueTruth
from trading_pipeline_tests.brokers.fakes.robinhood import RobinhoodRig

TIMEOUT = 0.2  # seconds; a slow answer comes after 2x this

TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # booked, answered after the client gave up
DISCONNECT_AFTER_ACCEPT = "disconnect_after_accept"  # booked, then the connection drops
BURST_429 = "burst_429"  # throttled on the next few order posts
OUTAGE = "outage_503"  # every request answers 503 for a while (logins included)
SESSION_EXPIRED = "session_expired"  # the access token is revoked: 401, log in again
LOOKUP_500_AFTER_LOST_ANSWER = "lost_answer_then_500"  # the search for a booked order fails too

_STATUS = {"filled": "filled", "cancelled": "canceled", "rejected": "rejected", "failed": "rejected",
           "voided": "canceled"}


class _Recording:
    """The adapter, with the client order id behind each ref_id noted as orders go out
    (Robinhood keeps only the ref_id; the soak's truth needs our id)."""

    def __init__(self, broker, ref_ids: dict[str, str]):
        self._broker, self._ref_ids = broker, ref_ids

    def __getattr__(self, name):
        return getattr(self._broker, name)

    def submit(self, intent):
        self._ref_ids[ref_id_for(intent.client_order_id)] = intent.client_order_id
        return self._broker.submit(intent)


class RobinhoodSoakHarness:
    venue = "robinhood"
    symbols = ("AAA", "BBB", "CCC", "DDD", "EEE")
    fault_kinds = (TIMEOUT_AFTER_ACCEPT, DISCONNECT_AFTER_ACCEPT, BURST_429, OUTAGE, SESSION_EXPIRED,
                   LOOKUP_500_AFTER_LOST_ANSWER)

    def __init__(self, rig: RobinhoodRig, rng: random.Random):
        self.rig, self.fake, self.rng = rig, rig.fake, rng
        self.ref_ids: dict[str, str] = {}
        self._seen_a_session: set[str] = set()

    def open_broker(self):
        return _Recording(self.rig.broker(timeout_seconds=TIMEOUT, retry_base_delay=0.0), self.ref_ids)

    def arm(self, fault: str, rng: random.Random) -> None:
        fake = self.fake
        if fault == TIMEOUT_AFTER_ACCEPT:
            fake.slow_next_answer(TIMEOUT * 2, method="POST", path="/orders/")
        elif fault == DISCONNECT_AFTER_ACCEPT:
            fake.drop_answer_to_next_accepted_order()
        elif fault == BURST_429:
            fake.fail_next(429, method="POST", path="/orders/", times=rng.randint(1, 4))
        elif fault == OUTAGE:
            fake.fail_next(503, times=rng.randint(1, 10))
        elif fault == SESSION_EXPIRED:
            fake.revoke_tokens()
        elif fault == LOOKUP_500_AFTER_LOST_ANSWER:
            fake.drop_answer_to_next_accepted_order()
            fake.fail_next(500, method="GET", path="/orders/", times=rng.randint(1, 6))

    def after_failure(self, fault: str, error: BaseException, rng: random.Random) -> None:
        pass  # every injected failure runs out by itself

    def settle(self, rng: random.Random) -> None:
        """At the open most working orders fill (some in two executions); some keep working."""
        with self.fake._lock:
            working = [o["id"] for o in self.fake._open_orders()]
        for oid in working:
            self._seen_a_session.add(oid)
            if rng.random() < 0.2:
                continue
            price = round(100.0 * (1 + rng.uniform(-0.02, 0.02)), 2)
            order = self.fake.orders[oid]
            left = order["quantity"] - order["cumulative_quantity"]
            if left > 1 and rng.random() < 0.3:
                self.fake.fill_order(oid, quantity=left // 2, price=price)
            self.fake.fill_order(oid, price=price)

    def late_events(self, rng: random.Random) -> None:
        pass

    def end_of_day(self, today: date) -> None:
        """Good-for-the-day orders that were working through a whole session are cancelled."""
        with self.fake._lock:
            for order in self.fake._open_orders():
                if order["time_in_force"] == "gfd" and order["id"] in self._seen_a_session:
                    order["state"] = "cancelled"

    def truth(self) -> VenueTruth:
        with self.fake._lock:
            orders, executions = [], []
            for o in self.fake.orders.values():
                cid = self.ref_ids.get(o["ref_id"], f"unknown-ref-{o['ref_id']}")
                status = _STATUS.get(o["state"], "open")
                orders.append(VenueOrder(cid, o["id"], status, o["cumulative_quantity"]))
                executions += [VenueExecution(e["id"], cid, float(e["quantity"]), float(e["price"]), 0.0)
                               for e in o["executions"]]
            # a send the venue refused (and never took later, on a re-run) is a rejection
            held = {o["ref_id"] for o in self.fake.orders.values()}
            refused = dict.fromkeys(ref_id for ref_id, _body in self.fake.refusals if ref_id not in held)
            orders += [VenueOrder(self.ref_ids.get(ref_id, f"unknown-ref-{ref_id}"), f"refused-{ref_id}",
                                  "rejected") for ref_id in refused]
        return VenueTruth(orders, executions)


@contextmanager
def open_harness(rng: random.Random) -> Iterator[RobinhoodSoakHarness]:
    with tempfile.TemporaryDirectory() as folder:
        rig = RobinhoodRig(Path(folder), prices={s: 100.0 for s in RobinhoodSoakHarness.symbols},
                           cash=1e12)
        try:
            yield RobinhoodSoakHarness(rig, rng)
        finally:
            rig.close()
