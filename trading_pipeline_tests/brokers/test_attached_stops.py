"""Stops go with the entry: the plan says which stop goes with which buy, each venue holds it
until the entry fills (Alpaca OTO, an IBKR child order, the simulator's contingent order), and
the stop is never an order we did not send. The contract suite (`contract.py`) checks the
common behaviour; here, what each venue does its own way."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
from trading_pipeline.domain.attached_stops import attached_stop_id
from trading_pipeline.domain.execution.config import ExecutionConfig
from trading_pipeline.domain.execution.fills import Bar
from trading_pipeline.domain.execution.session import process_session
from trading_pipeline.domain.execution.venue import Position
from trading_pipeline.domain.execution.acceptance import accept_order
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from trading_pipeline.domain.reconciliation import BreakKind
from trading_pipeline.domain.risk import ConstructionConfig, StopPolicy
from trading_pipeline.domain.session_plan import (
    PlanPolicy,
    SessionState,
    Step,
    order_id_key,
    plan_session,
    relink_attached,
)
from trading_pipeline.services.reconcile import reconcile
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer
from trading_pipeline_tests.brokers.fakes.tws import FakeTws

SESSION = date(2024, 3, 1)
KEY_ID, SECRET_KEY = "FAKEKEYID-SHOULD-NOT-LEAK", "FAKESECRET-SHOULD-NOT-LEAK"


def _entry_and_stop(cid: str, quantity: float = 10, stop_price: float = 50.0, symbol: str = "AAA"):
    entry = OrderIntent(client_order_id=cid, symbol=symbol, side=Side.BUY, quantity=quantity,
                        session=SESSION, strategy="t")
    stop = OrderIntent(client_order_id=attached_stop_id(cid), symbol=symbol, side=Side.SELL,
                       quantity=quantity, order_type=OrderType.STOP, stop_price=stop_price,
                       time_in_force=TimeInForce.GTC, session=SESSION, strategy="t")
    return entry, stop


# -- the plan ----------------------------------------------------------------------------

CLOSES = [101.3, 47.7, 23.9, 11.1]


def _plan(attach: bool, held: dict[str, float], account: str = "simulator", fractional: bool = False):
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    days = pl.date_range(date(2023, 1, 2), date(2024, 2, 29), "1d", eager=True).to_list()[-260:]
    returns = pl.DataFrame({"session": [d for d in days for _ in symbols],
                            "symbol": symbols * len(days),
                            "return": [0.001 * ((i % 7) - 3) for i in range(len(days) * len(symbols))]})
    scores = pl.DataFrame({"session": [SESSION] * 4, "symbol": symbols, "score": [4.0, 3.0, 2.0, 1.0]})
    closes = pl.DataFrame({"symbol": symbols, "close": CLOSES})
    construction = ConstructionConfig(allow_fractional=fractional)
    state = SessionState(equity=100_000.0, buying_power=100_000.0, held=held,
                         entry_prices={s: 90.0 for s in held}, working_stops=[])
    policy = PlanPolicy(strategy="daily_ml", construction=construction, stop_policy=StopPolicy(0.05),
                        attach_stops=attach, id_key=order_id_key("daily_ml", account))
    return plan_session(SESSION, scores, closes, returns, state, policy)


def test_every_buy_that_opens_a_long_carries_its_own_stop():
    plan = _plan(attach=True, held={"DDD": -20.0})
    buys = [o for o in plan.orders if o.step is Step.REBALANCE and o.intent.side is Side.BUY]
    attached = {o.attached_to: o for o in plan.orders if o.attached_to}
    opening = [b for b in buys if b.intent.symbol != "DDD"]
    assert opening and set(attached) == {b.intent.client_order_id for b in opening}
    for buy in opening:
        stop = attached[buy.intent.client_order_id].intent
        assert stop.client_order_id == attached_stop_id(buy.intent.client_order_id)
        assert (stop.side, stop.order_type, stop.time_in_force) == (Side.SELL, OrderType.STOP, TimeInForce.GTC)
        assert stop.quantity == buy.intent.quantity and stop.strategy == "daily_ml"
        close = dict(zip(["AAA", "BBB", "CCC", "DDD"], CLOSES))[stop.symbol]
        assert stop.stop_price == round(close * 0.95, 2)
    # a buy covering the DDD short gets no stop: a sell stop would open the short again
    assert all(o.intent.symbol != "DDD" for o in attached.values())
    # read back from a record that keeps no link, each stop finds its entry again
    unlinked = [type(o)(o.intent, o.step, o.reduces_exposure) for o in plan.orders]
    assert relink_attached(unlinked) == plan.orders


def test_a_fractional_entry_carries_no_stop():
    """Alpaca takes no fractional OTO order: such an entry gets its stop at the next session."""
    plan = _plan(attach=True, held={}, fractional=True)
    fractional = [o.intent for o in plan.orders if o.step is Step.REBALANCE
                  and not float(o.intent.quantity).is_integer()]
    assert fractional
    assert not {o.attached_to for o in plan.orders} & {i.client_order_id for i in fractional}


def test_without_a_venue_that_holds_stops_the_plan_is_as_before():
    assert not any(o.attached_to for o in _plan(attach=False, held={}).orders)


def test_each_broker_account_has_ids_of_its_own_and_the_simulator_keeps_its():
    simulator, live = _plan(True, {}, "simulator"), _plan(True, {}, "alpaca-live")
    simulator_ids = {o.intent.client_order_id for o in simulator.orders}
    live_ids = {o.intent.client_order_id for o in live.orders}
    assert simulator_ids and not simulator_ids & live_ids
    assert _plan(True, {}, "simulator").orders == simulator.orders  # deterministic
    assert {o.intent.strategy for o in live.orders} == {"daily_ml"}


# -- the simulated venue: a contingent stop --------------------------------------------------


def test_a_contingent_stop_works_on_the_bar_its_entry_fills_and_not_before():
    config = ExecutionConfig(slippage_bps=0.0)
    marks = {"AAA": (SESSION, 100.0)}
    entry, stop = _entry_and_stop("sim-1", stop_price=95.0)
    common = dict(account="a", clock=SESSION, marks=marks, cash=100_000.0, positions={}, config=config)
    placed = accept_order(entry, number=1, open_orders=[], **common)
    child = accept_order(stop, number=2, open_orders=[placed], parent=placed, **common)
    assert child.status is OrderStatus.NEW and child.waiting_for_parent
    # a sell stop for shares not yet held is refused when it is not attached
    assert accept_order(stop, number=3, open_orders=[placed], **common).status is OrderStatus.REJECTED
    day = date(2024, 3, 4)
    # the entry fills at the open (100); the low (93) then crosses the stop (95) the same day
    bars = {"AAA": Bar(open=100.0, high=101.0, low=93.0, close=94.0, volume=1e6)}
    outcome = process_session(day, bars, [placed, child], 100_000.0, {}, config)
    by_id = {o.client_order_id: o for o in outcome.orders}
    assert by_id[entry.client_order_id].status is OrderStatus.FILLED
    assert by_id[stop.client_order_id].status is OrderStatus.FILLED
    assert [f.client_order_id for f in outcome.fills] == [entry.client_order_id, stop.client_order_id]
    assert outcome.positions["AAA"] == Position(0.0, 0.0)


def test_a_contingent_stop_of_an_entry_that_expired_unfilled_is_canceled():
    config = ExecutionConfig(slippage_bps=0.0)
    marks = {"AAA": (SESSION, 100.0)}
    _, stop = _entry_and_stop("sim-2", stop_price=80.0)
    entry = OrderIntent(client_order_id="sim-2", symbol="AAA", side=Side.BUY, quantity=10,
                        order_type=OrderType.LIMIT, limit_price=50.0, session=SESSION, strategy="t")
    common = dict(account="a", clock=SESSION, marks=marks, cash=100_000.0, positions={}, config=config)
    placed = accept_order(entry, number=1, open_orders=[], **common)
    child = accept_order(stop, number=2, open_orders=[placed], parent=placed, **common)
    bars = {"AAA": Bar(open=100.0, high=101.0, low=79.0, close=94.0, volume=1e6)}
    outcome = process_session(date(2024, 3, 4), bars, [placed, child], 100_000.0, {}, config)
    by_id = {o.client_order_id: o for o in outcome.orders}
    assert by_id[entry.client_order_id].status is OrderStatus.EXPIRED
    assert by_id[stop.client_order_id].status is OrderStatus.CANCELED
    assert "ended expired without a fill" in by_id[stop.client_order_id].reason
    assert outcome.fills == []


# -- Alpaca: an OTO order; the leg is read back under the stop's id ----------------------------


@pytest.fixture
def alpaca():
    fake = FakeAlpaca(KEY_ID, SECRET_KEY)
    with FakeAlpacaServer(fake):
        yield fake
    assert not fake.crashes, fake.crashes[0]


def _alpaca(fake) -> AlpacaBroker:
    config = AlpacaConfig(KEY_ID, SECRET_KEY, paper=True, url_override=fake.url, timeout_seconds=1.0)
    return AlpacaBroker(config, sleep=lambda seconds: None)


def test_alpaca_sends_the_entry_as_an_oto_order_with_the_planned_stop(alpaca):
    entry, stop = _entry_and_stop("oto-1", stop_price=61.5)
    with _alpaca(alpaca) as broker:
        broker.submit_with_stop(entry, stop)
    [sent] = [r.body for r in alpaca.requests_to("POST", "/v2/orders")]
    assert sent["order_class"] == "oto" and float(sent["stop_loss"]["stop_price"]) == 61.5
    assert sent["client_order_id"] == entry.client_order_id and sent["time_in_force"] == "day"


def test_alpaca_refuses_a_fractional_oto_order(alpaca):
    entry, stop = _entry_and_stop("oto-frac", quantity=2.5)
    with _alpaca(alpaca) as broker:
        entry_report, stop_report = broker.submit_with_stop(entry, stop)
    assert entry_report.status is OrderStatus.REJECTED and "fractional" in entry_report.reason
    assert stop_report.status is OrderStatus.REJECTED and "was rejected" in stop_report.reason


def test_a_later_alpaca_client_reads_the_leg_and_its_fill_under_the_stop_id(alpaca, tmp_path):
    entry, stop = _entry_and_stop("oto-2", stop_price=90.0)
    ledger = Ledger(Warehouse(tmp_path / "ledger.duckdb"))
    with _alpaca(alpaca) as broker:
        for intent in (entry, stop):
            ledger.record_intent(intent, broker.name, dry_run=False, status="submitting")
        for report in broker.submit_with_stop(entry, stop):
            ledger.record_status(report)
    with _alpaca(alpaca) as later:  # the next session: a new process knows none of the ids
        assert stop.client_order_id in {o.client_order_id for o in later.open_orders()}
        breaks = reconcile(later, ledger, SESSION).breaks
        assert BreakKind.FOREIGN_ORDER not in (set(breaks["kind"]) if breaks.height else set())
    alpaca.settle()  # the entry fills at 100; the leg starts working
    alpaca.set_price("AAA", 89.0)
    alpaca.settle()  # and the stop fills
    with _alpaca(alpaca) as later:
        fills = later.fills(since=datetime.now(UTC) - timedelta(days=1))
        assert sorted(f.client_order_id for f in fills) == sorted([entry.client_order_id, stop.client_order_id])
        assert later.order_status(stop.client_order_id).status is OrderStatus.FILLED
        breaks = reconcile(later, ledger, date(2024, 3, 4)).breaks  # the next session
        kinds = set(breaks["kind"]) if breaks.height else set()
        assert not kinds & {BreakKind.FOREIGN_ORDER, BreakKind.FOREIGN_FILL}


# -- IBKR: a child STP order; TWS holds the parent until the child comes ------------------------


@pytest.fixture
def tws():
    server = FakeTws(prices={"AAA": 100.0, "BBB": 50.0}).start()
    server.roll_day(datetime(2031, 1, 6, 18, 30, tzinfo=UTC))
    yield server
    server.stop()


def _ibkr(fake: FakeTws) -> IbkrBroker:
    return IbkrBroker(IbkrConfig(port=fake.port, connect_timeout=5, request_timeout=0.5, max_attempts=2,
                                 retry_base_delay=0.0), sleep=lambda _s: None)


def test_ibkr_sends_the_stop_as_a_child_that_transmits_the_group(tws):
    entry, stop = _entry_and_stop("ib-1", stop_price=90.0)
    entry = OrderIntent(client_order_id="ib-1", symbol="AAA", side=Side.BUY, quantity=10)
    with _ibkr(tws) as broker:
        entry_report, stop_report = broker.submit_with_stop(entry, stop)
        assert entry_report.status is OrderStatus.NEW and stop_report.status is OrderStatus.NEW
        parent, child = tws.placed[-2:]
        assert (parent["order_ref"], parent["transmit"], parent["parent_id"]) == ("ib-1", "0", "0")
        assert (child["order_ref"], child["transmit"]) == (stop.client_order_id, "1")
        assert child["parent_id"] == parent["order_id"]
        assert tws.fill_working_orders() == 1  # the entry only: its child waits for the fill
        assert tws.fill_working_orders(price=80.0) == 1  # then the stop works, and triggers
        assert broker.order_status(stop.client_order_id).status is OrderStatus.FILLED


def test_tws_keeps_an_order_sent_without_transmit_until_its_child_comes(tws):
    from ib_insync import IB, MarketOrder, Stock, StopOrder

    # ib_insync's blocking calls run on this thread's event loop: its own, whatever an earlier
    # test in this process left set (or unset)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ib = IB()
    try:
        ib.connect("127.0.0.1", tws.port, clientId=7, timeout=5)
        contract = Stock("AAA", "SMART", "USD")
        parent = MarketOrder("BUY", 10, orderRef="held-parent", transmit=False, orderId=ib.client.getReqId())
        ib.placeOrder(contract, parent)
        ib.sleep(0.3)
        assert tws.untransmitted_refs() == ["held-parent"] and tws.orders_with_ref("held-parent") == []
        orphan = StopOrder("SELL", 10, 90.0, orderRef="orphan", parentId=999_999, transmit=True)
        orphan_trade = ib.placeOrder(contract, orphan)
        child = StopOrder("SELL", 10, 90.0, orderRef="held-child", parentId=parent.orderId, transmit=True)
        ib.placeOrder(contract, child)
        ib.sleep(0.3)
        assert tws.untransmitted_refs() == []
        assert [o.order_ref for o in tws.orders_with_ref("held-parent") + tws.orders_with_ref("held-child")] \
            == ["held-parent", "held-child"]
        assert tws.orders_with_ref("orphan") == []  # a child whose parent TWS does not know
        assert any(entry.errorCode == 135 for entry in orphan_trade.log)
    finally:
        ib.disconnect()
        asyncio.set_event_loop(None)
        loop.close()
