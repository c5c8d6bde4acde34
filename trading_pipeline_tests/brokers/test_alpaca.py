"""The Alpaca adapter beyond the contract: real alpaca-py against the fake REST server.

Failure paths (403, 422, 429, 500, lost answers, a stalled or absent server) are driven
through the real SDK; sleeps between retries are recorded instead of slept.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from trading_pipeline.brokers.alpaca import LIVE_URL, PAPER_URL, AlpacaBroker, AlpacaConfig, translate
from trading_pipeline.brokers.base import BrokerError, BrokerUnavailable, OrderNotFound
from trading_pipeline.domain.orders import (
    InvalidOrder,
    OrderIntent,
    OrderStatus,
    OrderType,
    PositionReport,
    Side,
    TimeInForce,
)
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer, FakeOrder

KEY_ID = "FAKEKEYID-SHOULD-NOT-LEAK"
SECRET_KEY = "FAKESECRET-SHOULD-NOT-LEAK"
# Generous for a busy 2-core machine, so no ordinary request times out by accident; tests
# that stall the server on purpose use SHORT_TIMEOUT and count only the stalled requests.
TIMEOUT = 1.0
SHORT_TIMEOUT = 0.3
LOOKUP = "/v2/orders:by_client_order_id"


class Sleeps(list):
    """Records the retry backoff instead of sleeping it."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake():
    fake = FakeAlpaca(KEY_ID, SECRET_KEY)
    with FakeAlpacaServer(fake):
        yield fake
    assert not fake.crashes, fake.crashes[0]


@pytest.fixture
def sleeps():
    return Sleeps()


def make_broker(url: str, sleeps: Sleeps, *, key: str = KEY_ID, secret: str = SECRET_KEY,
                **limits) -> AlpacaBroker:
    limits.setdefault("timeout_seconds", TIMEOUT)
    config = AlpacaConfig(key, secret, paper=True, url_override=url, **limits)
    return AlpacaBroker(config, sleep=sleeps)


@pytest.fixture
def broker(fake, sleeps):
    with make_broker(fake.url, sleeps) as broker:
        yield broker


@pytest.fixture
def closed_port_url():
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def buy(cid: str, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=Side.BUY, quantity=quantity, **kw)


def sell(cid: str, quantity: float = 5, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=Side.SELL, quantity=quantity, **kw)


def order_posts(fake: FakeAlpaca):
    return fake.requests_to("POST", "/v2/orders")


# -- configuration ---------------------------------------------------------------------------


def test_from_values_names_the_missing_environment_variables():
    with pytest.raises(ValueError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaConfig.from_values(None, "  ", paper=True)
    with pytest.raises(ValueError, match="APCA_API_SECRET_KEY") as caught:
        AlpacaConfig.from_values(KEY_ID, None, paper=False)
    assert "APCA_API_KEY_ID" not in str(caught.value)


def test_from_values_builds_a_config_with_masked_secrets():
    config = AlpacaConfig.from_values(f" {KEY_ID} ", SECRET_KEY, paper=True,
                                      base_url="http://127.0.0.1:9/v2/", timeout_seconds=3)
    assert config.api_key_id.value == KEY_ID and config.api_secret_key.value == SECRET_KEY
    assert config.url_override == "http://127.0.0.1:9"  # the SDK appends /v2 itself
    assert config.timeout_seconds == 3
    for text in (repr(config), str(config), f"{config}", f"{config.api_key_id}"):
        assert KEY_ID not in text and SECRET_KEY not in text
    assert AlpacaConfig.from_values(KEY_ID, SECRET_KEY, paper=True, base_url="").url_override is None


@pytest.mark.parametrize(
    ("paper", "url", "message"),
    [
        (True, LIVE_URL, "live endpoint.*real money"),
        (False, PAPER_URL + "/v2", "paper endpoint"),
        (True, "paper-api.alpaca.markets", "must be an http"),
    ],
)
def test_endpoint_override_that_contradicts_the_mode_is_refused(paper, url, message):
    with pytest.raises(ValueError, match=message):
        AlpacaConfig(KEY_ID, SECRET_KEY, paper=paper, url_override=url)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("timeout_seconds", 0, "timeout_seconds"), ("max_attempts", 0, "max_attempts"),
     ("retry_base_delay", -1, "retry_base_delay"), ("paper", "yes", "paper must be")],
)
def test_bad_limits_are_refused_by_name(field, value, message):
    values = dict(paper=True) | {field: value}
    with pytest.raises(ValueError, match=message):
        AlpacaConfig(KEY_ID, SECRET_KEY, **values)


