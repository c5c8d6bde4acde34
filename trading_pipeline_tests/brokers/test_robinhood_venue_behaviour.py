"""What the real Robinhood does that a first fake did not (issue 13, findings 6 to 8), through
robin_stocks against the fake on 127.0.0.1: device approval and the device token across a
refused login, ref_id as the idempotency key, order states and history the adapter must read
without failing, and the collar on a market buy."""

from __future__ import annotations

import pickle
import stat
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from trading_pipeline import cli
from trading_pipeline.brokers.base import BrokerError
from trading_pipeline.brokers.robinhood import RobinhoodLoginError, robinhood_rate_limiter
from trading_pipeline.brokers.robinhood.login import first_login
from trading_pipeline.brokers.robinhood.translate import ref_id_for
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side
from trading_pipeline_tests.brokers.fakes.robinhood import LoopbackTransport, RobinhoodRig
from trading_pipeline_tests.brokers.fakes.robinhood.market import robinhood_time_now
from trading_pipeline_tests.brokers.fakes.robinhood.wiring import APPROVED_DEVICE, OTHER_TOTP_SECRET

LONG_AGO = datetime.now(UTC) - timedelta(days=30)


@pytest.fixture
def rig(tmp_path):
    rig = RobinhoodRig(tmp_path)
    yield rig
    rig.close()


def order(cid: str, side: Side = Side.BUY, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=side, quantity=quantity, **kw)


def stored_device(rig) -> str:
    with (rig.folder / "session" / "robinhood.pickle").open("rb") as handle:
        return pickle.load(handle)["device_token"]


# -- finding 6: a refused login must not cost the approved device ------------------------------


def test_a_refused_mfa_code_keeps_the_approved_device_token(rig):
    with pytest.raises(RobinhoodLoginError, match="MFA"):
        rig.broker(totp_secret=OTHER_TOTP_SECRET).login()

    assert stored_device(rig) == APPROVED_DEVICE  # the session file was put back
    rig.broker().login()  # the next run logs in unattended, as the same device
    assert rig.fake.device_tokens[-1] == APPROVED_DEVICE


def test_a_session_file_left_empty_by_a_crash_is_restored_from_its_backup(rig):
    rig.broker().login()  # a good login leaves a backup beside the session file
    session_file = rig.folder / "session" / "robinhood.pickle"
    session_file.write_bytes(b"")  # robin_stocks truncated it, then the process died
    rig.fake.revoke_tokens()

    rig.broker().account()

    assert rig.fake.device_tokens[-1] == APPROVED_DEVICE


def test_an_unknown_device_is_refused_with_the_command_that_approves_it(tmp_path):
    rig = RobinhoodRig(tmp_path, approved_device=False)
    try:
        with pytest.raises(RobinhoodLoginError, match="robinhood-login"):
            rig.broker().login()
        assert rig.clock.sleeps == []  # robin_stocks' approval polling never started
    finally:
        rig.close()


def test_first_login_walks_device_approval_once_and_stores_the_session(tmp_path):
    rig = RobinhoodRig(tmp_path, approved_device=False)
    try:
        rig.fake.approve_in_app = True  # the person taps "approve" in the Robinhood app
        # robin_stocks itself polls the approval with two real 5 s sleeps; the limiter is virtual
        limiter = robinhood_rate_limiter(rig.clock, rig.clock.sleep)
        stored = first_login(rig.config(), transport=LoopbackTransport(rig.fake.port), limiter=limiter)

        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert stored.parent == rig.folder / "session"
        device = stored_device(rig)
        assert device in rig.fake.approved_devices
        rig.fake.revoke_tokens()  # days later: the token expired, the device stays approved
        assert rig.broker().account().cash == pytest.approx(100_000)
        assert rig.fake.device_tokens[-1] == device
    finally:
        rig.close()


