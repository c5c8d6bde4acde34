"""The broker contract for Alpaca: the real alpaca-py client against the fake REST server."""

from __future__ import annotations

import pytest

from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
from trading_pipeline_tests.brokers.contract import BrokerContract, ReconciliationContract
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer

KEY_ID = "FAKEKEYID-SHOULD-NOT-LEAK"
SECRET_KEY = "FAKESECRET-SHOULD-NOT-LEAK"
# Short enough that a lost answer costs little, long enough for a busy 2-core machine.
TIMEOUT = 1.0


class AlpacaHarness:
    def __init__(self, fake: FakeAlpaca, broker: AlpacaBroker) -> None:
        self.fake = fake
        self.broker = broker

    def reference_price(self, symbol: str) -> float:
        return self.fake.price(symbol)

    def settle(self) -> None:
        self.fake.settle()

    def orders_at_broker(self, client_order_id: str) -> int:
        return self.fake.orders_with_client_id(client_order_id)

    def fail_next_submit_after_accept(self) -> None:
        # answer only well after the client's timeout: the client must give up and look again
        self.fake.drop_answer_to_next_order("delay", delay=TIMEOUT * 3)

    def set_position_by_hand(self, symbol: str, quantity: float) -> None:
        self.fake.set_position(symbol, quantity)

    def forget_order(self, client_order_id: str) -> None:
        self.fake.forget_order(client_order_id)


@pytest.fixture
def harness():
    fake = FakeAlpaca(KEY_ID, SECRET_KEY)
    with FakeAlpacaServer(fake) as server:
        config = AlpacaConfig(KEY_ID, SECRET_KEY, paper=True, url_override=server.url,
                              timeout_seconds=TIMEOUT)
        with AlpacaBroker(config, sleep=lambda seconds: None) as broker:
            yield AlpacaHarness(fake, broker)
    assert not fake.crashes, fake.crashes[0]


class TestAlpacaContract(BrokerContract, ReconciliationContract):
    pass