def test_paper_and_live_pick_alpacas_endpoints_without_network(sleeps, monkeypatch):
    from alpaca.common.enums import BaseURL

    def no_network(*args, **kwargs):
        raise AssertionError("building a broker must not connect anywhere")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert (PAPER_URL, LIVE_URL) == (BaseURL.TRADING_PAPER.value, BaseURL.TRADING_LIVE.value)
    paper = AlpacaBroker(AlpacaConfig(KEY_ID, SECRET_KEY, paper=True), sleep=sleeps)
    live = AlpacaBroker(AlpacaConfig(KEY_ID, SECRET_KEY, paper=False), sleep=sleeps)
    assert paper.endpoint == PAPER_URL
    assert live.endpoint == LIVE_URL
    assert "127.0.0.1" in AlpacaBroker(
        AlpacaConfig(KEY_ID, SECRET_KEY, paper=False, url_override="http://127.0.0.1:1"), sleep=sleeps
    ).endpoint
    assert KEY_ID not in repr(paper) and SECRET_KEY not in repr(live)


def test_importing_the_package_does_not_load_the_sdk():
    code = ("import sys, trading_pipeline.brokers.alpaca as a; a.AlpacaConfig; "
            "assert 'alpaca' not in sys.modules and 'pandas' not in sys.modules, 'sdk loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- translation (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "filled", "expected"),
    [("new", 0, OrderStatus.NEW), ("accepted", 0, OrderStatus.NEW), ("pending_cancel", 0, OrderStatus.NEW),
     ("partially_filled", 4, OrderStatus.PARTIALLY_FILLED), ("done_for_day", 3, OrderStatus.PARTIALLY_FILLED),
     ("calculated", 10, OrderStatus.FILLED), ("filled", 10, OrderStatus.FILLED),
     ("replaced", 0, OrderStatus.CANCELED), ("expired", 0, OrderStatus.EXPIRED),
     ("rejected", 0, OrderStatus.REJECTED)],
)
def test_alpaca_order_states_fold_into_ours(state, filled, expected):
    assert translate.order_status(state, filled, 10) is expected


def test_unknown_order_state_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="'frozen' is unknown"):
        translate.order_status("frozen", 0, 10)


def test_sdk_models_translate_to_reports():
    from alpaca.trading.models import Order, Position

    order = Order(**{**FakeOrder("t-1", "AAA", "sell", 10, "stop", "gtc", stop_price=90.0,
                                 status="replaced").as_json()})
    report = translate.order_report(order)
    assert (report.status, report.reason, report.order_type) == (
        OrderStatus.CANCELED, "replaced by another order", OrderType.STOP)
    assert report.avg_fill_price is None and report.side is Side.SELL
    short = Position(asset_id="904837e3-3b76-47ec-b432-046db621571b", symbol="BBB", exchange="NASDAQ",
                     asset_class="us_equity", avg_entry_price="101.5", qty="3", side="short",
                     cost_basis="304.5", current_price="99.25")
    assert translate.position_report(short) == PositionReport("BBB", -3.0, 101.5, 99.25)
    assert translate.parse_time("2024-01-02T14:30:00.123456789Z") == datetime(
        2024, 1, 2, 14, 30, 0, 123456, tzinfo=UTC)


def test_a_client_order_id_alpaca_cannot_take_is_refused_before_sending(fake, broker):
    with pytest.raises(InvalidOrder, match="longer than Alpaca's 128"):
        broker.submit(buy("x" * 129))
    assert fake.requests == []


# -- order payloads ------------------------------------------------------------------------------