def test_the_login_command_names_what_is_missing(monkeypatch, capsys, tmp_path):
    for name in ("ROBINHOOD_USERNAME", "ROBINHOOD_PASSWORD", "ROBINHOOD_TOTP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRADING_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env with real credentials is read from the checkout

    assert cli.main(["robinhood-login"]) == 2
    said = capsys.readouterr().err
    assert "ROBINHOOD_USERNAME" in said and "ROBINHOOD_TOTP_SECRET" in said


# -- finding 7: ref_id is the idempotency key ---------------------------------------------------


def test_ref_id_is_derived_from_the_client_order_id(rig):
    rig.broker().submit(order("ref-1"))

    sent = rig.fake.received_orders[-1]["payload"]["ref_id"]
    assert sent == ref_id_for("ref-1") == str(uuid.UUID(sent))
    assert ref_id_for("ref-1") != ref_id_for("ref-2")


def test_the_same_order_from_a_second_process_is_refused_by_ref_id_and_reported(rig, tmp_path):
    first = rig.broker().submit(order("twice"))
    # another process without the first one's order map (its folder was lost, say)
    other_folder = tmp_path / "other"
    from trading_pipeline_tests.brokers.fakes.robinhood.wiring import write_session_file

    write_session_file(other_folder, APPROVED_DEVICE)
    second = rig.broker(session_dir=other_folder).submit(order("twice"))

    assert len(rig.fake.orders) == 1
    assert second.broker_order_id == first.broker_order_id
    assert second.status is OrderStatus.NEW


def test_a_lost_answer_is_resolved_by_resending_the_same_ref_id(rig):
    broker = rig.broker()
    broker.login()
    rig.fake.drop_answer_to_next_accepted_order()

    report = broker.submit(order("lost"))

    assert len(rig.fake.orders) == 1 and report.broker_order_id in rig.fake.orders
    posts = rig.fake.order_posts()
    assert len(posts) == 2  # the second was refused as a reused ref_id: nothing new was booked
    first_post = rig.fake.requests.index(posts[0])
    assert not any((m, p) == ("GET", "/orders/") for _, m, p in rig.fake.requests[:first_post])


# -- finding 8: one odd order must not fail the call; history is read within bounds ---------------


def test_an_order_state_the_adapter_does_not_know_is_reported_not_fatal(rig):
    broker = rig.broker()
    kept = broker.submit(order("kept", order_type=OrderType.LIMIT, limit_price=90.0))
    odd = broker.submit(order("odd", order_type=OrderType.LIMIT, limit_price=91.0))
    rig.fake.fill_order(kept.broker_order_id, quantity=2, price=90.0)
    rig.fake.fill_order(odd.broker_order_id, quantity=1, price=91.0)
    rig.fake.orders[odd.broker_order_id]["state"] = "pending_review_2027"

    listed = broker.open_orders()
    fills = broker.fills(since=LONG_AGO)

    assert [o.client_order_id for o in listed] == ["kept"]
    [problem] = broker.unreadable_items
    assert (problem.kind, problem.key) == ("order", odd.broker_order_id)
    assert "pending_review_2027" in problem.reason
    # its executions are facts whatever its state: they stay fills
    assert sorted((f.client_order_id, f.quantity) for f in fills) == [("kept", 2.0), ("odd", 1.0)]


def test_open_orders_read_recent_history_only_and_a_bounded_number_of_pages(tmp_path):
    rig = RobinhoodRig(tmp_path, page_size=2)
    try:
        broker = rig.broker(max_order_pages=3)
        ids = [broker.submit(order(f"old-{i}", quantity=1)).broker_order_id for i in range(12)]
        for oid in ids:
            rig.fake.fill_order(oid)
            rig.fake.orders[oid]["updated_at"] = "2025-01-02T15:00:00.000000Z"  # long done
        working = broker.submit(order("working", order_type=OrderType.LIMIT, limit_price=80.0))

        listed = broker.open_orders()
        gets = [p for _, m, p in rig.fake.requests if (m, p) == ("GET", "/orders/")]

        assert [o.broker_order_id for o in listed] == [working.broker_order_id]
        assert len(gets) == 1  # the old orders were never paged through

        for i in range(8):  # more recent orders than 3 pages of 2 hold
            rig.fake.orders[ids[i]]["updated_at"] = robinhood_time_now()
        with pytest.raises(BrokerError, match="more than 3 pages"):
            broker.open_orders()
    finally:
        rig.close()


def test_a_market_buy_is_collared_and_an_unfilled_one_ends_cancelled_at_the_close(rig):
    broker = rig.broker()
    placed = broker.submit(order("collared"))  # sent as a limit at the ask (100.05) + 5 %
    booked = rig.fake.orders[placed.broker_order_id]
    assert booked["type"] == "limit" and booked["price"] == pytest.approx(105.05)

    rig.fake.set_price("AAA", 103.0)  # opens 3 % higher: inside the collar, it fills
    rig.fake.fill_working_orders()
    assert broker.order_status("collared").status is OrderStatus.FILLED

    gapped = broker.submit(order("gapped"))  # ask 103.05: collar 108.20
    rig.fake.set_price("AAA", 110.0)  # opens 7 % higher: above the collar, it does not fill
    rig.fake.fill_working_orders()
    assert rig.fake.end_of_day() == [gapped.broker_order_id]
    report = broker.order_status("gapped")
    assert report.status is OrderStatus.CANCELED and report.filled_quantity == 0
    assert [f.client_order_id for f in broker.fills(since=LONG_AGO)] == ["collared"]
