"""The fake TWS's message encoders, read back by ib_insync's real decoder (server version 157),
and its placeOrder decoder, fed by ib_insync's real client encoder."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

import pytest
from ib_insync import Contract, LimitOrder, Order, Stock
from ib_insync.client import Client
from ib_insync.decoder import Decoder
from ib_insync.util import UNSET_DOUBLE

from trading_pipeline_tests.brokers.fakes.tws import wire
from trading_pipeline_tests.brokers.fakes.tws.state import Execution, FakeOrder, Instrument

AAA = Instrument(con_id=265001, symbol="AAA")


class Recorder:
    """Stands in for ib_insync's Wrapper: records every callback the decoder makes."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


def decode(fields: list[object]) -> list[tuple[str, tuple]]:
    """Frame `fields` as the fake sends them and run the bytes through ib_insync's decoder."""
    payload = wire.frame(fields)
    (size,) = struct.unpack(">I", payload[:4])
    assert size == len(payload) - 4
    recorder = Recorder()
    Decoder(recorder, wire.SERVER_VERSION).interpret(wire.split(payload[4:]))
    return recorder.calls


def only_call(fields: list[object]) -> tuple:
    calls = decode(fields)
    assert len(calls) == 1, f"decoder made {calls!r}"
    return calls[0]


def working_order(**overrides) -> FakeOrder:
    values = dict(
        order_id=7, client_id=17, perm_id=900123, account="DU1234567", instrument=AAA,
        action="SELL", quantity=5.0, order_type="STP LMT", lmt_price=89.1, aux_price=90.0,
        tif="GTC", order_ref="20240102-AAA-sell-stop_loss-abc", status="PreSubmitted",
    )
    values.update(overrides)
    return FakeOrder(**values)


def test_handshake_and_session_start():
    assert wire.split(wire.frame(wire.handshake("20240102 10:00:00 UTC"))[4:]) == [
        "157", "20240102 10:00:00 UTC"]
    assert only_call(wire.next_valid_id(12)) == ("nextValidId", (12,))
    assert only_call(wire.managed_accounts(["DU1", "DU2"])) == ("managedAccounts", ("DU1,DU2",))
    assert only_call(wire.current_time(1700000000)) == ("currentTime", (1700000000,))


def test_error_message():
    assert only_call(wire.error(7, 201, "Order rejected - reason:margin")) == (
        "error", (7, 201, "Order rejected - reason:margin", ""))


def test_open_order_round_trip():
    name, (order_id, contract, order, state) = only_call(wire.open_order(working_order(filled=2.0)))
    assert name == "openOrder" and order_id == 7
    assert (contract.conId, contract.symbol, contract.secType, contract.exchange, contract.currency) == (
        265001, "AAA", "STK", "SMART", "USD")
    assert (order.action, order.totalQuantity, order.orderType) == ("SELL", 5.0, "STP LMT")
    assert (order.lmtPrice, order.auxPrice, order.tif) == (89.1, 90.0, "GTC")
    assert (order.orderRef, order.account, order.clientId, order.permId) == (
        "20240102-AAA-sell-stop_loss-abc", "DU1234567", 17, 900123)
    assert order.whatIf is False  # a true whatIf would make ib_insync treat it as a margin query
    assert order.trailingPercent == UNSET_DOUBLE
    assert state.status == "PreSubmitted"


def test_open_order_trailing_fields():
    trail = working_order(order_type="TRAIL", lmt_price=None, aux_price=None,
                          trailing_percent=5.0, trail_stop_price=95.0)
    _, (_, _, order, _) = only_call(wire.open_order(trail))
    assert (order.orderType, order.trailingPercent, order.trailStopPrice) == ("TRAIL", 5.0, 95.0)
    assert order.lmtPrice == UNSET_DOUBLE and order.auxPrice == UNSET_DOUBLE


def test_order_status_round_trip():
    order = working_order(status="Filled", filled=5.0, avg_fill_price=89.5, last_fill_price=89.5)
    assert only_call(wire.order_status(order)) == (
        "orderStatus", (7, "Filled", 5.0, 0.0, 89.5, 900123, 0, 89.5, 17, "", 0.0))


def test_completed_order_round_trip():
    order = working_order(status="Filled", filled=5.0, completed_time="20240102 15:00:00 UTC",
                          completed_status="Filled Size: 5")
    name, (contract, decoded, state) = only_call(wire.completed_order(order))
    assert name == "completedOrder"
    assert contract.symbol == "AAA"
    assert (decoded.orderRef, decoded.permId, decoded.filledQuantity) == (order.order_ref, 900123, 5.0)
    assert (decoded.orderType, decoded.lmtPrice, decoded.auxPrice) == ("STP LMT", 89.1, 90.0)
    assert (state.status, state.completedTime, state.completedStatus) == (
        "Filled", "20240102 15:00:00 UTC", "Filled Size: 5")


