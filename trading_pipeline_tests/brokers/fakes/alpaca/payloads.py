"""Alpaca's shapes for the fake: order JSON, decimal strings, RFC 3339 times, {"code",
"message"} errors, and the checks behind Alpaca's 422 answers to a new order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DEFAULT_PRICES = {"AAA": 100.0, "BBB": 101.0}
OPEN_STATES = {"new", "partially_filled", "accepted", "pending_new", "pending_cancel", "held"}
# Alpaca's refusal of an order that could trade against the account's own opposite-side open
# order in the same symbol (FINRA Rule 5210 "self-trades"). Seen on the Alpaca forum
# ("Bogus rule: potential trade wash detected", thread 13817): HTTP 403, code 40310000,
# for a market buy while a limit sell was working; alpaca-java issue #145 (2024) saw the same
# message as HTTP 422 / 42210000. Alpaca's staff answer (forum thread 18200): any order is
# refused while an open order of the other side exists; complex orders (bracket / OTO) are the
# way around it, their legs being held until the entry fills.
WASH_TRADE = (403, 40310000, "potential wash trade detected. use complex orders")
DROP = object()  # route result: send no answer at all


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(value: float | None) -> str | None:
    """Alpaca's number format: a decimal string, at most 9 decimals."""
    return None if value is None else format(Decimal(repr(round(float(value), 9))), "f")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def error(status: int, code: int, message: str) -> tuple[int, dict]:
    return status, {"code": code, "message": message}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorised: bool  # whether the right key id and secret came with it (never the values)


@dataclass
class FakeOrder:
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str
    time_in_force: str
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_price: float | None = None
    hwm: float | None = None
    status: str = "new"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    pending_reads: int = 0  # reads left before a pending cancel completes
    order_class: str = ""  # "" (simple), "oto" or "bracket" for an entry with legs
    legs: list["FakeOrder"] = field(default_factory=list)  # an OTO's stop leg, held until the entry fills
    parent_id: str | None = None  # set on a leg

    def as_json(self) -> dict:
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "submitted_at": iso(self.created_at), "filled_at": iso(self.filled_at),
            "expired_at": None, "canceled_at": iso(self.canceled_at), "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)), "symbol": self.symbol,
            "asset_class": "us_equity", "notional": None, "qty": num(self.qty),
            "filled_qty": num(self.filled_qty), "filled_avg_price": num(self.filled_avg_price),
            "order_class": self.order_class, "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force, "limit_price": num(self.limit_price),
            "stop_price": num(self.stop_price), "status": self.status, "extended_hours": False,
            "legs": [leg.as_json() for leg in self.legs] or None, "trail_percent": num(self.trail_percent),
            "trail_price": num(self.trail_price), "hwm": num(self.hwm),
        }

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def remaining(self) -> float:
        return self.qty - self.filled_qty


DEFAULT_MESSAGES = {
    401: "request is not authorized", 403: "forbidden", 404: "not found",
    422: "request is not valid", 429: "rate limit exceeded", 500: "internal server error occurred",
    503: "service unavailable",
}
TIMES_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
_PRICE_FIELDS = {"market": (), "limit": ("limit_price",), "stop": ("stop_price",),
                 "stop_limit": ("stop_price", "limit_price")}


def order_problem(body: Any, prices: dict[str, float]) -> tuple[int, dict] | None:
    """Alpaca's 422 for an order it will not take, or None."""
    if not isinstance(body, dict):
        return error(422, 40010000, "request body format is invalid")
    for name in ("symbol", "qty", "side", "type", "time_in_force"):
        if body.get(name) in (None, ""):
            return error(422, 40010000, f"{name} is required")
    if body["symbol"] not in prices:
        return error(422, 40010001, f"asset \"{body['symbol']}\" not found")
    if body["side"] not in ("buy", "sell") or body["time_in_force"] not in TIMES_IN_FORCE:
        return error(422, 40010001, "invalid side or time_in_force")
    if float(body["qty"]) <= 0:
        return error(422, 40010001, "qty must be > 0")
    if not float(body["qty"]).is_integer() and body["time_in_force"] != "day":
        return error(422, 40010001, "fractional orders must be DAY orders")
    if len(body.get("client_order_id") or "") > 128:
        return error(422, 40010001, "client_order_id must be no more than 128 characters")
    order_class = body.get("order_class") or "simple"
    if order_class not in ("simple", "oto"):
        return error(422, 40010001, f"order_class {order_class!r} is not modelled by this fake")
    if order_class == "oto":
        if (body.get("stop_loss") or {}).get("stop_price") is None:
            return error(422, 40010001, "oto orders require take_profit or stop_loss")
        if body["time_in_force"] not in ("day", "gtc"):
            return error(422, 40010001, "oto orders must be day or gtc")
        # Alpaca's fractional trading covers simple orders only (its docs: "fractional orders
        # ... only for market, limit, stop and stop limit orders with a time in force of day")
        if not float(body["qty"]).is_integer():
            return error(422, 40010001, "fractional orders are not supported for advanced order classes")
    kind = body["type"]
    if kind == "trailing_stop":
        if (body.get("trail_percent") is None) == (body.get("trail_price") is None):
            return error(422, 40010001, "trailing_stop orders need one of trail_percent or trail_price")
        needed = ()
    elif kind in _PRICE_FIELDS:
        needed = _PRICE_FIELDS[kind]
    else:
        return error(422, 40010001, f"invalid order type {kind!r}")
    for name in needed:
        if body.get(name) is None:
            return error(422, 40010001, f"{name} is required for {kind} orders")
    for name in ("limit_price", "stop_price", "trail_price"):
        value = body.get(name)
        if value is not None and float(value) >= 1 and round(float(value), 2) != float(value):
            return error(422, 42210000, f"invalid {name} {value}. sub-penny increment does not "
                                         "fulfill minimum pricing criteria")
    return None