PAYLOADS = [
    (buy("p-mkt"), {"type": "market", "side": "buy", "qty": 10.0, "time_in_force": "day"}),
    (buy("p-lmt", limit_price=95.5, order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC),
     {"type": "limit", "side": "buy", "qty": 10.0, "time_in_force": "gtc", "limit_price": 95.5}),
    (sell("p-stp", stop_price=90.0, order_type=OrderType.STOP),
     {"type": "stop", "side": "sell", "qty": 5.0, "time_in_force": "day", "stop_price": 90.0}),
    (sell("p-stl", stop_price=90.0, limit_price=89.1, order_type=OrderType.STOP_LIMIT,
          time_in_force=TimeInForce.GTC),
     {"type": "stop_limit", "side": "sell", "qty": 5.0, "time_in_force": "gtc", "stop_price": 90.0,
      "limit_price": 89.1}),
    (sell("p-trp", trail_percent=5.0, order_type=OrderType.TRAILING_STOP, time_in_force=TimeInForce.GTC),
     {"type": "trailing_stop", "side": "sell", "qty": 5.0, "time_in_force": "gtc", "trail_percent": 5.0}),
    (sell("p-tra", trail_amount=2.5, order_type=OrderType.TRAILING_STOP),
     {"type": "trailing_stop", "side": "sell", "qty": 5.0, "time_in_force": "day", "trail_price": 2.5}),
]


@pytest.mark.parametrize(("intent", "expected"), PAYLOADS, ids=[p[0].client_order_id for p in PAYLOADS])
def test_each_order_type_reaches_alpaca_as_its_own_payload(fake, broker, intent, expected):
    fake.set_position("AAA", 5)  # sells need shares: the fake is a cash account
    report = broker.submit(intent)
    body = order_posts(fake)[-1].body
    assert body == {"symbol": "AAA", "client_order_id": intent.client_order_id, **expected}
    assert all(type(body[k]) is float for k in body if k in ("qty", "limit_price", "stop_price",
                                                              "trail_percent", "trail_price"))
    assert report.status is OrderStatus.NEW and report.order_type is intent.order_type
    assert report.broker_order_id == fake.order(intent.client_order_id).id


def test_trailing_stop_follows_the_price_and_fills_when_hit(fake, broker):
    fake.set_position("AAA", 5)
    broker.submit(sell("trail-1", trail_percent=5.0, order_type=OrderType.TRAILING_STOP,
                       time_in_force=TimeInForce.GTC))
    fake.set_price("AAA", 110.0)
    fake.set_price("AAA", 105.0)  # 4.5 % below the high: not yet
    fake.settle()
    assert broker.order_status("trail-1").status is OrderStatus.NEW
    fake.set_price("AAA", 104.0)  # below 110 * 0.95 = 104.5
    fake.settle()
    done = broker.order_status("trail-1")
    assert done.status is OrderStatus.FILLED and done.avg_fill_price == pytest.approx(104.0)
    assert broker.positions() == []


# -- answers that are rejections -------------------------------------------------------------


def test_insufficient_buying_power_403_is_a_rejection_not_a_retry(fake, broker, sleeps):
    report = broker.submit(buy("too-big", quantity=5000))  # 500,000 against 100,000 cash
    assert report.status is OrderStatus.REJECTED
    assert "insufficient buying power" in report.reason and "403" in report.reason
    assert (report.client_order_id, report.quantity, report.symbol) == ("too-big", 5000, "AAA")
    assert len(order_posts(fake)) == 1 and sleeps == []
    assert fake.orders_with_client_id("too-big") == 0
    assert broker.order_status("too-big") is None


def test_422_is_a_rejection_with_alpacas_reason(fake, broker):
    report = broker.submit(buy("sub-penny", limit_price=99.123, order_type=OrderType.LIMIT))
    assert report.status is OrderStatus.REJECTED
    assert "sub-penny increment" in report.reason and "422" in report.reason
    fake.fail_next(422, message="qty must be a whole number for this asset")
    report = broker.submit(buy("odd-lot"))
    assert report.status is OrderStatus.REJECTED and "whole number" in report.reason
    assert len(order_posts(fake)) == 2


