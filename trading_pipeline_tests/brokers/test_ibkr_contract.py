"""The IBKR adapter passes the broker contract through ib_insync against a fake TWS."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
from trading_pipeline_tests.brokers.contract import (
    SESSION,
    BrokerContract,
    ReconciliationContract,
)
from trading_pipeline_tests.brokers.fakes.tws import FakeTws


class IbkrHarness:
    def __init__(self, fake: FakeTws, broker: IbkrBroker):
        self.fake = fake
        self.broker = broker

    def reference_price(self, symbol: str) -> float:
        return self.fake.state.prices[symbol]

    def settle(self) -> None:
        # fills go out on the socket now; TWS answers the broker's next request after them
        self.fake.fill_working_orders()

    def orders_at_broker(self, client_order_id: str) -> int:
        return len(self.fake.orders_with_ref(client_order_id))

    def fail_next_submit_after_accept(self) -> None:
        self.fake.swallow_next_order()

    def set_position_by_hand(self, symbol: str, quantity: float) -> None:
        self.fake.set_position(symbol, quantity)

    def forget_order(self, client_order_id: str) -> None:
        self.fake.forget_order(client_order_id)


@pytest.fixture
def harness():
    fake = FakeTws(prices={"AAA": 100.0, "BBB": 101.0}).start()
    # TWS's day is the contract's session: it lists completed orders of its current day only
    fake.roll_day(datetime.combine(SESSION, time(18, 30), ZoneInfo("America/New_York")))
    config = IbkrConfig(port=fake.port, connect_timeout=5, request_timeout=1.0, mode="paper")
    broker = IbkrBroker(config, sleep=lambda _seconds: None)
    try:
        yield IbkrHarness(fake, broker)
    finally:
        broker.close()
        fake.stop()
    assert fake.unsupported == [], "the adapter sent requests the fake TWS does not know"


class TestIbkrContract(BrokerContract, ReconciliationContract):
    pass
