"""The paper simulator passes the same broker contract as every real venue."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

import pytest

from trading_pipeline.brokers.base import BrokerUnavailable
from trading_pipeline.brokers.simulator import PaperSimulator
from trading_pipeline.domain.calendar import next_session
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, Side
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.contract import (
    SESSION,
    BrokerContract,
    ReconciliationContract,
)
from trading_pipeline_tests.brokers.sim_market import RandomWalkMarket


class AnswerLosingBroker:
    """Wraps the simulator so that, once armed, the next submit is recorded by the simulator
    and then the answer is lost on the way back (BrokerUnavailable), like a network timeout
    after the venue accepted the order."""

    def __init__(self, simulator: PaperSimulator):
        self.simulator = simulator
        self.name = simulator.name
        self.lose_next_answer = False

    def submit(self, intent: OrderIntent):
        report = self.simulator.submit(intent)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise BrokerUnavailable(f"no answer for {intent.client_order_id} (injected)")
        return report

    attaches_stops = PaperSimulator.attaches_stops

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent):
        return self.simulator.submit_with_stop(entry, stop)

    def cancel(self, client_order_id):
        return self.simulator.cancel(client_order_id)

    def order_status(self, client_order_id):
        return self.simulator.order_status(client_order_id)

    def open_orders(self):
        return self.simulator.open_orders()

    def fills(self, since: datetime):
        return self.simulator.fills(since)

    def positions(self):
        return self.simulator.positions()

    def account(self):
        return self.simulator.account()

    def close(self):
        self.simulator.close()


@lru_cache(maxsize=1)
def shared_market() -> RandomWalkMarket:
    # read-only, so every test may share one; starts well before the contract's session
    return RandomWalkMarket(start=date(2024, 2, 1))


class SimulatorHarness:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.market = shared_market()
        self.simulator = PaperSimulator(warehouse, self.market)
        # the clock starts at the session the contract's orders are decided in
        self.simulator.advance_to(SESSION)
        self.broker = AnswerLosingBroker(self.simulator)

    def reference_price(self, symbol: str) -> float:
        return self.simulator.last_prices()[symbol]

    def settle(self) -> None:
        self.simulator.advance_to(next_session(self.simulator.clock))

    def orders_at_broker(self, client_order_id: str) -> int:
        return self.warehouse.scalar(
            "select count(*) from sim_orders where client_order_id = ?", [client_order_id]
        )

    def fail_next_submit_after_accept(self) -> None:
        self.broker.lose_next_answer = True

    def set_position_by_hand(self, symbol: str, quantity: float) -> None:
        self.warehouse.execute(
            """insert into sim_positions values ('paper', ?, ?, ?)
               on conflict (account, symbol) do update set quantity = excluded.quantity""",
            [symbol, quantity, self.reference_price(symbol)],
        )

    def forget_order(self, client_order_id: str) -> None:
        self.warehouse.execute("delete from sim_orders where client_order_id = ?",
                               [client_order_id])


@pytest.fixture
def harness(tmp_path):
    return SimulatorHarness(Warehouse(tmp_path / "warehouse.duckdb"))


class TestSimulatorContract(BrokerContract, ReconciliationContract):
    supports_timeout_injection = True


def test_retry_after_lost_answer_returns_the_recorded_order(harness):
    intent = OrderIntent(client_order_id="lost-1", symbol="AAA", side=Side.BUY, quantity=3)
    harness.fail_next_submit_after_accept()
    with pytest.raises(BrokerUnavailable):
        harness.broker.submit(intent)
    retried = harness.broker.submit(intent)
    assert retried.status is OrderStatus.NEW
    assert retried.broker_order_id == harness.simulator.order_status("lost-1").broker_order_id
    assert harness.orders_at_broker("lost-1") == 1