def test_403_outside_submit_is_a_clear_error_about_credentials(fake, broker, sleeps):
    fake.fail_next(403, method="GET", path="/v2/account", message="forbidden.")
    with pytest.raises(BrokerError, match="HTTP 403.*APCA_API_KEY_ID") as caught:
        broker.account()
    assert not isinstance(caught.value, BrokerUnavailable)
    assert len(fake.requests_to("GET", "/v2/account")) == 1 and sleeps == []


def test_wrong_keys_fail_submit_before_any_order_is_sent(fake, sleeps):
    with make_broker(fake.url, sleeps, key="OTHERKEY-1234") as wrong:
        with pytest.raises(BrokerError, match="HTTP 401.*APCA_API_SECRET_KEY"):
            wrong.submit(buy("wrong-keys"))
        with pytest.raises(BrokerError, match="HTTP 401"):
            wrong.positions()
    assert order_posts(fake) == []


def test_a_payload_the_sdk_cannot_read_is_a_broker_error(fake, broker):
    fake.fail_next(200, method="GET", path="/v2/account", message="not an account")
    with pytest.raises(BrokerError, match="cannot read"):
        broker.account()


# -- transient failures and exactly once ----------------------------------------------------


def test_429_then_success_places_one_order_and_the_sdk_does_not_sleep(fake, broker, sleeps):
    fake.fail_next(429)
    report = broker.submit(buy("rate-1"))
    assert report.status is OrderStatus.NEW
    assert fake.orders_with_client_id("rate-1") == 1
    assert len(order_posts(fake)) == 2
    assert len(sleeps) == 1  # our backoff ran: the SDK raised the 429 instead of retrying it


def test_429_that_persists_ends_in_broker_unavailable_after_bounded_attempts(fake, broker, sleeps):
    fake.fail_next(429, times=50)
    with pytest.raises(BrokerUnavailable, match="Alpaca did not answer submit after 3 attempts"):
        broker.submit(buy("rate-2"))
    assert len(order_posts(fake)) == 3  # with the SDK's own retry this would be 12, 9 s asleep
    assert len(sleeps) == 2
    assert fake.orders_with_client_id("rate-2") == 0


def test_500_is_retried_and_a_lasting_500_is_unavailable(fake, broker, sleeps):
    fake.fail_next(500)
    assert broker.submit(buy("err-1")).status is OrderStatus.NEW
    assert fake.orders_with_client_id("err-1") == 1
    fake.fail_next(500, method="GET", path="/v2/positions", times=10)
    with pytest.raises(BrokerUnavailable, match="positions after 3 attempts.*500"):
        broker.positions()
    assert len(fake.requests_to("GET", "/v2/positions")) == 3


def test_server_down_is_unavailable_after_bounded_retries(closed_port_url, sleeps):
    with make_broker(closed_port_url, sleeps, max_attempts=4) as down:
        for call in (down.account, down.positions, lambda: down.submit(buy("down-1"))):
            with pytest.raises(BrokerUnavailable, match="did not answer .* after 4 attempts") as caught:
                call()
            assert "ConnectionError" in str(caught.value)
    assert len(sleeps) == 9 and sleeps == sorted(sleeps[:3]) * 3  # backoff grows, then resets


def test_a_stalled_server_times_out_instead_of_hanging(fake, sleeps):
    fake.stall_next(method="GET", path="/v2/account", seconds=SHORT_TIMEOUT * 10, times=3)
    with make_broker(fake.url, sleeps, timeout_seconds=SHORT_TIMEOUT) as impatient:
        with pytest.raises(BrokerUnavailable, match="account after 3 attempts.*Timeout"):
            impatient.account()
    assert len(fake.requests_to("GET", "/v2/account")) == 3


@pytest.mark.parametrize("mode", ["close", "delay"])
def test_answer_lost_after_accept_then_retry_leaves_one_order(fake, broker, mode):
    fake.drop_answer_to_next_order(mode, delay=TIMEOUT * 3)
    report = broker.submit(buy(f"lost-{mode}"))
    assert report.status is OrderStatus.NEW and report.client_order_id == f"lost-{mode}"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", LOOKUP), ("POST", "/v2/orders"), ("GET", LOOKUP)  # gave up, looked, found it
    ]
    assert broker.submit(buy(f"lost-{mode}")).broker_order_id == report.broker_order_id
    assert fake.orders_with_client_id(f"lost-{mode}") == 1


