"""The broker contract for Robinhood: robin_stocks against a fake Robinhood on 127.0.0.1."""

from __future__ import annotations

import pytest

from trading_pipeline_tests.brokers.contract import BrokerContract, ReconciliationContract
from trading_pipeline_tests.brokers.fakes.robinhood import RobinhoodRig


class RobinhoodHarness:
    def __init__(self, rig: RobinhoodRig) -> None:
        self.rig = rig
        self.fake = rig.fake
        self.broker = rig.broker()

    def reference_price(self, symbol: str) -> float:
        return self.fake.prices[symbol]

    def settle(self) -> None:
        self.fake.fill_working_orders()

    def orders_at_broker(self, client_order_id: str) -> int:
        # Robinhood keeps no client id: count the fake's orders shaped like the one this
        # id maps to (a duplicate send would be a second order of the same shape).
        report = self.broker.order_status(client_order_id)
        if report is None or report.broker_order_id is None:
            return 0
        return self.fake.orders_like(report.broker_order_id)

    def fail_next_submit_after_accept(self) -> None:
        self.fake.drop_answer_to_next_accepted_order()

    def set_position_by_hand(self, symbol: str, quantity: float) -> None:
        self.fake.set_position(symbol, quantity)

    def forget_order(self, client_order_id: str) -> None:
        report = self.broker.order_status(client_order_id)
        self.fake.forget_order(report.broker_order_id)


class TestRobinhoodContract(BrokerContract, ReconciliationContract):
    @pytest.fixture
    def harness(self, tmp_path):
        rig = RobinhoodRig(tmp_path)
        try:
            yield RobinhoodHarness(rig)
        finally:
            rig.close()
