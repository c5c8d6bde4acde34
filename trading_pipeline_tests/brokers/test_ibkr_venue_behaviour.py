"""What real TWS does that a naive fake would not (issue: behave like the real venues), each
produced by the fake TWS and met by the adapter through ib_insync:

- completed orders and executions are listed for TWS's current day only;
- informational codes such as 10349 arrive like errors and make ib_insync cancel its trade;
- a corrected execution comes again under the next revision of its execId;
- commission reports can come after the execution;
- during a loss of connectivity to IB (1100) orders wait inside TWS until 1101/1102;
- older TWS builds write execution times without a zone.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from trading_pipeline.brokers.base import BrokerUnavailable, OrderStateUnknown
from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
from trading_pipeline.brokers.ibkr import codes
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, Side
from trading_pipeline_tests.brokers.fakes.tws import FakeTws

NEW_YORK = ZoneInfo("America/New_York")
SESSION = date(2031, 1, 6)


def evening(day: date) -> datetime:
    """18:30 New York on `day`: when the daily loop sends its orders."""
    return datetime(day.year, day.month, day.day, 18, 30, tzinfo=NEW_YORK)


@pytest.fixture
def fake():
    server = FakeTws(prices={"AAA": 100.0, "BBB": 50.0}).start()
    server.roll_day(evening(SESSION))
    yield server
    server.stop()


def make_broker(fake: FakeTws, **overrides) -> IbkrBroker:
    settings = dict(port=fake.port, connect_timeout=5, request_timeout=0.5, max_attempts=2,
                    retry_base_delay=0.0)
    settings.update(overrides)
    return IbkrBroker(IbkrConfig(**settings), sleep=lambda _s: None)


def buy(cid: str, quantity: float = 10, session: date | None = SESSION) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=Side.BUY, quantity=quantity,
                       session=session)


# 1. TWS forgets completed orders and executions at its day rollover


def test_an_order_retried_on_a_later_day_that_tws_no_longer_lists_is_unknown_not_resent(fake):
    with make_broker(fake) as broker:
        broker.submit(buy("day-1"))
    fake.fill_working_orders()
    fake.roll_day(evening(date(2031, 1, 7)))  # the ledger row stayed `submitting` overnight
    with make_broker(fake) as broker, pytest.raises(OrderStateUnknown, match="day-1") as raised:
        broker.submit(buy("day-1"))
    assert "check the account" in str(raised.value)  # the message says what a person does next
    assert len(fake.placed) == 1


def test_an_order_still_working_on_a_later_day_is_found_not_resent(fake):
    with make_broker(fake) as broker:
        broker.submit(buy("day-2"))
    fake.roll_day(evening(date(2031, 1, 7)))  # not filled: TWS still lists it as open
    with make_broker(fake) as broker:
        assert broker.submit(buy("day-2")).status is OrderStatus.NEW
    assert len(fake.placed) == 1


def test_an_order_of_todays_session_that_tws_does_not_know_is_sent(fake):
    fake.roll_day(evening(SESSION))
    with make_broker(fake) as broker:
        assert broker.submit(buy("day-3")).status is OrderStatus.NEW
    assert len(fake.placed) == 1


# 2. informational codes are not rejections


def test_informational_10349_leaves_the_order_working(fake):
    fake.warn_next_order(10349, "Order TIF was set to DAY based on order preset.")
    with make_broker(fake) as broker:
        report = broker.submit(buy("tif-1"))
        assert (report.status, report.reason) == (OrderStatus.NEW, None)
        assert broker.order_status("tif-1").status is OrderStatus.NEW
        fake.fill_working_orders()
        assert broker.order_status("tif-1").status is OrderStatus.FILLED
    assert len(fake.placed) == 1


def test_a_real_rejection_is_still_a_rejection(fake):
    fake.reject_next_order("insufficient buying power")
    with make_broker(fake) as broker:
        report = broker.submit(buy("reject-1"))
    assert report.status is OrderStatus.REJECTED
    assert "insufficient buying power" in report.reason


def test_every_code_in_the_table_names_its_source_and_its_meaning():
    for code, entry in codes.TWS_CODES.items():
        assert entry.source.startswith("http"), code
        assert entry.meaning in codes.Meaning, code
    assert codes.meaning(10349) is codes.Meaning.INFORMATIONAL
    assert codes.meaning(201) is codes.Meaning.REJECTION
    assert codes.meaning(1100) is codes.Meaning.LINK_LOST
    assert codes.meaning(987654) is codes.Meaning.UNKNOWN


# 3. corrections replace, 4. late commissions update


def test_a_corrected_execution_is_one_fill_with_the_corrected_price(fake):
    with make_broker(fake) as broker:
        broker.submit(buy("corr-1"))
        fake.fill_working_orders(price=100.0)
        first = broker.fills(evening(SESSION).replace(hour=0))
        new_id = fake.correct_execution("corr-1", price=100.5)
        assert new_id.endswith(".02")
        fills = broker.fills(evening(SESSION).replace(hour=0))
        status = broker.order_status("corr-1")
    assert len(fills) == 1
    assert fills[0].fill_id == first[0].fill_id  # stable across corrections
    assert (fills[0].quantity, fills[0].price) == (10, 100.5)
    assert (status.filled_quantity, status.avg_fill_price) == (10, pytest.approx(100.5))


def test_a_correction_seen_only_by_a_new_connection_is_one_fill(fake):
    with make_broker(fake) as broker:
        broker.submit(buy("corr-2"))
    fake.fill_working_orders(price=100.0)
    fake.correct_execution("corr-2", price=99.5)
    with make_broker(fake) as broker:
        fills = broker.fills(evening(SESSION).replace(hour=0))
    assert [(f.quantity, f.price) for f in fills] == [(10, 99.5)]


def test_a_late_commission_report_updates_the_same_fill(fake):
    fake.delay_commissions = True
    with make_broker(fake) as broker:
        broker.submit(buy("comm-1"))
        fake.fill_working_orders(price=100.0)
        before = broker.fills(evening(SESSION).replace(hour=0))
        assert fake.release_commissions() == 1
        after = broker.fills(evening(SESSION).replace(hour=0))
    assert [f.commission for f in before] == [0.0]
    assert [(f.fill_id, f.commission) for f in after] == [(before[0].fill_id, 1.0)]


# 5. connectivity between TWS and IB (1100 / 1101 / 1102)


def test_nothing_is_sent_while_tws_has_lost_ib(fake):
    with make_broker(fake) as broker:
        broker.connect()
        fake.start_outage()
        with pytest.raises(BrokerUnavailable, match="1100"):
            broker.submit(buy("link-1"))
        assert fake._held == []  # nothing went into the outage
        fake.end_outage()
        assert broker.submit(buy("link-1")).status is OrderStatus.NEW
    assert len(fake.orders_with_ref("link-1")) == 1


def test_an_order_sent_into_an_outage_is_looked_for_after_1102_not_sent_twice(fake):
    fake.start_outage(announce=False)  # 1100 reaches the adapter only after its order left
    with make_broker(fake) as broker:
        with pytest.raises(BrokerUnavailable):
            broker.submit(buy("link-2"))
        fake.end_outage(transmit_held=True)
        report = broker.submit(buy("link-2"))
    assert report.status is OrderStatus.NEW
    assert len(fake.orders_with_ref("link-2")) == 1


def test_an_order_lost_in_an_outage_is_sent_again_the_same_day(fake):
    fake.start_outage(announce=False)
    with make_broker(fake) as broker:
        with pytest.raises(BrokerUnavailable):
            broker.submit(buy("link-3"))
        fake.end_outage(transmit_held=False)  # TWS never transmitted it
        assert broker.submit(buy("link-3")).status is OrderStatus.NEW
    assert len(fake.orders_with_ref("link-3")) == 1


# execution times


@pytest.fixture
def host_in_tokyo(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_execution_times_without_a_zone_are_read_in_the_tws_zone(fake, host_in_tokyo):
    fake.use_naive_execution_times("America/New_York")
    at = datetime(2031, 1, 7, 9, 30, 5, tzinfo=NEW_YORK)
    fake.roll_day(at)
    with make_broker(fake) as broker:
        broker.submit(buy("tz-1", session=None))
        fake.fill_working_orders()
        fills = broker.fills(datetime(2031, 1, 7, tzinfo=UTC))
    assert [f.filled_at for f in fills] == [at.astimezone(UTC)]


# what the ledger must do with them (record_fills is the order path's; see the note)


def test_the_ledger_takes_the_corrected_price_and_the_late_commission(fake, tmp_path):
    from trading_pipeline.storage.ledger import Ledger
    from trading_pipeline.storage.warehouse import Warehouse

    ledger = Ledger(Warehouse(tmp_path / "ledger.duckdb"))
    fake.delay_commissions = True
    since = evening(SESSION).replace(hour=0)
    with make_broker(fake) as broker:
        broker.submit(buy("led-1"))
        fake.fill_working_orders(price=100.0)
        ledger.record_fills(broker.fills(since), broker.name, SESSION)
        fake.release_commissions()
        fake.correct_execution("led-1", price=100.5)
        ledger.record_fills(broker.fills(since), broker.name, SESSION)
        name = broker.name
    rows = ledger.fills(name)
    assert rows["quantity"].sum() == 10
    assert (rows["price"].to_list(), rows["commission"].to_list()) == ([100.5], [1.0])
    revisions = ledger.warehouse.query("select old_price, new_price, old_commission, new_commission "
                                       "from ledger_fill_revisions order by recorded_at")
    assert revisions.rows() == [(100.0, 100.5, 0.0, 1.0)]