def test_duplicate_client_order_id_answer_reports_the_existing_order(fake, broker):
    broker.submit(buy("dup-1"))
    fake.fail_next(404, method="GET", path=LOOKUP, message="order not found")  # a stale lookup
    report = broker.submit(buy("dup-1"))
    assert report.status is OrderStatus.NEW and report.broker_order_id == fake.order("dup-1").id
    assert fake.orders_with_client_id("dup-1") == 1
    assert len(order_posts(fake)) == 2  # the second was refused as a duplicate


def test_forgotten_order_has_no_status_and_cannot_be_canceled(fake, broker):
    broker.submit(buy("gone-1"))
    fake.forget_order("gone-1")
    assert broker.order_status("gone-1") is None
    with pytest.raises(OrderNotFound, match="gone-1"):
        broker.cancel("gone-1")


# -- lifecycle, fills, positions, account ----------------------------------------------------


def test_partial_then_full_fill_with_one_fill_report_per_execution(fake, broker):
    start = datetime.now(UTC) - timedelta(minutes=1)
    broker.submit(buy("life-1", quantity=10))
    fake.fill("life-1", quantity=4, price=100.0)
    partial = broker.order_status("life-1")
    assert partial.status is OrderStatus.PARTIALLY_FILLED
    assert (partial.filled_quantity, partial.avg_fill_price) == (4, 100.0)
    assert "life-1" in {o.client_order_id for o in broker.open_orders()}
    fake.fill("life-1", price=101.0)
    done = broker.order_status("life-1")
    assert done.status is OrderStatus.FILLED and done.filled_quantity == 10
    assert done.avg_fill_price == pytest.approx((4 * 100 + 6 * 101) / 10)
    assert broker.open_orders() == []
    fills = broker.fills(since=start)
    assert [(f.client_order_id, f.quantity, f.price, f.side) for f in fills] == [
        ("life-1", 4, 100.0, Side.BUY), ("life-1", 6, 101.0, Side.BUY)]
    assert len({f.fill_id for f in fills}) == 2 and all(f.filled_at >= start for f in fills)
    assert broker.fills(since=datetime.now(UTC) + timedelta(minutes=1)) == []


def test_fills_are_read_page_by_page(fake, broker):
    start = datetime.now(UTC) - timedelta(minutes=1)
    broker.submit(buy("many-1", quantity=130))
    for _ in range(130):
        fake.fill("many-1", quantity=1)
    fills = broker.fills(since=start)
    assert len(fills) == 130 and len({f.fill_id for f in fills}) == 130
    pages = fake.requests_to("GET", "/v2/account/activities/FILL")
    assert len(pages) == 2 and pages[1].query["page_token"] == fills[99].fill_id
    assert len(fake.requests_to("GET", f"/v2/orders/{fake.order('many-1').id}")) == 0  # known id


def test_fills_of_orders_placed_elsewhere_are_looked_up_by_broker_id(fake, sleeps, broker):
    broker.submit(buy("elsewhere-1"))
    fake.settle()
    with make_broker(fake.url, sleeps) as fresh:  # a new process knows no order ids yet
        fills = fresh.fills(since=datetime.now(UTC) - timedelta(minutes=1))
    assert [f.client_order_id for f in fills] == ["elsewhere-1"]
    assert len(fake.requests_to("GET", f"/v2/orders/{fake.order('elsewhere-1').id}")) == 1


