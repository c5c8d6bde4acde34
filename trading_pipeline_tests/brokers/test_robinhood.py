"""Robinhood adapter beyond the contract: config, TOTP login, token file, order payloads,
exactly once by ref_id, failures, rate limits and secrets."""

from __future__ import annotations

import json
import pickle
import stat
from datetime import UTC, datetime, timedelta

import pytest

from trading_pipeline.brokers.base import BrokerError, BrokerUnavailable, OrderNotFound
from trading_pipeline.brokers.rate_limit import Bucket, RateLimiter
from trading_pipeline.brokers.robinhood import (
    RobinhoodConfig,
    RobinhoodLoginError,
    RobinhoodModeError,
    ensure_environment_allowed,
)
from trading_pipeline.brokers.robinhood import translate
from trading_pipeline.brokers.robinhood.transport import ORDER_BUCKET, ORDERS, REQUESTS
from trading_pipeline.brokers.secrets import Secret
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from trading_pipeline_tests.brokers.fakes.robinhood import (
    FAKE_PASSWORD,
    FAKE_TOTP_SECRET,
    FAKE_USERNAME,
    RobinhoodRig,
)
from trading_pipeline_tests.brokers.fakes.robinhood.wiring import APPROVED_DEVICE, OTHER_TOTP_SECRET, write_session_file
from trading_pipeline_tests.brokers.test_rate_limit import max_in_any_window

LONG_AGO = datetime.now(UTC) - timedelta(days=30)


@pytest.fixture
def rig(tmp_path):
    rig = RobinhoodRig(tmp_path)
    yield rig
    rig.close()


def order(cid: str, side: Side = Side.BUY, quantity: float = 10, symbol: str = "AAA", **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol=symbol, side=side, quantity=quantity, **kw)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- environment and configuration -----------------------------------------------------------


def test_paper_is_refused_with_a_clear_error():
    with pytest.raises(RobinhoodModeError, match="Robinhood has no paper mode") as refused:
        ensure_environment_allowed("paper")
    assert "TRADING_BROKER=alpaca or ibkr" in str(refused.value)
    assert "TRADING_ENV=live" in str(refused.value)
    with pytest.raises(RobinhoodModeError, match="real money only"):
        ensure_environment_allowed("local")
    ensure_environment_allowed("live")
    ensure_environment_allowed(" LIVE ")


def test_missing_credentials_are_named_by_their_environment_variables(tmp_path):
    with pytest.raises(ValueError) as missing:
        RobinhoodConfig.from_values(None, "  ", FAKE_TOTP_SECRET, tmp_path)
    text = str(missing.value)
    assert "ROBINHOOD_USERNAME" in text and "ROBINHOOD_PASSWORD" in text
    assert "ROBINHOOD_TOTP_SECRET" not in text.split(":")[0]  # not reported missing


def test_a_totp_secret_that_is_not_base32_is_refused_without_echoing_it(tmp_path):
    bad = "not-base32-SHOULD-NOT-LEAK!"
    with pytest.raises(ValueError, match="ROBINHOOD_TOTP_SECRET is not a usable TOTP secret") as refused:
        RobinhoodConfig.from_values(FAKE_USERNAME, FAKE_PASSWORD, bad, tmp_path)
    assert bad not in str(refused.value)


def test_credentials_already_wrapped_as_secrets_keep_their_values(tmp_path):
    config = RobinhoodConfig.from_values(
        Secret(FAKE_USERNAME), Secret(FAKE_PASSWORD), Secret(FAKE_TOTP_SECRET), tmp_path
    )
    assert config.username.value == FAKE_USERNAME and config.password.value == FAKE_PASSWORD
    assert config.totp_secret.value == FAKE_TOTP_SECRET


def test_config_masks_credentials_and_resolves_the_session_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RobinhoodConfig.from_values(FAKE_USERNAME, FAKE_PASSWORD, FAKE_TOTP_SECRET, "state")
    shown = f"{config!r} {config} {config.username} {config.password:>10}"
    for secret in (FAKE_USERNAME, FAKE_PASSWORD, FAKE_TOTP_SECRET):
        assert secret not in shown
    assert config.session_dir == tmp_path / "state"
    assert config.username.value == FAKE_USERNAME


# -- login -------------------------------------------------------------------------------------


