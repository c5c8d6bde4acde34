"""IBKR adapter pieces that need no socket: configuration and the pure translations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ib_insync import Order, Trade
from ib_insync import OrderStatus as IbStatus
from ib_insync.objects import AccountValue, TradeLogEntry

from trading_pipeline.brokers.ibkr import IbkrConfig, default_port, translate
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)


def buy(cid: str, quantity: float = 10, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=Side.BUY, quantity=quantity, **kw)


# configuration

@pytest.mark.parametrize(
    "env, gateway, port",
    [("paper", False, 7497), ("live", False, 7496), ("paper", True, 4002), ("live", True, 4001)],
)
def test_default_port(env, gateway, port):
    assert default_port(env, gateway) == port


def test_default_port_rejects_other_modes():
    with pytest.raises(ValueError, match="paper and a live"):
        default_port("local", False)


def test_from_values_defaults_and_parsing():
    config = IbkrConfig.from_values(trading_env="paper", gateway="true", account=" DU5 ")
    assert (config.host, config.port, config.client_id, config.mode) == ("127.0.0.1", 4002, 17, "paper")
    assert config.account.value == "DU5" and "DU5" not in repr(config)
    config = IbkrConfig.from_values(trading_env="live", host="tws.internal", port="7600",
                                    client_id="3", gateway="false", request_timeout=2.0)
    assert (config.host, config.port, config.client_id, config.request_timeout) == (
        "tws.internal", 7600, 3, 2.0)
    assert config.account is None


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(trading_env="local"), "TRADING_ENV=paper or TRADING_ENV=live"),
        (dict(trading_env="paper", port="seven"), "IBKR_PORT"),
        (dict(trading_env="paper", client_id="x"), "IBKR_CLIENT_ID"),
        (dict(trading_env="paper", gateway="maybe"), "IBKR_GATEWAY"),
        (dict(trading_env="paper", port="7496"), "live-trading port"),
        (dict(trading_env="paper", port="4001", gateway="true"), "live-trading port"),
        (dict(trading_env="paper", port="70000"), "port must be a TCP port"),
    ],
)
def test_from_values_names_the_bad_variable(values, message):
    with pytest.raises(ValueError, match=message):
        IbkrConfig.from_values(**values)


def test_config_validates_numbers():
    with pytest.raises(ValueError) as failure:
        IbkrConfig(port=0, client_id=-1, request_timeout=0, max_attempts=0)
    text = str(failure.value)
    for name in ("port", "client_id", "request_timeout", "max_attempts"):
        assert name in text


# pure translations

def test_to_ib_order_carries_our_id_account_and_tif():
    order = translate.to_ib_order(
        buy("x-1", order_type=OrderType.STOP_LIMIT, stop_price=90.0, limit_price=89.0,
            time_in_force=TimeInForce.GTC), account="DU1")
    assert (order.orderType, order.lmtPrice, order.auxPrice) == ("STP LMT", 89.0, 90.0)
    assert (order.orderRef, order.account, order.tif, order.action) == ("x-1", "DU1", "GTC", "BUY")
    assert translate.to_ib_order(buy("x-2")).account == ""


def _trade(status: str, *, filled: float = 0.0, quantity: float = 10, log=(), **order_fields) -> Trade:
    order = Order(action="SELL", totalQuantity=quantity, orderType=order_fields.pop("orderType", "LMT"),
                  orderRef="t-1", permId=55, **order_fields)
    trade = Trade(order=order)
    trade.contract.symbol = "AAA"
    trade.orderStatus = IbStatus(status=status, filled=filled)
    trade.log = [TradeLogEntry(datetime(2024, 1, 2, tzinfo=UTC), s, m, code) for s, m, code in log]
    return trade


@pytest.mark.parametrize(
    "status, filled, log, expected",
    [
        ("PendingSubmit", 0, (), OrderStatus.NEW),
        ("PreSubmitted", 0, (), OrderStatus.NEW),
        ("Submitted", 3, (), OrderStatus.PARTIALLY_FILLED),
        ("PendingCancel", 0, (), OrderStatus.NEW),
        ("Filled", 10, (), OrderStatus.FILLED),
        ("Cancelled", 0, (), OrderStatus.CANCELED),
        ("Cancelled", 4, (), OrderStatus.CANCELED),
        ("ApiCancelled", 0, (), OrderStatus.CANCELED),
        ("Cancelled", 0, [("Cancelled", "Error 201: Order rejected - reason:margin", 201)],
         OrderStatus.REJECTED),
        ("Inactive", 0, (), OrderStatus.REJECTED),
    ],
)
def test_status_mapping(status, filled, log, expected):
    assert translate.trade_to_report(_trade(status, filled=filled, log=log)).status is expected


def test_report_of_a_rejected_trade_scrubs_the_reason():
    trade = _trade("Cancelled", log=[("Cancelled", "Error 201: account DU77 blocked", 201)])
    report = translate.trade_to_report(trade, scrub=lambda text: text.replace("DU77", "***"))
    assert report.reason == "Error 201: account *** blocked"
    assert (report.client_order_id, report.side, report.broker_order_id) == ("t-1", Side.SELL, "55")


def test_order_type_mapping_and_hand_made_orders():
    assert translate.order_type_of(Order(orderType="TRAIL LIMIT")) is OrderType.TRAILING_STOP
    assert translate.order_type_of(Order(orderType="MOC")) is OrderType.MARKET
    assert translate.order_type_of(Order(orderType="LOC", lmtPrice=5.0)) is OrderType.LIMIT
    assert translate.client_order_id_of(Order(permId=77)) == "ibkr-perm-77"


def test_account_snapshot_needs_the_core_tags():
    values = [AccountValue("DU1", "NetLiquidation", "10", "USD", ""),
              AccountValue("DU2", "TotalCashValue", "5", "USD", "")]
    with pytest.raises(ValueError, match="TotalCashValue"):
        translate.account_snapshot(values, "DU1", datetime.now(UTC))


def _report(status: OrderStatus, **kw) -> OrderStatusReport:
    return OrderStatusReport(client_order_id="e-1", symbol="AAA", side=Side.BUY, quantity=10,
                             status=status, **kw)


def test_enrich_keeps_the_brokers_status_and_borrows_price_and_reason():
    when = datetime(2024, 1, 2, tzinfo=UTC)
    filled = translate.enrich(
        _report(OrderStatus.FILLED, filled_quantity=10),
        _report(OrderStatus.CANCELED, filled_quantity=0, avg_fill_price=None,
                reason="Error 10148: cannot be cancelled", updated_at=when))
    assert (filled.status, filled.filled_quantity, filled.reason, filled.updated_at) == (
        OrderStatus.FILLED, 10, None, when)
    priced = translate.enrich(_report(OrderStatus.FILLED, filled_quantity=10),
                              _report(OrderStatus.FILLED, filled_quantity=10, avg_fill_price=99.0))
    assert priced.avg_fill_price == 99.0
    rejected = translate.enrich(_report(OrderStatus.CANCELED),
                                _report(OrderStatus.REJECTED, reason="Error 201: no margin"))
    assert (rejected.status, rejected.reason) == (OrderStatus.REJECTED, "Error 201: no margin")


# executions: corrections and commissions


def _fill(exec_id: str, shares: float, price: float, commission: float | None = None):
    from ib_insync import CommissionReport, Execution, Fill, Stock

    report = CommissionReport(execId=exec_id, commission=commission) if commission is not None \
        else CommissionReport()
    execution = Execution(execId=exec_id, shares=shares, price=price, side="BOT", orderRef="c-1",
                          permId=7, time=datetime(2031, 1, 6, 14, 30, tzinfo=UTC))
    return Fill(Stock("AAA", "SMART", "USD"), execution, report, execution.time)


def test_a_correction_replaces_its_execution_and_keeps_the_earlier_commission():
    fills = [_fill("0001.a.01.01", 10, 100.0, 1.0), _fill("0002.b.01.01", 5, 101.0, 1.0),
             _fill("0001.a.01.02", 10, 100.5)]  # the correction's own report not yet in
    reports = translate.fill_reports(fills)
    assert [(r.fill_id, r.quantity, r.price, r.commission) for r in reports] == [
        ("0001.a.01", 10, 100.5, 1.0), ("0002.b.01", 5, 101.0, 1.0)]
    assert translate.average_price(fills) == pytest.approx((10 * 100.5 + 5 * 101.0) / 15)


def test_informational_codes_are_no_rejection_reason_and_unknown_codes_are():
    trade = Trade(order=Order(orderRef="c-1", totalQuantity=10, action="BUY"),
                  orderStatus=IbStatus(status=IbStatus.Cancelled))
    trade.log.append(TradeLogEntry(datetime.now(UTC), "Cancelled", "Order TIF was set to DAY", 10349))
    assert translate.rejection_reason(trade) is None
    trade.log.append(TradeLogEntry(datetime.now(UTC), "Cancelled", "something new", 99999))
    assert translate.rejection_reason(trade) == "something new"


def test_config_refuses_a_timezone_that_does_not_exist():
    with pytest.raises(ValueError, match="tws_timezone"):
        IbkrConfig(port=7497, tws_timezone="Mars/Olympus")