def test_positions_and_account_follow_the_fills(fake, broker):
    broker.submit(buy("acct-1", quantity=10))
    fake.settle()  # 10 AAA at 100
    fake.set_position("BBB", -3, avg_price=101.0)
    held = {p.symbol: p for p in broker.positions()}
    assert held["AAA"].quantity == 10 and held["AAA"].avg_entry_price == 100.0
    assert held["BBB"].quantity == -3 and held["BBB"].market_price == 101.0
    account = broker.account()
    assert account.cash == pytest.approx(99_000.0)
    assert account.equity == pytest.approx(99_000 + 1_000 - 303)
    assert account.buying_power == pytest.approx(99_000.0)
    assert account.currency == "USD" and account.extra["trading_blocked"] == 0.0
    assert account.extra["portfolio_value"] == pytest.approx(account.equity)


def test_cancel_by_client_order_id(fake, broker):
    broker.submit(buy("cxl-1", limit_price=50.0, order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC))
    assert broker.cancel("cxl-1").status is OrderStatus.CANCELED
    assert len(fake.requests_to("DELETE", f"/v2/orders/{fake.order('cxl-1').id}")) == 1
    assert broker.cancel("cxl-1").status is OrderStatus.CANCELED  # no second DELETE needed
    broker.submit(buy("cxl-2"))
    fake.settle()
    assert broker.cancel("cxl-2").status is OrderStatus.FILLED
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert len(deletes) == 1
    with pytest.raises(OrderNotFound):
        broker.cancel("cxl-never")


def test_cancel_refused_as_not_cancelable_reports_the_order_as_it_is(fake, broker):
    broker.submit(buy("cxl-3"))
    fake.fail_next(422, method="DELETE", path="/v2/orders/", message="order is not cancelable")
    assert broker.cancel("cxl-3").status is OrderStatus.NEW


def test_cancel_waits_briefly_for_alpacas_asynchronous_cancel(fake, broker, sleeps):
    fake.slow_cancels(reads=2)
    broker.submit(buy("cxl-4", limit_price=50.0, order_type=OrderType.LIMIT))
    assert broker.cancel("cxl-4").status is OrderStatus.CANCELED
    assert sleeps == [0.2, 0.2]
    fake.slow_cancels(reads=50)  # never confirmed while we wait: reported as still working
    broker.submit(buy("cxl-5", limit_price=50.0, order_type=OrderType.LIMIT))
    still = broker.cancel("cxl-5")
    assert still.status is OrderStatus.NEW and still.status.is_open
    assert "cxl-5" in {o.client_order_id for o in broker.open_orders()}
    assert len(sleeps) == 2 + 4


# -- secrets -------------------------------------------------------------------------------------


def test_credentials_appear_nowhere_through_failures(fake, closed_port_url, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    seen: list[str] = []
    with make_broker(fake.url, sleeps, timeout_seconds=SHORT_TIMEOUT) as broker:
        seen += [repr(broker), str(broker), repr(broker.config), str(broker.config)]
        fake.fail_next(403, message=f"key {KEY_ID} with secret {SECRET_KEY} may not trade")
        rejected = broker.submit(buy("leak-1"))
        assert rejected.status is OrderStatus.REJECTED and "***" in rejected.reason
        seen += [repr(rejected), rejected.reason]
        fake.fail_next(403, method="GET", path="/v2/account", message=f"bad key {KEY_ID}")
        fake.fail_next(500, method="GET", path="/v2/positions", times=3, message=f"echo {SECRET_KEY}")
        fake.stall_next(method="GET", path="/v2/orders", seconds=SHORT_TIMEOUT * 10, times=3)
        failing = [broker.account, broker.positions, broker.open_orders]
        for call in failing:
            with pytest.raises(BrokerError) as caught:
                call()
            seen += [str(caught.value), repr(caught.value)]
    with make_broker(closed_port_url, sleeps) as down, pytest.raises(BrokerUnavailable) as caught:
        down.submit(buy("leak-2"))
    seen += [str(caught.value), repr(caught.value)]
    with make_broker(fake.url, sleeps, key="WRONG-KEY-ID") as wrong, pytest.raises(BrokerError) as caught:
        wrong.account()
    seen += [str(caught.value), repr(caught.value)]
    out, err = capsys.readouterr()
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert logged  # debug logging (urllib3's too) was on and captured
    for text in [*seen, out, err, logged]:
        assert KEY_ID not in text and SECRET_KEY not in text