def test_login_sends_a_totp_code_and_keeps_the_token_in_the_session_folder_only(
    rig, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    broker = rig.broker()

    broker.login()

    assert rig.fake.token_requests == 1 and len(rig.fake.mfa_codes) == 1
    assert rig.fake.totp.verify(rig.fake.mfa_codes[0], valid_window=1)
    token_file = rig.folder / "session" / "robinhood.pickle"
    with token_file.open("rb") as handle:
        stored = pickle.load(handle)
    assert stored["access_token"] in rig.fake.tokens  # the real, working token
    assert mode(token_file) == 0o600
    assert mode(token_file.parent) == 0o700
    assert list(home.rglob("*")) == []  # nothing in the user's home folder (no ~/.tokens)


def test_a_second_login_reuses_the_stored_token(rig):
    first = rig.broker()
    first.login()
    first.close()
    second = rig.broker()
    assert second.account().equity > 0
    assert rig.fake.token_requests == 1  # no second password + MFA login


def test_an_expired_session_logs_in_again_and_carries_on(rig):
    broker = rig.broker()
    broker.login()
    rig.fake.revoke_tokens()
    assert broker.account().cash == pytest.approx(100_000)
    assert rig.fake.token_requests == 2


def test_a_wrong_mfa_code_fails_at_once_saying_mfa_without_secrets(rig):
    broker = rig.broker(totp_secret=OTHER_TOTP_SECRET)
    with pytest.raises(RobinhoodLoginError) as failed:
        broker.login()
    text = str(failed.value)
    assert "MFA code was rejected" in text and "ROBINHOOD_TOTP_SECRET" in text
    for secret in (FAKE_USERNAME, FAKE_PASSWORD, FAKE_TOTP_SECRET, OTHER_TOTP_SECRET):
        assert secret not in text and secret not in repr(failed.value)
    assert rig.fake.token_requests == 1  # a refusal is not retried
    with (rig.folder / "session" / "robinhood.pickle").open("rb") as handle:
        assert pickle.load(handle)["device_token"]  # kept: the device stays approved


def test_a_wrong_password_names_the_credential_variables(rig):
    broker = rig.broker(password="WRONGPASS-SHOULD-NOT-LEAK")
    with pytest.raises(RobinhoodLoginError) as failed:
        broker.account()
    text = str(failed.value)
    assert "ROBINHOOD_USERNAME" in text and "ROBINHOOD_PASSWORD" in text and "MFA" not in text
    assert "WRONGPASS-SHOULD-NOT-LEAK" not in text


def test_device_verification_is_refused_instead_of_waiting_for_approval(rig):
    rig.fake.require_device_verification()
    broker = rig.broker()
    with pytest.raises(RobinhoodLoginError, match="approved"):
        broker.login()
    assert not any("pathfinder" in path for _, _, path in rig.fake.requests)
    assert rig.clock.sleeps == []  # robin_stocks' 5 s polling never started


# -- what the fake receives for each order type ------------------------------------------------

PAYLOAD_CASES = {
    # a market buy is a limit at the ask (100.05) with Robinhood's 5 % collar
    "market buy": (dict(), {"type": "limit", "trigger": "immediate", "price": "100.05",
                            "preset_percent_limit": "0.05", "time_in_force": "gfd", "quantity": "10"}),
    "market sell": (dict(side=Side.SELL), {"type": "market", "trigger": "immediate",
                                           "time_in_force": "gfd", "price": None}),
    "limit buy gtc": (dict(order_type=OrderType.LIMIT, limit_price=95.0, time_in_force=TimeInForce.GTC),
                      {"type": "limit", "trigger": "immediate", "price": "95.0", "time_in_force": "gtc"}),
    "stop loss sell": (dict(side=Side.SELL, order_type=OrderType.STOP, stop_price=90.0),
                       {"type": "market", "trigger": "stop", "stop_price": "90.0", "price": None}),
    "stop buy": (dict(order_type=OrderType.STOP, stop_price=110.0),
                 {"type": "limit", "trigger": "stop", "stop_price": "110.0", "price": "110.0",
                  "preset_percent_limit": "0.05"}),
    "stop limit sell": (dict(side=Side.SELL, order_type=OrderType.STOP_LIMIT, stop_price=90.0,
                             limit_price=89.5, time_in_force=TimeInForce.GTC),
                        {"type": "limit", "trigger": "stop", "stop_price": "90.0", "price": "89.5",
                         "time_in_force": "gtc"}),
    "trailing percent sell": (dict(side=Side.SELL, order_type=OrderType.TRAILING_STOP, trail_percent=5.0,
                                   time_in_force=TimeInForce.GTC),
                              {"type": "market", "trigger": "stop", "stop_price": 95.0, "quantity": 10,
                               "trailing_peg": {"type": "percentage", "percentage": "5.0"}}),
    "trailing amount sell": (dict(side=Side.SELL, order_type=OrderType.TRAILING_STOP, trail_amount=2.5,
                                  time_in_force=TimeInForce.GTC),
                             {"type": "market", "trigger": "stop", "stop_price": 97.5,
                              "trailing_peg": {"type": "price",
                                               "price": {"amount": 2.5, "currency_code": "USD"}}}),
    "fractional market buy": (dict(quantity=0.5),
                              {"type": "limit", "quantity": "0.5", "time_in_force": "gfd"}),
}


@pytest.mark.parametrize("case", list(PAYLOAD_CASES))
def test_each_order_type_reaches_robinhood_as_robin_stocks_sends_it(rig, case):
    kw, expected = PAYLOAD_CASES[case]
    rig.fake.set_position("AAA", 20)  # so sells are covered
    broker = rig.broker()

    report = broker.submit(order(f"payload-{case}", **kw))

    received = rig.fake.received_orders[-1]
    payload = received["payload"]
    for key, value in expected.items():
        assert payload.get(key) == value, f"{case}: {key}={payload.get(key)!r}, expected {value!r}"
    is_trailing = "trailing" in case
    assert ("json" in received["content_type"]) is is_trailing  # robin_stocks posts trails as JSON
    assert payload["instrument"] == rig.fake.instruments["AAA"]["url"]
    assert payload["account"] == rig.fake.account_url
    assert report.status is OrderStatus.NEW
    assert report.order_type is order("x", **kw).order_type  # our type, despite the collar
    assert report.broker_order_id in rig.fake.orders


@pytest.mark.parametrize(
    "kw, why",
    [
        (dict(quantity=1.5, order_type=OrderType.LIMIT, limit_price=95.0), "market orders only"),
        (dict(quantity=1.5, time_in_force=TimeInForce.GTC), "good for the day only"),
    ],
)
def test_fractional_orders_robinhood_cannot_take_are_rejected_without_sending(rig, kw, why):
    report = rig.broker().submit(order("frac", **kw))
    assert report.status is OrderStatus.REJECTED and why in report.reason
    assert rig.fake.order_posts() == []


def test_close_logs_out_of_robin_stocks_and_unmounts_the_transport(rig):
    from robin_stocks.robinhood import globals as rh_globals
    from robin_stocks.robinhood import helper as rh_helper

    broker = rig.broker()
    broker.login()
    assert rh_helper.LOGGED_IN and "Authorization" in rh_globals.SESSION.headers
    mounted = rh_globals.SESSION.get_adapter("https://api.robinhood.com/orders/")
    broker.close()
    assert not rh_helper.LOGGED_IN and "Authorization" not in rh_globals.SESSION.headers
    assert rh_globals.SESSION.get_adapter("https://api.robinhood.com/orders/") is not mounted


# -- exactly once --------------------------------------------------------------------------------


def test_timeout_after_accept_then_retry_leaves_one_order(rig):
    broker = rig.broker()
    rig.fake.drop_answer_to_next_accepted_order()

    first = broker.submit(order("lost-answer"))  # re-sent: refused as a reused ref_id, then found
    again = broker.submit(order("lost-answer"))

    assert len(rig.fake.orders) == 1 and len(rig.fake.order_posts()) == 2
    (only,) = rig.fake.orders
    assert first.broker_order_id == again.broker_order_id == only
    assert first.status is OrderStatus.NEW and first.client_order_id == "lost-answer"


def test_a_real_read_timeout_after_accept_is_found_by_its_ref_id(rig):
    broker = rig.broker(timeout_seconds=1.0)
    broker.login()
    rig.fake.slow_next_answer(2.5, method="POST", path="/orders/")  # booked, answered too late

    report = broker.submit(order("slow-answer", order_type=OrderType.LIMIT, limit_price=90.0))

    assert len(rig.fake.orders) == 1 and len(rig.fake.order_posts()) == 2
    assert report.broker_order_id in rig.fake.orders
    lookups = [p for _, m, p in rig.fake.requests if (m, p) == ("GET", "/orders/")]
    assert len(lookups) == 1  # none before the send; one after the repeat was refused


def test_an_answer_lost_while_robinhood_went_down_is_found_by_the_next_run(rig):
    broker = rig.broker()
    broker.login()
    rig.fake.drop_answer_to_next_accepted_order()
    rig.fake.fail_next(500, method="GET", path="/orders/", times=100)  # no look-up can succeed
    with pytest.raises(BrokerUnavailable):
        broker.submit(order("crash-window"))
    broker.close()
    rig.fake.clear_failures()

    # hours later, another process: the repeat is refused by its ref_id, and the order is
    # looked for as far back as the recorded first attempt
    later = datetime.now(UTC) + timedelta(hours=3)
    rerun = rig.broker(now=lambda: later)
    report = rerun.submit(order("crash-window"))

    assert len(rig.fake.orders) == 1
    assert report.broker_order_id in rig.fake.orders


def test_orders_of_the_same_shape_with_other_client_ids_are_each_placed(rig):
    broker = rig.broker()
    a = broker.submit(order("same-shape-a"))
    b = broker.submit(order("same-shape-b"))
    assert a.broker_order_id != b.broker_order_id
    assert len(rig.fake.orders) == 2


def test_the_order_map_is_private_and_survives_a_restart(rig):
    first = rig.broker()
    placed = first.submit(order("persisted", order_type=OrderType.LIMIT, limit_price=90.0))
    first.close()

    map_file = rig.folder / "session" / "robinhood_orders.json"
    entries = json.loads(map_file.read_text())["orders"]
    assert entries["persisted"]["order_id"] == placed.broker_order_id
    assert mode(map_file) == 0o600
    leftovers = {p.name for p in map_file.parent.iterdir()}
    assert leftovers == {"robinhood_orders.json", "robinhood_orders.lock", "robinhood.pickle",
                         "robinhood.pickle.bak"}

    second = rig.broker()
    assert second.order_status("persisted").broker_order_id == placed.broker_order_id
    again = second.submit(order("persisted", order_type=OrderType.LIMIT, limit_price=90.0))
    assert again.status is OrderStatus.NEW
    assert len(rig.fake.order_posts()) == 1


def test_an_order_robinhood_forgot_is_not_sent_again(rig):
    broker = rig.broker()
    placed = broker.submit(order("forgotten"))
    rig.fake.forget_order(placed.broker_order_id)
    assert broker.order_status("forgotten") is None
    with pytest.raises(BrokerError, match="not sending it again"):
        broker.submit(order("forgotten"))
    assert len(rig.fake.order_posts()) == 1


def test_orders_placed_by_hand_are_listed_and_cancelable(rig, tmp_path):
    write_session_file(tmp_path / "phone-app", APPROVED_DEVICE)  # the same approved device
    by_hand = rig.broker(session_dir=tmp_path / "phone-app")
    placed = by_hand.submit(order("typed-in-app", order_type=OrderType.LIMIT, limit_price=80.0))
    by_hand.close()

    broker = rig.broker()
    (listed,) = broker.open_orders()
    assert listed.client_order_id == f"robinhood-{placed.broker_order_id}"
    assert listed.symbol == "AAA" and listed.order_type is OrderType.LIMIT
    assert broker.cancel(listed.client_order_id).status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        broker.cancel("never-sent")


# -- reports ---------------------------------------------------------------------------------------


def test_partial_fills_and_fills_across_pages(tmp_path):
    rig = RobinhoodRig(tmp_path, page_size=2)
    try:
        broker = rig.broker()
        ids = [broker.submit(order(f"paged-{i}", quantity=4)).broker_order_id for i in range(3)]
        rig.fake.fill_order(ids[0], quantity=1, price=99.0)
        rig.fake.fill_order(ids[0], quantity=3, price=101.0)
        rig.fake.fill_order(ids[1], quantity=2, price=100.0)

        fills = broker.fills(since=LONG_AGO)
        partial = broker.order_status("paged-1")
        done = broker.order_status("paged-0")
    finally:
        rig.close()
    assert sorted((f.client_order_id, f.quantity, f.price) for f in fills) == [
        ("paged-0", 1.0, 99.0), ("paged-0", 3.0, 101.0), ("paged-1", 2.0, 100.0)]
    assert partial.status is OrderStatus.PARTIALLY_FILLED and partial.filled_quantity == 2
    assert done.status is OrderStatus.FILLED and done.avg_fill_price == pytest.approx(100.5)
    assert any(path == "/orders/" and method == "GET" for _, method, path in rig.fake.requests)


def test_fills_before_since_are_left_out(rig):
    broker = rig.broker()
    placed = broker.submit(order("old-fill"))
    rig.fake.fill_order(placed.broker_order_id)
    assert broker.fills(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(broker.fills(since=LONG_AGO)) == 1


def test_positions_and_account_from_robinhood(rig):
    rig.fake.set_position("BBB", 7, average_price=48.0)
    broker = rig.broker()
    (position,) = broker.positions()
    account = broker.account()
    assert (position.symbol, position.quantity, position.avg_entry_price) == ("BBB", 7.0, 48.0)
    assert account.cash == pytest.approx(100_000)
    assert account.equity == pytest.approx(100_000 + 7 * 50.0)


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_refused_order_is_a_rejected_report_with_the_reason(rig, status):
    broker = rig.broker()
    broker.login()
    rig.fake.fail_next(status, method="POST", path="/orders/", body={"detail": "Account is restricted."})
    report = broker.submit(order(f"refused-{status}"))
    assert report.status is OrderStatus.REJECTED
    assert "Account is restricted." in report.reason and f"HTTP {status}" in report.reason
    assert len(rig.fake.order_posts()) == 1  # an answer, not retried


def test_robinhoods_own_rejection_reason_is_kept(rig):
    report = rig.broker().submit(order("no-shares", side=Side.SELL, quantity=5))
    assert report.status is OrderStatus.REJECTED and "Not enough shares to sell." in report.reason


def test_an_unknown_symbol_is_rejected_without_sending(rig):
    report = rig.broker().submit(order("unknown", symbol="ZZZZ"))
    assert report.status is OrderStatus.REJECTED and "ZZZZ" in report.reason
    assert rig.fake.order_posts() == []


@pytest.mark.parametrize("status", [500, 429])
def test_transient_errors_on_submit_are_retried_and_send_once(rig, status):
    broker = rig.broker()
    broker.login()
    rig.fake.fail_next(status, method="POST", path="/orders/")
    report = broker.submit(order(f"transient-{status}"))
    assert report.status is OrderStatus.NEW
    assert len(rig.fake.orders) == 1 and len(rig.fake.order_posts()) == 2


def test_a_500_on_a_lookup_is_never_mistaken_for_no_orders(rig):
    broker = rig.broker()
    broker.login()
    rig.fake.fail_next(500, method="GET", path="/orders/", times=100)
    with pytest.raises(BrokerUnavailable, match="Robinhood did not answer list open orders after 3 attempts"):
        broker.open_orders()
    assert sum(1 for _, m, p in rig.fake.requests if (m, p) == ("GET", "/orders/")) == 3


def test_a_broker_that_is_down_fails_clearly(rig):
    broker = rig.broker()
    rig.fake.stop()
    expected = "Robinhood did not answer read the account after 3 attempts"
    with pytest.raises(BrokerUnavailable, match=expected) as down:
        broker.account()
    assert "POST /oauth2/token/: no answer (ConnectionError)" in str(down.value)


def test_a_refused_lookup_is_an_error_naming_the_operation(rig):
    broker = rig.broker()
    broker.login()
    rig.fake.fail_next(403, method="GET", path="/positions/", body={"detail": "Forbidden."})
    with pytest.raises(BrokerError, match="refused to list positions .*Forbidden"):
        broker.positions()


# -- rate limits on the wire ----------------------------------------------------------------------


def test_every_request_the_adapter_makes_stays_within_five_per_fifteen_seconds(rig):
    broker = rig.broker()
    for i in range(3):
        broker.submit(order(f"paced-{i}", order_type=OrderType.LIMIT, limit_price=90.0 + i))
    broker.open_orders()
    broker.account()

    stamps = [at for at, _, _ in rig.fake.requests]  # virtual time at which each arrived
    assert len(stamps) > 10  # several windows' worth
    assert max_in_any_window(stamps, 15.0) == 5


def test_orders_and_cancels_reach_robinhood_at_least_two_seconds_apart(rig):
    roomy = RateLimiter({REQUESTS: Bucket(100, 15.0), ORDERS: ORDER_BUCKET}, clock=rig.clock,
                        sleep=rig.clock.sleep)
    broker = rig.broker(limiter=roomy)
    for i in range(3):
        broker.submit(order(f"spaced-{i}", order_type=OrderType.LIMIT, limit_price=90.0 + i))
    broker.cancel("spaced-0")

    actions = [at for at, method, path in rig.fake.requests
               if method == "POST" and path.startswith("/orders/")]
    assert len(actions) == 4
    assert min(b - a for a, b in zip(actions, actions[1:])) >= 2.0 - 1e-9


# -- secrets -------------------------------------------------------------------------------------


def test_secrets_never_leak_through_failures(rig, caplog, capsys):
    caplog.set_level("DEBUG")
    seen: list[str] = []

    def attempt(action):
        try:
            return action()
        except Exception as error:  # every failure text is inspected below
            seen.extend([str(error), repr(error)])
            return None

    attempt(rig.broker(totp_secret=OTHER_TOTP_SECRET).login)  # MFA refused
    broker = rig.broker()
    seen.extend([repr(broker), repr(broker.config), str(broker.config)])
    # Robinhood echoing the username in a refusal must still not leak it
    rig.fake.fail_next(403, method="POST", path="/orders/",
                       body={"detail": f"user {FAKE_USERNAME} may not trade"})
    refused = attempt(lambda: broker.submit(order("leak-403")))
    seen.extend([refused.reason, repr(refused)])
    rig.fake.fail_next(500, times=100)
    attempt(broker.account)
    rig.fake.clear_failures()
    rig.fake.slow_next_answer(1.0, method="GET", path="/positions/")
    slow = rig.broker(timeout_seconds=0.2)
    attempt(slow.positions)
    slow.close()  # hands robin_stocks' session back to `broker`
    rig.fake.stop()
    attempt(lambda: broker.submit(order("leak-down")))

    captured = capsys.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, *seen])
    assert "*** may not trade" in everything  # the echoed username was scrubbed, not dropped
    assert "robin_stocks printed: Starting login process" in caplog.text  # kept, at DEBUG
    assert "MFA code was rejected" in everything and "did not answer" in everything
    for secret in (FAKE_USERNAME, FAKE_PASSWORD, FAKE_TOTP_SECRET, OTHER_TOTP_SECRET,
                   *rig.fake.issued_tokens):
        assert secret not in everything, f"{secret[:6]}... leaked"
    assert captured.out == "" and captured.err == ""  # robin_stocks' prints are captured


