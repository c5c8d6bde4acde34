"""The Alpaca side of the fault soak: the real adapter through alpaca-py against the fake
Alpaca REST server, with the faults a REST venue shows (see the fake's knobs in
brokers/fakes/alpaca/state.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
from trading_pipeline_tests.benchmarks.soak.runner import VenueExecution, VenueOrder, VenueTruth
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer

KEY_ID = "FAKEKEYID-SOAK"
SECRET_KEY = "FAKESECRET-SOAK"
TIMEOUT = 0.3  # seconds; a lost answer is answered only after 2x this

TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # the order is booked, its answer comes too late
DISCONNECT_AFTER_ACCEPT = "disconnect_after_accept"  # booked, then the connection drops
BURST_429 = "burst_429"  # rate limited on the next few order posts (sometimes past the retries)
OUTAGE = "outage_503"  # every look-up and post answers 503 for a while
SERVER_ERROR_ON_LOOKUP = "lookup_500"  # the idempotency look-up before a send fails
SLOW_CANCEL_DAY = "pending_cancel"  # cancels stay pending_cancel for a few reads

_STATUS = {"filled": "filled", "canceled": "canceled", "expired": "canceled", "replaced": "canceled",
           "rejected": "rejected"}


class AlpacaSoakHarness:
    venue = "alpaca"
    symbols = ("AAA", "BBB", "CCC", "DDD", "EEE")
    fault_kinds = (TIMEOUT_AFTER_ACCEPT, DISCONNECT_AFTER_ACCEPT, BURST_429, OUTAGE,
                   SERVER_ERROR_ON_LOOKUP)

    def __init__(self, fake: FakeAlpaca, url: str, rng: random.Random):
        self.fake, self.url, self.rng = fake, url, rng
        self._seen_a_session: set[str] = set()  # orders that have been through one open

    def open_broker(self) -> AlpacaBroker:
        config = AlpacaConfig(KEY_ID, SECRET_KEY, paper=True, url_override=self.url,
                              timeout_seconds=TIMEOUT, max_attempts=3, retry_base_delay=0.0)
        return AlpacaBroker(config, sleep=lambda _s: None)

    def arm(self, fault: str, rng: random.Random) -> None:
        fake = self.fake
        if fault == TIMEOUT_AFTER_ACCEPT:
            fake.drop_answer_to_next_order("delay", delay=TIMEOUT * 2)
        elif fault == DISCONNECT_AFTER_ACCEPT:
            fake.drop_answer_to_next_order("close")
        elif fault == BURST_429:
            fake.fail_next(429, method="POST", path="/v2/orders", times=rng.randint(1, 5))
        elif fault == OUTAGE:
            times = rng.randint(1, 8)
            for method, path in (("POST", "/v2/orders"), ("GET", "/v2/orders:by_client_order_id")):
                fake.fail_next(503, method=method, path=path, times=times)
        elif fault == SERVER_ERROR_ON_LOOKUP:
            fake.fail_next(500, method="GET", path="/v2/orders:by_client_order_id",
                           times=rng.randint(1, 4))

    def after_failure(self, fault: str, error: BaseException, rng: random.Random) -> None:
        pass  # every injected failure runs out by itself

    def settle(self, rng: random.Random) -> None:
        """At the open most working orders fill (some in two executions); some keep working."""
        with self.fake._lock:
            working = [o for o in self.fake.orders if o.is_open]
        for order in working:
            self._seen_a_session.add(order.id)
            if rng.random() < 0.2:
                continue
            price = round(100.0 * (1 + rng.uniform(-0.02, 0.02)), 2)
            with self.fake._lock:
                if order.remaining > 1 and rng.random() < 0.3:
                    self.fake._execute(order, order.remaining // 2, price)
                self.fake._execute(order, order.remaining, price)

    def late_events(self, rng: random.Random) -> None:
        pass  # Alpaca reports executions once, commission-free

    def end_of_day(self, today: date) -> None:
        """DAY orders that were working through a whole session expire at its close."""
        with self.fake._lock:
            for order in self.fake.orders:
                if order.is_open and order.time_in_force == "day" and order.id in self._seen_a_session:
                    order.status = "expired"

    def truth(self) -> VenueTruth:
        with self.fake._lock:
            orders = [VenueOrder(o.client_order_id, o.id, "open" if o.is_open else _STATUS[o.status],
                                 o.filled_qty) for o in self.fake.orders]
            # a send the venue refused (and never took later, on a re-run) is a rejection:
            # the venue holds no order for it, it said no
            held = {o.client_order_id for o in orders}
            refused = dict.fromkeys(cid for cid, _status, _message in self.fake.refusals
                                    if cid and cid not in held)
            orders += [VenueOrder(cid, f"refused-{cid}", "rejected") for cid in refused]
            client_ids = {o.id: o.client_order_id for o in self.fake.orders}
            executions = [VenueExecution(a["id"], client_ids[a["order_id"]], float(a["qty"]),
                                         float(a["price"]), 0.0) for a in self.fake.activities]
        return VenueTruth(orders, executions)


@contextmanager
def open_harness(rng: random.Random) -> Iterator[AlpacaSoakHarness]:
    fake = FakeAlpaca(KEY_ID, SECRET_KEY, prices={s: 100.0 for s in AlpacaSoakHarness.symbols},
                      cash=1e12)
    with FakeAlpacaServer(fake) as server:
        yield AlpacaSoakHarness(fake, server.url, rng)
    if fake.crashes:
        raise RuntimeError(f"the fake Alpaca failed on a request:\n{fake.crashes[0]}")
