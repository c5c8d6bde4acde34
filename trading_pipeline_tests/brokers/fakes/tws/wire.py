"""The TWS API wire format, server side, for server version 157 (what ib_insync 0.9.86 reads).

Every message is a 4-byte big-endian length, then NUL-terminated text fields; the first
field is the message id. All server-to-client encoders live here, each written from the
field order of ib_insync's `decoder.py`, and each is checked through that real decoder.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Iterable

from trading_pipeline_tests.brokers.fakes.tws.state import (
    Execution,
    FakeOrder,
    Instrument,
    naive_tws_time,
    tws_time,
)

SERVER_VERSION = 157
UNSET_DOUBLE = "1.7976931348623157E308"  # how TWS writes "no value" for doubles
UNSET_INTEGER = "2147483647"


class IncomingId:
    """Message ids the client sends (ib_insync `client.py`)."""

    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


# framing


def field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite"
        return repr(value)
    return str(value)


def frame(fields: Iterable[object]) -> bytes:
    payload = "".join(field(f) + "\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def split(payload: bytes) -> list[str]:
    fields = payload.decode(errors="backslashreplace").split("\0")
    return fields[:-1]  # the last NUL leaves an empty tail


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> bytes | None:
    header = recv_exact(sock, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    return recv_exact(sock, size)


def parse_version_range(payload: bytes) -> tuple[int, int]:
    """The client's "v157..176" (optionally followed by connect options)."""
    text = payload.decode().split(" ")[0]
    low, _, high = text.lstrip("v").partition("..")
    return int(low), int(high or low)


# client -> server


_PLACE_ORDER_HEAD = (
    "order_id", "con_id", "symbol", "sec_type", "last_trade_date", "strike", "right",
    "multiplier", "exchange", "primary_exchange", "currency", "local_symbol", "trading_class",
    "sec_id_type", "sec_id", "action", "total_quantity", "order_type", "lmt_price", "aux_price",
    "tif", "oca_group", "account", "open_close", "origin", "order_ref", "transmit", "parent_id",
    "block_order", "sweep_to_fill", "display_size", "trigger_method", "outside_rth", "hidden",
)
_PLACE_ORDER_MID = (
    "shares_allocation", "discretionary_amt", "good_after_time", "good_till_date", "fa_group",
    "fa_method", "fa_percentage", "fa_profile", "model_code", "short_sale_slot",
    "designated_location", "exempt_code", "oca_type", "rule80a", "settling_firm",
    "all_or_none", "min_qty", "percent_offset", "etrade_only", "firm_quote_only",
    "nbbo_price_cap", "auction_strategy", "starting_price", "stock_ref_price", "delta",
    "stock_range_lower", "stock_range_upper", "override_percentage_constraints", "volatility",
    "volatility_type", "delta_neutral_order_type", "delta_neutral_aux_price",
)
_DELTA_NEUTRAL = (
    "dn_con_id", "dn_settling_firm", "dn_clearing_account", "dn_clearing_intent",
    "dn_open_close", "dn_short_sale", "dn_short_sale_slot", "dn_designated_location",
)
_PLACE_ORDER_TAIL = ("continuous_update", "reference_price_type", "trail_stop_price", "trailing_percent")


def decode_place_order(fields: list[str]) -> dict[str, str]:
    """The placeOrder fields we act on, by name (message id already checked)."""
    values = iter(fields[1:])
    decoded = {name: next(values) for name in _PLACE_ORDER_HEAD}
    if decoded["sec_type"] == "BAG":
        raise ValueError("the fake TWS trades single stocks only, not combos (BAG)")
    decoded.update({name: next(values) for name in _PLACE_ORDER_MID})
    if decoded["delta_neutral_order_type"]:
        decoded.update({name: next(values) for name in _DELTA_NEUTRAL})
    decoded.update({name: next(values) for name in _PLACE_ORDER_TAIL})
    return decoded


def optional_float(text: str) -> float | None:
    """A price field from the client: empty or the unset sentinel means none."""
    if not text:
        return None
    value = float(text)
    return None if value >= 1e300 else value


# server -> client


def handshake(conn_time: str, server_version: int = SERVER_VERSION) -> list[object]:
    return [server_version, conn_time]


def next_valid_id(order_id: int) -> list[object]:
    return [9, 1, order_id]


def managed_accounts(accounts: Iterable[str]) -> list[object]:
    return [15, 1, ",".join(accounts)]


def error(req_id: int, code: int, message: str) -> list[object]:
    return [4, 2, req_id, code, message]


def current_time(epoch_seconds: int) -> list[object]:
    return [49, 1, epoch_seconds]


def _contract(instr: Instrument, *, exchange: bool = True) -> list[object]:
    """conId .. tradingClass, as in position, openOrder, execDetails and completedOrder."""
    head = [instr.con_id, instr.symbol, instr.sec_type, "", 0.0, "", ""]
    return head + ([instr.exchange] if exchange else []) + [
        instr.currency, instr.local_symbol, instr.trading_class,
    ]


def position(account: str, instr: Instrument, quantity: float, avg_cost: float) -> list[object]:
    return [61, 3, account, *_contract(instr), float(quantity), float(avg_cost)]


def position_end() -> list[object]:
    return [62, 1]


def account_value(tag: str, value: str | float, currency: str, account: str) -> list[object]:
    return [6, 2, tag, value, currency, account]