def test_exec_details_and_commission_round_trip():
    order = working_order(action="BUY")
    execution = Execution(exec_id="0001.01", order=order, shares=3.0, price=99.5,
                          time=datetime(2024, 1, 2, 15, 30, tzinfo=UTC), cum_qty=3.0,
                          avg_price=99.5, commission=1.25)
    name, (req_id, contract, ex) = only_call(wire.exec_details(42, execution))
    assert (name, req_id, contract.symbol) == ("execDetails", 42, "AAA")
    assert (ex.execId, ex.side, ex.shares, ex.price, ex.permId, ex.orderRef) == (
        "0001.01", "BOT", 3.0, 99.5, 900123, order.order_ref)
    assert ex.time == datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
    name, (report,) = only_call(wire.commission_report(execution))
    assert (name, report.execId, report.commission, report.currency) == (
        "commissionReport", "0001.01", 1.25, "USD")
    assert only_call(wire.exec_details_end(42)) == ("execDetailsEnd", (42,))


def test_positions_and_portfolio_round_trip():
    name, (account, contract, quantity, avg_cost) = only_call(wire.position("DU1", AAA, -7.0, 98.25))
    assert (name, account, contract.symbol, contract.conId, quantity, avg_cost) == (
        "position", "DU1", "AAA", 265001, -7.0, 98.25)
    assert only_call(wire.position_end()) == ("positionEnd", ())
    name, args = only_call(wire.portfolio_value(AAA, 10.0, 101.0, 100.0, "DU1"))
    assert name == "updatePortfolio"
    assert args[0].symbol == "AAA" and args[1:] == (10.0, 101.0, 1010.0, 100.0, 10.0, 0.0, "DU1")


def test_account_messages_round_trip():
    assert only_call(wire.account_value("NetLiquidation", 1234.5, "USD", "DU1")) == (
        "updateAccountValue", ("NetLiquidation", "1234.5", "USD", "DU1"))
    assert only_call(wire.account_time("15:30")) == ("updateAccountTime", ("15:30",))
    assert only_call(wire.account_download_end("DU1")) == ("accountDownloadEnd", ("DU1",))
    assert only_call(wire.account_update_multi(3, "DU1", "TotalCashValue", 5.0, "USD")) == (
        "accountUpdateMulti", (3, "DU1", "", "TotalCashValue", "5.0", "USD"))
    assert only_call(wire.account_update_multi_end(3)) == ("accountUpdateMultiEnd", (3,))
    assert only_call(wire.account_summary(4, "DU1", "BuyingPower", 10.0, "USD")) == (
        "accountSummary", (4, "DU1", "BuyingPower", "10.0", "USD"))
    assert only_call(wire.account_summary_end(4)) == ("accountSummaryEnd", (4,))


def test_end_markers_round_trip():
    assert only_call(wire.open_order_end()) == ("openOrderEnd", ())
    assert only_call(wire.completed_orders_end()) == ("completedOrdersEnd", ())


class _Capture:
    def __init__(self):
        self.sent: list[bytes] = []

    def sendMsg(self, msg: bytes) -> None:  # noqa: N802 - ib_insync's name
        self.sent.append(msg)


@pytest.fixture
def client():
    """ib_insync's real Client, 'connected' at server version 157, writing into a list."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Client.sendMsg reads the loop's clock
    client = Client(wrapper=Recorder())
    client.conn = _Capture()
    client.connState = Client.CONNECTED
    client._serverVersion = wire.SERVER_VERSION
    try:
        yield client
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def sent_fields(client) -> list[str]:
    (message,) = client.conn.sent
    return wire.split(message[4:])


@pytest.mark.parametrize(
    "order, expected",
    [
        (LimitOrder("BUY", 10.0, 99.5, tif="GTC", orderRef="ref-1", account="DU1"),
         {"order_type": "LMT", "lmt_price": "99.5", "aux_price": "", "tif": "GTC"}),
        (Order(orderType="TRAIL", action="SELL", totalQuantity=4.0, trailingPercent=5.0,
               tif="DAY", orderRef="ref-1", account="DU1"),
         {"order_type": "TRAIL", "trailing_percent": "5.0", "lmt_price": "", "aux_price": ""}),
    ],
)
def test_place_order_decoder_reads_the_real_client_encoding(client, order, expected):
    client.placeOrder(31, Stock("AAA", "SMART", "USD"), order)
    decoded = wire.decode_place_order(sent_fields(client))
    assert decoded["order_id"] == "31"
    assert (decoded["symbol"], decoded["sec_type"], decoded["exchange"], decoded["currency"]) == (
        "AAA", "STK", "SMART", "USD")
    assert (decoded["order_ref"], decoded["account"], decoded["transmit"]) == ("ref-1", "DU1", "1")
    assert decoded["action"] == order.action
    assert float(decoded["total_quantity"]) == order.totalQuantity
    for name, value in expected.items():
        assert decoded[name] == value, name


def test_place_order_decoder_refuses_combos(client):
    combo = Contract(symbol="AAA", secType="BAG", exchange="SMART", currency="USD")
    client.placeOrder(32, combo, LimitOrder("BUY", 1.0, 1.0))
    with pytest.raises(ValueError, match="BAG"):
        wire.decode_place_order(sent_fields(client))


def test_version_range_is_read_from_the_real_handshake():
    assert wire.parse_version_range(b"v157..176") == (157, 176)
    assert wire.parse_version_range(b"v157..176 +PACEAPI") == (157, 176)
