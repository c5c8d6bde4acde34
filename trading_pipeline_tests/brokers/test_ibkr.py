"""IBKR adapter behaviour beyond the contract, through ib_insync against the fake TWS: order
fields as TWS decodes them, rejections and fills, connection failures and reconnects,
threads, accounts and modes, and keeping the account id secret."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from trading_pipeline.brokers.base import BrokerError, BrokerUnavailable, OrderNotFound
from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from trading_pipeline_tests.brokers.fakes.tws import FakeTws

FAKE_ACCOUNT = "DUFAKEACCT-SHOULD-NOT-LEAK"


class SleepRecorder:
    """Injected instead of time.sleep: remembers the backoff, waits for nothing."""

    def __init__(self, on_sleep=None):
        self.delays: list[float] = []
        self._on_sleep = on_sleep

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._on_sleep:
            self._on_sleep(len(self.delays))


@pytest.fixture
def fake():
    server = FakeTws(prices={"AAA": 100.0, "BBB": 50.0}).start()
    yield server
    server.stop()


def make_broker(fake: FakeTws, sleep=None, **overrides) -> IbkrBroker:
    settings = dict(port=fake.port, connect_timeout=5, request_timeout=1.0)
    settings.update(overrides)
    return IbkrBroker(IbkrConfig(**settings), sleep=sleep or SleepRecorder())


@pytest.fixture
def broker(fake):
    adapter = make_broker(fake)
    yield adapter
    adapter.close()


def buy(cid: str, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=Side.BUY, quantity=quantity, **kw)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# order fields as the fake TWS decoded them off the wire

ORDER_CASES = {
    "market": (dict(), dict(order_type="MKT", lmt_price="", aux_price="", trailing_percent="")),
    "limit": (dict(order_type=OrderType.LIMIT, limit_price=98.5),
              dict(order_type="LMT", lmt_price="98.5", aux_price="", trailing_percent="")),
    "stop": (dict(order_type=OrderType.STOP, stop_price=90.0),
             dict(order_type="STP", lmt_price="", aux_price="90.0", trailing_percent="")),
    "stop_limit": (dict(order_type=OrderType.STOP_LIMIT, stop_price=90.0, limit_price=89.1),
                   dict(order_type="STP LMT", lmt_price="89.1", aux_price="90.0", trailing_percent="")),
    "trail_percent": (dict(order_type=OrderType.TRAILING_STOP, trail_percent=5.0),
                      dict(order_type="TRAIL", lmt_price="", aux_price="", trailing_percent="5.0")),
    "trail_amount": (dict(order_type=OrderType.TRAILING_STOP, trail_amount=2.5),
                     dict(order_type="TRAIL", lmt_price="", aux_price="2.5", trailing_percent="")),
}


@pytest.mark.parametrize("case", list(ORDER_CASES))
@pytest.mark.parametrize("side, tif", [(Side.SELL, TimeInForce.GTC), (Side.BUY, TimeInForce.DAY)])
def test_order_fields_reach_tws(fake, broker, case, side, tif):
    intent_fields, wire_fields = ORDER_CASES[case]
    cid = f"fields-{case}-{side}-{tif}"
    report = broker.submit(OrderIntent(client_order_id=cid, symbol="AAA", side=side, quantity=7,
                                       time_in_force=tif, **intent_fields))
    (placed,) = [p for p in fake.placed if p["order_ref"] == cid]
    assert {name: placed[name] for name in wire_fields} == wire_fields
    assert placed["action"] == ("BUY" if side is Side.BUY else "SELL")
    assert float(placed["total_quantity"]) == 7
    assert placed["tif"] == ("GTC" if tif is TimeInForce.GTC else "DAY")
    assert (placed["symbol"], placed["sec_type"], placed["exchange"], placed["currency"]) == (
        "AAA", "STK", "SMART", "USD")
    assert placed["account"] == fake.account  # orders name the account they trade
    assert report.status is OrderStatus.NEW
    assert report.order_type is OrderType(intent_fields.get("order_type", OrderType.MARKET))
    assert report.broker_order_id == str(fake.orders_with_ref(cid)[0].perm_id)


def test_rejection_is_an_answer_with_the_reason(fake, broker):
    fake.reject_next_order("insufficient buying power")
    report = broker.submit(buy("reject-1"))
    assert report.status is OrderStatus.REJECTED
    assert "insufficient buying power" in report.reason
    # asking again sends nothing new and gives the same answer
    assert broker.submit(buy("reject-1")).status is OrderStatus.REJECTED
    assert len(fake.orders_with_ref("reject-1")) == 1


def test_a_rejection_tws_does_not_list_still_blocks_a_resend_in_this_session(fake, broker):
    fake.reject_next_order("no trading permissions")
    broker.submit(buy("reject-2"))
    fake.forget_order("reject-2")  # real TWS may leave refused orders out of its lists
    assert broker.submit(buy("reject-2")).status is OrderStatus.REJECTED
    assert len(fake.placed) == 1


def test_unknown_symbol_is_rejected(fake, broker):
    report = broker.submit(OrderIntent("nosuch-1", "ZZZZ", Side.BUY, 1))
    assert report.status is OrderStatus.REJECTED
    assert "No security definition" in report.reason


def test_partial_fill_then_fill_with_prices_and_commission(fake, broker):
    broker.submit(buy("partial-1", quantity=10, order_type=OrderType.LIMIT, limit_price=99.0))
    fake.fill_order("partial-1", price=98.0, quantity=4)
    status = broker.order_status("partial-1")
    assert status.status is OrderStatus.PARTIALLY_FILLED
    assert (status.filled_quantity, status.avg_fill_price) == (4, pytest.approx(98.0))
    assert "partial-1" in {o.client_order_id for o in broker.open_orders()}
    fake.fill_order("partial-1", price=99.0)
    status = broker.order_status("partial-1")
    assert status.status is OrderStatus.FILLED
    assert status.avg_fill_price == pytest.approx((4 * 98.0 + 6 * 99.0) / 10)
    fills = [f for f in broker.fills(datetime.now(UTC) - timedelta(days=1))
             if f.client_order_id == "partial-1"]
    assert sorted((f.quantity, f.price) for f in fills) == [(4, 98.0), (6, 99.0)]
    assert all(f.commission == pytest.approx(1.0) and f.side is Side.BUY for f in fills)
    assert broker.fills(datetime.now(UTC) + timedelta(hours=1)) == []


def test_filled_order_seen_from_a_new_session_keeps_its_price(fake, broker):
    broker.submit(buy("later-1"))
    fake.fill_working_orders(price=101.0)
    fake.drop_connections()  # the next call starts a session that never saw the fill live
    status = broker.order_status("later-1")
    assert broker.connect_count == 2
    assert status.status is OrderStatus.FILLED
    assert (status.filled_quantity, status.avg_fill_price) == (10, pytest.approx(101.0))


def test_lost_acknowledgement_fails_clearly_and_a_later_submit_sends_nothing(fake):
    fake.swallow_next_order()
    with make_broker(fake, max_attempts=1, request_timeout=0.3) as broker:
        with pytest.raises(BrokerUnavailable, match="did not acknowledge order lost-ack-1"):
            broker.submit(buy("lost-ack-1"))
        again = broker.submit(buy("lost-ack-1"))
    assert again.status is OrderStatus.NEW
    assert again.broker_order_id == str(fake.orders_with_ref("lost-ack-1")[0].perm_id)
    assert len(fake.placed) == 1


def test_cancel_unknown_order_raises_order_not_found(broker):
    with pytest.raises(OrderNotFound, match="cancel-nobody"):
        broker.cancel("cancel-nobody")


def test_cancel_of_a_filled_order_reports_the_fill_and_sends_no_cancel(fake, broker):
    broker.submit(buy("cancel-filled"))
    fake.fill_working_orders()
    assert broker.cancel("cancel-filled").status is OrderStatus.FILLED
    assert not [r for r in fake.requests if r[0] == "4"]


def test_cancel_that_loses_the_race_with_a_fill_reports_the_fill(fake, broker):
    broker.submit(buy("race-1", order_type=OrderType.LIMIT, limit_price=99.0))
    fake.fill_instead_of_next_cancel(price=98.5)
    report = broker.cancel("race-1")  # TWS answers error 10148: already filled
    assert report.status is OrderStatus.FILLED
    assert (report.filled_quantity, report.avg_fill_price) == (10, pytest.approx(98.5))
    assert fake.position("AAA") == 10


def test_forgotten_order_is_unknown_and_can_be_sent_again(fake, broker):
    broker.submit(buy("forget-1"))
    assert fake.forget_order("forget-1") == 1
    assert broker.order_status("forget-1") is None  # TWS, not the session, says what exists
    with pytest.raises(OrderNotFound):
        broker.cancel("forget-1")
    assert broker.submit(buy("forget-1")).status is OrderStatus.NEW
    assert len(fake.orders_with_ref("forget-1")) == 1
    assert len(fake.placed) == 2


def test_positions_and_account_follow_fills_and_hand_trades(fake, broker):
    broker.submit(buy("pos-1", quantity=10))
    fake.fill_working_orders(price=100.0)
    fake.set_position("BBB", -3, avg_cost=50.0)
    held = {p.symbol: (p.quantity, p.avg_entry_price) for p in broker.positions()}
    assert held == {"AAA": (10, 100.0), "BBB": (-3, 50.0)}
    account = broker.account()
    # 100k - 10 x 100 - 1 commission; the hand-made BBB short was never paid for
    assert account.cash == pytest.approx(100_000 - 1_000 - 1)
    assert account.equity == pytest.approx(account.cash + 10 * 100.0 - 3 * 50.0)
    assert account.currency == "USD"
    fake.set_position("AAA", 0)
    assert {p.symbol for p in broker.positions()} == {"BBB"}


# connections: refused, dropped, silent, in use

def test_connection_refused_fails_fast_with_bounded_retries():
    sleeps = SleepRecorder()
    broker = IbkrBroker(IbkrConfig(port=free_port(), max_attempts=3, connect_timeout=5), sleep=sleeps)
    with pytest.raises(BrokerUnavailable) as failure:
        broker.positions()
    broker.close()
    text = str(failure.value)
    assert "IBKR" in text and "positions" in text and "3 attempts" in text
    assert "ConnectionRefusedError" in text
    assert len(sleeps.delays) == 2  # backoff between the three attempts, injected


def test_reconnects_after_the_connection_drops(fake, broker):
    broker.submit(buy("drop-1"))
    fake.drop_connections()
    assert broker.order_status("drop-1").status is OrderStatus.NEW
    assert broker.connect_count == 2
    assert fake.connections_accepted == 2
    assert len(fake.orders_with_ref("drop-1")) == 1


def test_retries_until_tws_comes_back(fake):
    fake.refuse_connections()
    sleeps = SleepRecorder(on_sleep=lambda n: fake.accept_connections() if n == 2 else None)
    broker = make_broker(fake, sleep=sleeps, max_attempts=3)
    try:
        assert broker.account().equity > 0
    finally:
        broker.close()
    assert len(sleeps.delays) == 2


def test_a_broker_that_stays_down_raises_and_recovers_later(fake, broker):
    broker.submit(buy("down-1"))
    fake.refuse_connections()
    fake.drop_connections()
    with pytest.raises(BrokerUnavailable, match="open orders"):
        broker.open_orders()
    fake.accept_connections()
    assert [o.client_order_id for o in broker.open_orders()] == ["down-1"]


def test_silent_server_times_out_the_handshake():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepts TCP (backlog) but never speaks
    try:
        broker = IbkrBroker(
            IbkrConfig(port=listener.getsockname()[1], connect_timeout=0.2, max_attempts=2),
            sleep=SleepRecorder(),
        )
        with pytest.raises(BrokerUnavailable, match="TimeoutError"):
            broker.connect()
        broker.close()
    finally:
        listener.close()


def test_client_id_in_use_is_reported(fake, broker):
    fake.client_id_grace = 0.0
    broker.connect()
    second = make_broker(fake, max_attempts=2)
    try:
        with pytest.raises(BrokerUnavailable, match="already in use"):
            second.connect()
    finally:
        second.close()
    assert fake.live_client_ids() == [17]


def test_closed_broker_refuses_work(broker):
    broker.connect()
    broker.close()
    with pytest.raises(BrokerError, match="closed"):
        broker.positions()


# threads

def test_works_from_a_worker_thread(fake):
    def run_in_thread():
        assert threading.current_thread() is not threading.main_thread()
        with make_broker(fake) as adapter:
            adapter.submit(buy("thread-1"))
            return adapter.order_status("thread-1").status

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(run_in_thread).result(timeout=30) is OrderStatus.NEW


def test_one_broker_shared_by_threads(fake, broker):
    broker.connect()  # connected from the main thread, used from others
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [f"shared-{i % 3}" for i in range(6)]  # each id submitted twice, concurrently
        reports = list(pool.map(lambda cid: broker.submit(buy(cid)), ids))
    assert {r.client_order_id for r in reports} == {"shared-0", "shared-1", "shared-2"}
    assert [len(fake.orders_with_ref(f"shared-{i}")) for i in range(3)] == [1, 1, 1]


# accounts and modes

def test_several_accounts_need_an_explicit_account():
    with FakeTws(accounts=("DU111", "DU222")) as fake:
        with make_broker(fake) as unspecified:
            with pytest.raises(BrokerError, match="IBKR_ACCOUNT"):
                unspecified.connect()
        fake.set_position("AAA", 5, account="DU111")
        fake.set_position("AAA", 9, account="DU222")
        with make_broker(fake, account="DU222") as chosen:
            assert [(p.symbol, p.quantity) for p in chosen.positions()] == [("AAA", 9)]
            chosen.submit(buy("acct-1"))
        assert fake.orders_with_ref("acct-1")[0].account == "DU222"


def test_unknown_configured_account_is_refused_without_naming_it():
    with FakeTws(accounts=("DU111",)) as fake, make_broker(fake, account="DU999") as broker:
        with pytest.raises(BrokerError) as failure:
            broker.connect()
        assert "IBKR_ACCOUNT" in str(failure.value)
        assert "DU999" not in str(failure.value) and "DU111" not in str(failure.value)
        assert fake.connections_accepted == 1  # a wrong account is not retried


@pytest.mark.parametrize("mode, account", [("paper", "U7654321"), ("live", "DU7654321")])
def test_mode_must_match_the_login(mode, account):
    with FakeTws(accounts=(account,)) as fake, make_broker(fake, mode=mode) as broker:
        with pytest.raises(BrokerError, match=f"TRADING_ENV={mode}"):
            broker.submit(buy("mode-1"))
        assert fake.placed == []


# secrets

def test_account_id_never_leaks(caplog, capsys):
    caplog.set_level(logging.DEBUG)  # ib_insync logs raw messages at DEBUG
    with FakeTws(accounts=(FAKE_ACCOUNT,)) as fake:
        config = IbkrConfig(port=fake.port, account=FAKE_ACCOUNT, request_timeout=0.3,
                            max_attempts=2, mode="paper")
        texts = [repr(config), str(config), f"{config}"]
        with IbkrBroker(config, sleep=SleepRecorder()) as broker:
            texts.append(repr(broker))
            fake.reject_next_order(f"account {FAKE_ACCOUNT} lacks trading permissions")
            rejected = broker.submit(buy("secret-1"))
            texts.append(repr(rejected))
            assert rejected.status is OrderStatus.REJECTED and "***" in rejected.reason
            broker.submit(buy("secret-2"))
            fake.fill_working_orders()
            texts += [repr(broker.fills(datetime.now(UTC) - timedelta(days=1))),
                      repr(broker.positions()), repr(broker.account())]
            fake.swallow_next_order()
            texts.append(repr(broker.submit(buy("secret-3"))))  # timeout, reconnect, found
            fake.refuse_connections()
            fake.drop_connections()
            with pytest.raises(BrokerUnavailable) as down:
                broker.open_orders()
            texts += [str(down.value), repr(down.value)]
        with IbkrBroker(IbkrConfig(port=fake.port, account=FAKE_ACCOUNT + "X"), sleep=SleepRecorder()) as other:
            fake.accept_connections()
            with pytest.raises(BrokerError) as wrong:
                other.connect()
            texts += [str(wrong.value), repr(wrong.value)]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    assert any("placeOrder" in r.getMessage() for r in caplog.records)  # the logs were on
    leaks = [t for t in texts if FAKE_ACCOUNT in t]
    assert leaks == []
