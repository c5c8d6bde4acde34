"""The fake broker's state (orders, executions, positions, cash), its market, the test
controls, and its answer to each HTTP request."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any
from urllib.parse import parse_qsl

from trading_pipeline_tests.brokers.fakes.alpaca.payloads import (
    DEFAULT_MESSAGES,
    DEFAULT_PRICES,
    DROP,
    WASH_TRADE,
    FakeOrder,
    RecordedRequest,
    error,
    iso,
    now,
    num,
    order_problem,
    parse_time,
)


class FakeAlpaca:
    """The broker's state and its HTTP answers; `FakeAlpacaServer` puts it on a port."""

    def __init__(self, key_id: str, secret_key: str, *, prices: dict[str, float] | None = None,
                 cash: float = 100_000.0) -> None:
        self._key_id, self._secret_key = key_id, secret_key
        self._lock = threading.RLock()
        self.shutting_down = threading.Event()  # stalled answers stop waiting when set
        self.prices = dict(prices or DEFAULT_PRICES)
        self.cash = cash
        self.orders: list[FakeOrder] = []
        self.positions: dict[str, list[float]] = {}  # symbol -> [quantity, avg entry price]
        self.activities: list[dict] = []
        self.requests: list[RecordedRequest] = []
        self.crashes: list[str] = []  # tracebacks of requests the fake itself failed on
        self._failures: list[dict] = []
        self._stalls: list[dict] = []
        self._drop_next_order: tuple[str, float] | None = None
        self._cancel_reads = 0  # reads an order stays pending_cancel after a DELETE
        self.account_id = str(uuid.uuid4())
        self.account_number: str | None = "PA0FAKE00001"  # Alpaca's spec allows null
        self.asset_classes: dict[str, str] = {}  # symbol -> asset class, when not us_equity
        self.foreign_orders: list[dict] = []  # open orders placed elsewhere, answered as given
        self.refusals: list[tuple[str | None, int, str]] = []  # new orders refused: (cid, status, message)
        self.url: str | None = None  # where it listens, once a FakeAlpacaServer runs it

    # -- test controls -------------------------------------------------------------------

    def price(self, symbol: str) -> float:
        return self.prices[symbol]

    def set_price(self, symbol: str, price: float) -> None:
        with self._lock:
            self.prices[symbol] = price
            for order in self._open_orders(symbol):
                if order.type == "trailing_stop":
                    self._trail(order, price)

    def fail_next(self, status: int, *, method: str = "POST", path: str = "/v2/orders",
                  times: int = 1, message: str | None = None, code: int | None = None) -> None:
        """Answer the next `times` requests to `method` `path` with `status` (a path ending
        in "/" matches everything under it)."""
        with self._lock:
            self._failures.append(dict(status=status, method=method, path=path, times=times,
                                       message=message or DEFAULT_MESSAGES.get(status, "error"),
                                       code=code or status * 100_000))

    def stall_next(self, *, method: str, path: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` matching requests for `seconds` before answering them."""
        with self._lock:
            self._stalls.append(dict(method=method, path=path, seconds=seconds, times=times))

    def drop_answer_to_next_order(self, mode: str = "close", delay: float = 3.0) -> None:
        """Accept and record the next new order, then lose the answer: "close" drops the
        connection at once; "delay" answers only after `delay` seconds (past the client's timeout)."""
        if mode not in ("close", "delay"):
            raise ValueError(f"mode is 'close' or 'delay', not {mode!r}")
        with self._lock:
            self._drop_next_order = (mode, delay)

    def slow_cancels(self, reads: int) -> None:
        """Cancel like the real Alpaca, asynchronously: after a DELETE an order shows
        pending_cancel to the next `reads` reads of it, then canceled."""
        with self._lock:
            self._cancel_reads = reads

    def set_position(self, symbol: str, quantity: float, avg_price: float | None = None) -> None:
        """Change a position behind the client's back (journaled in or out: cash stays)."""
        with self._lock:
            if quantity == 0:
                self.positions.pop(symbol, None)
            else:
                self.positions[symbol] = [quantity, avg_price or self.prices.get(symbol, 100.0)]

    def hold_foreign_asset(self, symbol: str, asset_class: str, quantity: float, price: float) -> None:
        """A holding of a class alpaca-py 0.44's AssetClass enum does not list (Alpaca's spec
        does: ipo, treasury, corporate, global_equity, ...), e.g. bought in Alpaca's app."""
        with self._lock:
            self.prices.setdefault(symbol, price)
            self.positions[symbol] = [quantity, price]
            self.asset_classes[symbol] = asset_class

    def add_foreign_order(self, order_json: dict) -> None:
        """An open order placed outside this pipeline, listed exactly as given (a multi-leg
        option order, say, which has no symbol and no side of its own)."""
        with self._lock:
            self.foreign_orders.append(order_json)

    def forget_order(self, client_order_id: str) -> None:
        with self._lock:
            self.orders = [o for o in self.orders if o.client_order_id != client_order_id]

    def orders_with_client_id(self, client_order_id: str) -> int:
        with self._lock:
            return sum(o.client_order_id == client_order_id for o in self.orders)

    def order(self, client_order_id: str) -> FakeOrder:
        with self._lock:
            return next(o for o in self.orders if o.client_order_id == client_order_id)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def fill(self, client_order_id: str, quantity: float | None = None, price: float | None = None) -> None:
        """Execute (part of) a working order at `price` (default: the symbol's price now)."""
        with self._lock:
            order = next(o for o in self.orders if o.client_order_id == client_order_id and o.is_open)
            self._execute(order, quantity or order.remaining, price or self.prices[order.symbol])

    def settle(self) -> None:
        """Fill every working order that is marketable at the current prices."""
        with self._lock:
            for order in list(self._open_orders()):
                if order.status == "held":  # an OTO leg waits for its entry to fill
                    continue
                price = self.prices[order.symbol]
                if self._marketable(order, price):
                    self._execute(order, order.remaining, price)

    # -- the market ------------------------------------------------------------------------

    def _open_orders(self, symbol: str | None = None) -> list[FakeOrder]:
        return [o for o in self.orders if o.is_open and symbol in (None, o.symbol)]

    def _trail(self, order: FakeOrder, price: float) -> None:
        better = max if order.side == "sell" else min
        order.hwm = price if order.hwm is None else better(order.hwm, price)
        sign = -1 if order.side == "sell" else 1
        offset = order.hwm * order.trail_percent / 100 if order.trail_percent else order.trail_price
        order.stop_price = round(order.hwm + sign * offset, 2)

    @staticmethod
    def _marketable(order: FakeOrder, price: float) -> bool:
        buy = order.side == "buy"
        stop, limit = order.stop_price, order.limit_price
        stop_hit = stop is not None and (price >= stop if buy else price <= stop)
        limit_ok = limit is not None and (price <= limit if buy else price >= limit)
        return {"market": True, "limit": limit_ok, "stop": stop_hit, "trailing_stop": stop_hit,
                "stop_limit": stop_hit and limit_ok}[order.type]

    def _execute(self, order: FakeOrder, quantity: float, price: float) -> None:
        quantity = min(quantity, order.remaining)
        done = order.filled_qty
        paid_before = (order.filled_avg_price or 0.0) * done
        order.filled_avg_price = (paid_before + price * quantity) / (done + quantity)
        order.filled_qty = done + quantity
        order.updated_at = now()
        order.status = "filled" if order.remaining <= 1e-9 else "partially_filled"
        if order.status == "filled":
            order.filled_at = order.updated_at
            for leg in order.legs:  # an OTO's stop starts working once its entry has filled
                if leg.status == "held":
                    leg.status, leg.updated_at = "new", order.updated_at
        signed = quantity if order.side == "buy" else -quantity
        self.cash -= signed * price
        held, avg = self.positions.get(order.symbol, [0.0, 0.0])
        new = held + signed
        if abs(new) < 1e-9:
            self.positions.pop(order.symbol, None)
        else:
            growing = held == 0 or (held > 0) == (signed > 0)
            flipped = held != 0 and (held > 0) != (new > 0)
            avg = (avg * abs(held) + price * quantity) / abs(new) if growing else price if flipped else avg
            self.positions[order.symbol] = [new, avg]
        self.activities.append({
            "id": f"{order.updated_at:%Y%m%d%H%M%S}{len(self.activities):09d}::{uuid.uuid4()}",
            "activity_type": "FILL", "transaction_time": iso(order.updated_at),
            "type": "fill" if order.status == "filled" else "partial_fill",
            "price": num(price), "qty": num(quantity), "side": order.side, "symbol": order.symbol,
            "leaves_qty": num(order.remaining), "order_id": order.id,
            "cum_qty": num(order.filled_qty), "order_status": order.status,
        })

    # -- HTTP --------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers, raw_body: bytes):
        """(status, JSON body or None, seconds to hold the answer) or DROP."""
        path, _, query_text = target.partition("?")
        query = dict(parse_qsl(query_text))
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        authorised = (headers.get("APCA-API-KEY-ID") == self._key_id
                      and headers.get("APCA-API-SECRET-KEY") == self._secret_key)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, authorised))
            stall = self._take(self._stalls, method, path)
            hold = stall["seconds"] if stall else 0.0
            if not authorised:
                return (*error(401, 40110000, "request is not authorized"), hold)
            failure = self._take(self._failures, method, path)
            if failure:
                return failure["status"], {"code": failure["code"], "message": failure["message"]}, hold
            result = self._route(method, path, query, body)
        if result is DROP:
            return DROP
        status, payload, *own_hold = result  # a lost answer brings its own delay
        return status, payload, max([hold, *own_hold])

    @staticmethod
    def _take(rules: list[dict], method: str, path: str) -> dict | None:
        for rule in rules:
            # "/v2/orders" means that path only; "/v2/orders/" every order under it
            wanted = rule["path"]
            if rule["method"] == method and (path == wanted or path.startswith(wanted.rstrip("/") + "/")):
                rule["times"] -= 1
                if rule["times"] <= 0:
                    rules.remove(rule)
                return rule
        return None

    def _route(self, method: str, path: str, query: dict, body: Any):
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/v2/account"):
            return 200, self._account_json()
        if (method, path) == ("GET", "/v2/positions"):
            return 200, [self._position_json(s) for s in sorted(self.positions)]
        if (method, path) == ("GET", "/v2/orders"):
            return 200, self._list_orders(query)
        if (method, path) == ("POST", "/v2/orders"):
            result = self._new_order(body)
            if result is not DROP and result[0] in (403, 422) and "must be unique" not in result[1]["message"]:
                cid = body.get("client_order_id") if isinstance(body, dict) else None
                self.refusals.append((cid, result[0], result[1]["message"]))
            return result
        if (method, path) == ("GET", "/v2/orders:by_client_order_id"):
            found = [o for o in self.orders if o.client_order_id == query.get("client_order_id")]
            return (200, self._read(found[0])) if found else error(404, 40410000, "order not found")
        if parts[:2] == ["v2", "orders"] and len(parts) == 3:
            found = [o for o in self.orders if o.id == parts[2]]
            if not found:
                return error(404, 40410000, "order not found")
            if method == "GET":
                return 200, self._read(found[0])
            if method == "DELETE":
                return self._cancel(found[0])
        fills_asked = path == "/v2/account/activities/FILL" or (
            path == "/v2/account/activities" and query.get("activity_types") == "FILL")
        if method == "GET" and fills_asked:
            return 200, self._list_activities(query)
        return error(404, 40410000, f"endpoint not found: {method} {path}")

    def _account_json(self) -> dict:
        value = sum(q * self.prices.get(s, avg) for s, (q, avg) in self.positions.items())
        long_value = sum(q * self.prices.get(s, avg) for s, (q, avg) in self.positions.items() if q > 0)
        buying_power = max(self.cash - self._committed_to_buys(), 0.0)
        money = {name: num(amount) for name, amount in dict(
            cash=self.cash, equity=self.cash + value, portfolio_value=self.cash + value,
            last_equity=self.cash + value, long_market_value=long_value,
            short_market_value=value - long_value, buying_power=buying_power,
            regt_buying_power=buying_power, daytrading_buying_power=0.0,
            non_marginable_buying_power=buying_power, initial_margin=0.0, maintenance_margin=0.0,
            last_maintenance_margin=0.0, sma=0.0, accrued_fees=0.0, multiplier=1.0).items()}
        return {"id": self.account_id, "account_number": self.account_number, "status": "ACTIVE",
                "crypto_status": "INACTIVE", "currency": "USD", "pattern_day_trader": False,
                "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
                "created_at": "2024-01-02T14:30:00Z", "trade_suspended_by_user": False,
                "shorting_enabled": False, "daytrade_count": 0, "pending_transfer_in": "0",
                "pending_transfer_out": "0", **money}

    def _position_json(self, symbol: str) -> dict:
        qty, avg = self.positions[symbol]
        price = self.prices.get(symbol, avg)
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)), "symbol": symbol,
                "exchange": "NASDAQ", "asset_class": self.asset_classes.get(symbol, "us_equity"),
                "asset_marginable": True,
                "qty": num(qty), "qty_available": num(qty), "avg_entry_price": num(avg),
                "side": "long" if qty > 0 else "short", "market_value": num(qty * price),
                "cost_basis": num(qty * avg), "unrealized_pl": num(qty * (price - avg)),
                "unrealized_plpc": num((price - avg) / avg if avg else 0.0),
                "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0",
                "current_price": num(price), "lastday_price": num(price), "change_today": "0"}

    def _committed_to_buys(self) -> float:
        return sum(o.remaining * (o.limit_price or self.prices[o.symbol])
                   for o in self._open_orders() if o.side == "buy")

    def _list_orders(self, query: dict) -> list[dict]:
        wanted = query.get("status", "open")
        orders = [o for o in self.orders if wanted == "all" or (wanted == "open") == o.is_open]
        if query.get("nested") == "true":  # legs rolled up under their entry, not listed alone
            orders = [o for o in orders if o.parent_id is None]
        if "after" in query:
            orders = [o for o in orders if o.created_at > parse_time(query["after"])]
        if query.get("direction", "desc") == "desc":
            orders = orders[::-1]
        listed = [o.as_json() for o in orders]
        if wanted in ("open", "all"):
            listed += self.foreign_orders
        return listed[: int(query.get("limit", 50))]

    def _list_activities(self, query: dict) -> list[dict]:
        chosen = list(self.activities)
        if "after" in query:
            after = parse_time(query["after"])
            chosen = [a for a in chosen if parse_time(a["transaction_time"]) > after]
        if query.get("direction", "desc") == "desc":
            chosen = chosen[::-1]
        if "page_token" in query:
            ids = [a["id"] for a in chosen]
            chosen = chosen[ids.index(query["page_token"]) + 1:] if query["page_token"] in ids else []
        return chosen[: int(query.get("page_size", 100))]

    def _cancel(self, order: FakeOrder):
        if not order.is_open or order.status == "pending_cancel":
            return error(422, 42210000, "order is not cancelable")
        for leg in order.legs:
            if leg.status == "held":
                leg.status, leg.canceled_at = "canceled", now()
        order.pending_reads = self._cancel_reads
        order.status, order.updated_at = "pending_cancel", now()
        if not order.pending_reads:
            order.status, order.canceled_at = "canceled", order.updated_at
        return 204, None

    @staticmethod
    def _read(order: FakeOrder) -> dict:
        """One client read of an order; a pending cancel completes after enough of them."""
        if order.status == "pending_cancel":
            order.pending_reads -= 1
            if order.pending_reads < 0:
                order.status, order.canceled_at = "canceled", now()
                order.updated_at = order.canceled_at
        return order.as_json()

    def _new_order(self, body: Any):
        problem = order_problem(body, self.prices)
        if problem:
            return problem
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if any(o.client_order_id == cid for o in self.orders):
            return error(422, 40010001, "client_order_id must be unique")
        qty, symbol = float(body["qty"]), body["symbol"]
        if any(o.side != body["side"] for o in self._open_orders(symbol) if o.status != "held"):
            return error(*WASH_TRADE)
        price_of = {k: float(body[k]) if body.get(k) is not None else None
                    for k in ("limit_price", "stop_price", "trail_percent", "trail_price")}
        if body["side"] == "buy":
            cost = qty * (price_of["limit_price"] or price_of["stop_price"] or self.prices[symbol])
            if cost > self.cash - self._committed_to_buys() + 1e-9:
                return error(403, 40310000, "insufficient buying power")
        else:
            held = self.positions.get(symbol, [0.0])[0]
            available = held - sum(o.remaining for o in self._open_orders(symbol)
                                   if o.side == "sell" and o.status != "held")
            if qty > available + 1e-9:
                return error(403, 40310000, f"insufficient qty available for order "
                                             f"(requested: {num(qty)}, available: {num(max(available, 0))})")
        order = FakeOrder(client_order_id=cid, symbol=symbol, side=body["side"], qty=qty,
                          type=body["type"], time_in_force=body["time_in_force"], **price_of)
        if order.type == "trailing_stop":
            self._trail(order, self.prices[symbol])
        self.orders.append(order)
        if body.get("order_class") == "oto":
            leg = FakeOrder(client_order_id=str(uuid.uuid4()), symbol=symbol,
                            side="sell" if order.side == "buy" else "buy", qty=qty, type="stop",
                            time_in_force=order.time_in_force, status="held", parent_id=order.id,
                            stop_price=float(body["stop_loss"]["stop_price"]))
            order.order_class = "oto"
            order.legs.append(leg)
            self.orders.append(leg)
        if self._drop_next_order is not None:
            mode, delay = self._drop_next_order
            self._drop_next_order = None
            if mode == "close":
                return DROP
            return 200, order.as_json(), delay
        return 200, order.as_json()