# -- pure translation ------------------------------------------------------------------------------


def robinhood_order(**fields) -> dict:
    base = {"id": "rh-1", "instrument": "https://api.robinhood.com/instruments/i-aaa/", "side": "buy",
            "quantity": "10.00000000", "type": "limit", "trigger": "immediate", "time_in_force": "gfd",
            "price": "100.05000000", "stop_price": None, "trailing_peg": None, "state": "confirmed",
            "cumulative_quantity": "0", "average_price": None,
            "created_at": "2026-01-05T15:00:00.000000Z", "updated_at": "2026-01-05T15:00:01Z"}
    return {**base, **fields}


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(type="market", trigger="immediate"), OrderType.MARKET),
        (dict(type="limit", trigger="immediate"), OrderType.LIMIT),
        (dict(type="market", trigger="stop"), OrderType.STOP),
        (dict(type="limit", trigger="stop"), OrderType.STOP_LIMIT),
        (dict(type="market", trigger="stop", trailing_peg={"type": "price"}), OrderType.TRAILING_STOP),
    ],
)
def test_order_type_of_an_order_placed_elsewhere_is_inferred(fields, expected):
    assert translate.infer_order_type(robinhood_order(**fields)) is expected


@pytest.mark.parametrize(
    "state, status",
    [("queued", OrderStatus.NEW), ("confirmed", OrderStatus.NEW),
     ("partially_filled", OrderStatus.PARTIALLY_FILLED), ("filled", OrderStatus.FILLED),
     ("cancelled", OrderStatus.CANCELED), ("rejected", OrderStatus.REJECTED),
     ("failed", OrderStatus.REJECTED)],
)
def test_robinhood_states_map_to_domain_statuses(state, status):
    assert translate.order_status(state) is status


def test_an_unknown_state_is_a_clear_error():
    with pytest.raises(ValueError, match="order state this adapter does not know: 'halted'"):
        translate.order_status("halted")


def test_rejection_reasons_read_every_body_shape():
    assert translate.rejection_reason({"detail": "No."}, 400) == "Robinhood refused the order (HTTP 400): No."
    assert "price: A limit order needs a price." in translate.rejection_reason(
        {"price": ["A limit order needs a price."]}, 400)
    assert translate.rejection_reason(None, 422).endswith("no reason given")