def portfolio_value(
    instr: Instrument, quantity: float, market_price: float, avg_cost: float, account: str
) -> list[object]:
    market_value = quantity * market_price
    unrealized = market_value - quantity * avg_cost
    return [
        7, 8, instr.con_id, instr.symbol, instr.sec_type, "", 0.0, "", "", instr.primary_exchange,
        instr.currency, instr.local_symbol, instr.trading_class, float(quantity),
        float(market_price), float(market_value), float(avg_cost), float(unrealized), 0.0, account,
    ]


def account_time(hh_mm: str) -> list[object]:
    return [8, 1, hh_mm]


def account_download_end(account: str) -> list[object]:
    return [54, 1, account]


def account_update_multi(
    req_id: int, account: str, tag: str, value: str | float, currency: str, model_code: str = ""
) -> list[object]:
    return [73, 1, req_id, account, model_code, tag, value, currency]


def account_update_multi_end(req_id: int) -> list[object]:
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str | float, currency: str) -> list[object]:
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[object]:
    return [64, 1, req_id]


def open_order_end() -> list[object]:
    return [53, 1]


def completed_orders_end() -> list[object]:
    return [102]


def exec_details_end(req_id: int) -> list[object]:
    return [55, 1, req_id]


def _price(value: float | None) -> object:
    return UNSET_DOUBLE if value is None else float(value)


def order_status(order: FakeOrder) -> list[object]:
    return [
        3, order.order_id, order.status, float(order.filled), float(order.remaining),
        float(order.avg_fill_price), order.perm_id, 0, float(order.last_fill_price),
        order.client_id, order.why_held, 0.0,
    ]


def open_order(order: FakeOrder) -> list[object]:
    """openOrder for server version 157: no version field, decoder.openOrder's order."""
    o = order
    return [
        5, o.order_id, *_contract(o.instrument),
        o.action, float(o.quantity), o.order_type, _price(o.lmt_price), _price(o.aux_price),
        o.tif, "", o.account, "O", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth,
        False,  # hidden
        0.0, "", "",  # discretionaryAmt, goodAfterTime, (deprecated sharesAllocation)
        "", "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile, modelCode
        "", "", UNSET_DOUBLE, "",  # goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
        0, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,  # auctionStrategy, startingPrice, stockRefPrice, delta
        UNSET_DOUBLE, UNSET_DOUBLE,  # stockRangeLower, stockRangeUpper
        0, False, False, False, "",  # displaySize, blockOrder, sweepToFill, allOrNone, minQty
        3, False, False, UNSET_DOUBLE,  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        0, 0,  # parentId, triggerMethod
        UNSET_DOUBLE, "", "", UNSET_DOUBLE,  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False, "", _price(o.trail_stop_price), _price(o.trailing_percent),
        UNSET_DOUBLE, "", "",  # basisPoints, basisPointsType, comboLegsDescrip
        0, 0, 0,  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "", False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
        False,  # delta neutral contract present
        "",  # algoStrategy
        False, False,  # solicited, whatIf
        o.status, "", "", "", "", "", "", "", "", "",  # status, margin fields
        UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "", "",  # commission, min, max, currency, warning
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "", UNSET_DOUBLE, _price(o.trail_stop_price), UNSET_DOUBLE,  # adjustedOrderType, triggerPrice, trailStopPrice, lmtPriceOffset
        UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, 0,  # adjusted stop / stop limit / trailing amount, unit
        "", "", "",  # soft dollar tier name, value, display name
        UNSET_DOUBLE, False, False, False, False,  # cashQty, dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimitPrice, usePriceMgmtAlgo
    ]


def completed_order(order: FakeOrder) -> list[object]:
    """completedOrder for server version 157 (no order id or client id on the wire)."""
    o = order
    return [
        101, *_contract(o.instrument),
        o.action, float(o.quantity), o.order_type, _price(o.lmt_price), _price(o.aux_price),
        o.tif, "", o.account, "O", 0, o.order_ref, o.perm_id, o.outside_rth, False,
        0.0, "",  # discretionaryAmt, goodAfterTime
        "", "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile, modelCode
        "", "", UNSET_DOUBLE, "",  # goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
        UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,  # startingPrice .. stockRangeUpper
        0, False, False, "", 3, 0,  # displaySize, sweepToFill, allOrNone, minQty, ocaType, triggerMethod
        UNSET_DOUBLE, "", "", UNSET_DOUBLE,  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False, "", _price(o.trail_stop_price), _price(o.trailing_percent), "",
        0, 0, 0,  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scale sizes and increment
        "",  # hedgeType
        "", "", False,  # clearingAccount, clearingIntent, notHeld
        False,  # delta neutral contract present
        "",  # algoStrategy
        False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
        0,  # conditions
        _price(o.trail_stop_price), UNSET_DOUBLE, UNSET_DOUBLE,  # trailStopPrice, lmtPriceOffset, cashQty
        False, False, "", float(o.filled), 0, False, "", False, False, 0,
        o.completed_time, o.completed_status,
    ]


def exec_details(req_id: int, execution: Execution, naive_zone: str | None = None) -> list[object]:
    """execDetails; with `naive_zone` the time is written as wall time there, with no zone."""
    e, o = execution, execution.order
    exec_time = naive_tws_time(e.time, naive_zone) if naive_zone else tws_time(e.time)
    return [
        11, req_id, o.order_id, *_contract(o.instrument),
        e.exec_id, exec_time, o.account, o.instrument.primary_exchange, e.side,
        float(e.shares), float(e.price), o.perm_id, o.client_id, 0, float(e.cum_qty),
        float(e.avg_price), o.order_ref, "", "", "", 1,
    ]


def commission_report(execution: Execution, currency: str = "USD") -> list[object]:
    return [59, 1, execution.exec_id, float(execution.commission), currency, UNSET_DOUBLE, UNSET_DOUBLE, ""]
