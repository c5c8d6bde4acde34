"""The fake Robinhood's book: prices, cash, positions and orders, with fills on demand.

Every URL in its answers is a real https://api.robinhood.com URL, as Robinhood's are.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

API = "https://api.robinhood.com"
OPEN_STATES = ("queued", "unconfirmed", "confirmed", "partially_filled")
FINAL_STATES = ("filled", "cancelled", "rejected", "failed", "voided")


def robinhood_time_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float | None, places: int = 8) -> str | None:
    return None if value is None else f"{value:.{places}f}"


class FakeMarket:
    def __init__(self, *, prices: dict[str, float] | None = None, cash: float = 100_000.0,
                 clock=time.monotonic) -> None:
        self.prices = dict(prices or {"AAA": 100.0, "BBB": 50.0})
        self.cash = cash
        self.clock = clock
        self.account_number = "5RH00001"
        self.account_url = f"{API}/accounts/{self.account_number}/"
        self.instruments = {s: self._instrument(s) for s in self.prices}
        self.positions: dict[str, dict] = {}  # symbol -> {"quantity", "average_buy_price"}
        self.orders: dict[str, dict] = {}
        self.received_orders: list[dict] = []  # {"content_type", "payload", "at"} as sent
        self._lock = threading.RLock()

    # -- test controls --------------------------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        with self._lock:
            self.prices[symbol] = price
            for order in self._open_orders():
                peg = order.get("trailing_peg")
                if peg and order["symbol"] == symbol:
                    trail = self._trail(order, price)
                    better = price - trail if order["side"] == "sell" else price + trail
                    pick = max if order["side"] == "sell" else min
                    order["stop_price"] = round(pick(order["stop_price"], better), 2)

    def set_position(self, symbol: str, quantity: float, average_price: float | None = None) -> None:
        with self._lock:
            self.positions[symbol] = {"quantity": float(quantity),
                                      "average_buy_price": average_price or self.prices[symbol]}

    def forget_order(self, order_id: str) -> None:
        with self._lock:
            self.orders.pop(order_id, None)

    def fill_working_orders(self) -> int:
        """Fill every working order that is marketable at the current prices; how many filled."""
        filled = 0
        with self._lock:
            for order in self._open_orders():
                if self._marketable(order):
                    self.fill_order(order["id"])
                    filled += 1
        return filled

    def fill_order(self, order_id: str, quantity: float | None = None, price: float | None = None) -> None:
        with self._lock:
            order = self.orders[order_id]
            left = order["quantity"] - order["cumulative_quantity"]
            quantity = min(quantity or left, left)
            price = price if price is not None else self.prices[order["symbol"]]
            order["executions"].append({
                "id": str(uuid.uuid4()), "price": _num(price), "quantity": _num(quantity),
                "settlement_date": datetime.now(UTC).date().isoformat(), "timestamp": robinhood_time_now(),
            })
            done = order["cumulative_quantity"]
            total = done + quantity
            order["average_price"] = ((order["average_price"] or 0) * done + price * quantity) / total
            order["cumulative_quantity"] = total
            order["state"] = "filled" if total >= order["quantity"] else "partially_filled"
            order["updated_at"] = order["last_transaction_at"] = robinhood_time_now()
            self._book(order["symbol"], order["side"], quantity, price)

    def end_of_day(self) -> list[str]:
        """The session closes: good-for-the-day orders still working are cancelled (as
        Robinhood shows an unfilled day order); the ids of those orders."""
        with self._lock:
            ended = [o for o in self._open_orders() if o["time_in_force"] == "gfd"]
            for order in ended:
                order["state"], order["updated_at"] = "cancelled", robinhood_time_now()
            return [o["id"] for o in ended]

    # -- what the harness asks ------------------------------------------------------------

    def orders_like(self, order_id: str) -> int:
        """How many orders have exactly the shape of `order_id` (0 if it is unknown)."""
        def shape(o):
            return (o["instrument"], o["side"], o["quantity"], o["type"], o["trigger"],
                    o["time_in_force"], o["price"], o["stop_price"], json.dumps(o["trailing_peg"]))
        with self._lock:
            if order_id not in self.orders:
                return 0
            wanted = shape(self.orders[order_id])
            return sum(1 for o in self.orders.values() if shape(o) == wanted)

    def order_posts(self) -> list[tuple[float, str, str]]:
        return [r for r in self.requests if r[1] == "POST" and r[2] == "/orders/"]

    # -- model ----------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> dict:
        iid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-robinhood/{symbol}"))
        return {"id": iid, "url": f"{API}/instruments/{iid}/", "symbol": symbol, "name": f"{symbol} Inc.",
                "simple_name": symbol, "tradeable": True, "tradability": "tradable",
                "fractional_tradability": "tradable", "state": "active", "type": "stock",
                "quote": f"{API}/quotes/{symbol}/", "default_collar_fraction": "0.05"}

    def _symbol_of(self, instrument_url: str) -> str | None:
        return next((s for s, i in self.instruments.items() if i["url"] == instrument_url), None)

    def _open_orders(self) -> list[dict]:
        return sorted((o for o in self.orders.values() if o["state"] in OPEN_STATES), key=lambda o: o["seq"])

    def _trail(self, order: dict, price: float) -> float:
        peg = order["trailing_peg"]
        if peg["type"] == "percentage":
            return price * float(peg["percentage"]) / 100
        return float(peg["price"]["amount"])

    def _marketable(self, order: dict) -> bool:
        price, buy = self.prices[order["symbol"]], order["side"] == "buy"
        if order["trigger"] == "stop":
            triggered = price >= order["stop_price"] if buy else price <= order["stop_price"]
            if not triggered:
                return False
        if order["type"] == "limit":
            return price <= order["price"] if buy else price >= order["price"]
        return True

    def _book(self, symbol: str, side: str, quantity: float, price: float) -> None:
        held = self.positions.setdefault(symbol, {"quantity": 0.0, "average_buy_price": price})
        if side == "buy":
            total = held["quantity"] + quantity
            cost = held["average_buy_price"] * held["quantity"] + price * quantity
            held["average_buy_price"] = cost / total
            held["quantity"] = total
            self.cash -= price * quantity
        else:
            held["quantity"] -= quantity
            self.cash += price * quantity

    def _reserved(self, side: str, symbol: str | None = None) -> float:
        total = 0.0
        for o in self._open_orders():
            left = o["quantity"] - o["cumulative_quantity"]
            if o["side"] == side == "buy":
                total += left * (o["price"] or self.prices[o["symbol"]])
            elif o["side"] == side == "sell" and o["symbol"] == symbol:
                total += left
        return total

    def _equity(self) -> float:
        return self.cash + sum(p["quantity"] * self.prices[s] for s, p in self.positions.items())

    def _create_order(self, payload: dict, content_type: str):
        self.received_orders.append(
            {"content_type": content_type, "payload": dict(payload), "at": self.clock()})
        symbol = self._symbol_of(payload.get("instrument", ""))
        problems = {}
        if payload.get("account") != self.account_url:
            problems["account"] = ["Invalid account."]
        if symbol is None:
            problems["instrument"] = ["Invalid instrument."]
        if payload.get("side") not in ("buy", "sell"):
            problems["side"] = ["Invalid side."]
        if (payload.get("type") not in ("market", "limit")
                or payload.get("trigger") not in ("immediate", "stop")):
            problems["type"] = ["Invalid type or trigger."]
        if payload.get("time_in_force") not in ("gfd", "gtc"):
            problems["time_in_force"] = ["Invalid time in force."]
        if payload.get("type") == "limit" and payload.get("price") in (None, ""):
            problems["price"] = ["A limit order needs a price."]
        if payload.get("trigger") == "stop" and payload.get("stop_price") in (None, ""):
            problems["stop_price"] = ["A stop order needs a stop price."]
        quantity = float(payload.get("quantity") or 0)
        if quantity <= 0:
            problems["quantity"] = ["Quantity must be positive."]
        if problems:
            return 400, problems
        day_market = payload["trigger"] == "immediate" and payload["time_in_force"] == "gfd"
        if not quantity.is_integer() and not day_market:
            return 400, {"detail": "Fractional orders must be market orders good for the day."}
        price = float(payload["price"]) if payload.get("price") not in (None, "") else None
        ref_id = payload.get("ref_id")
        if ref_id and any(o["ref_id"] == ref_id for o in self.orders.values()):
            # Robinhood's idempotency key: seen in robin_stocks PR #40 (2019), where a reused
            # ref_id was answered {'ref_id': ['Order with this ref_id already exists.']}
            return 400, {"ref_id": ["Order with this ref_id already exists."]}
        collar = payload.get("preset_percent_limit")
        market_buy = (payload["side"] == "buy" and price is not None and payload["trigger"] == "immediate"
                      and payload.get("ask_price") not in (None, "") and price == float(payload["ask_price"]))
        if collar not in (None, "") and market_buy:
            # robin_stocks sends a market buy as a limit at the ask with preset_percent_limit;
            # Robinhood books it as a limit collared that far above (its "collared market
            # order"): queued after hours, it fills at the open only inside the collar
            price = round(price * (1 + float(collar)), 2)
        cost = quantity * (price or self.prices[symbol])
        if payload["side"] == "buy" and cost > self.cash - self._reserved("buy"):
            return 400, {"detail": "You do not have enough buying power to place this order."}
        held = self.positions.get(symbol, {}).get("quantity", 0.0)
        if payload["side"] == "sell" and quantity > held - self._reserved("sell", symbol) + 1e-9:
            return 400, {"detail": "Not enough shares to sell."}
        oid = str(uuid.uuid4())
        stop = payload.get("stop_price")
        self.orders[oid] = {
            "id": oid, "seq": len(self.received_orders), "ref_id": ref_id,
            "symbol": symbol, "instrument": payload["instrument"], "side": payload["side"],
            "quantity": quantity, "type": payload["type"], "trigger": payload["trigger"],
            "time_in_force": payload["time_in_force"], "price": price,
            "stop_price": float(stop) if stop not in (None, "") else None,
            "trailing_peg": payload.get("trailing_peg"), "extended_hours": payload.get("extended_hours"),
            "state": "confirmed", "cumulative_quantity": 0.0, "average_price": None, "executions": [],
            "created_at": robinhood_time_now(), "updated_at": robinhood_time_now(), "last_transaction_at": robinhood_time_now(),
        }
        return 201, self._order_json(self.orders[oid])
    def _order_json(self, o: dict) -> dict:
        # Robinhood gives every order that is not finished a cancel link, whatever its state
        is_open = o["state"] not in FINAL_STATES
        return {
            "id": o["id"], "ref_id": o["ref_id"], "url": f"{API}/orders/{o['id']}/",
            "account": self.account_url, "instrument": o["instrument"],
            "cancel": f"{API}/orders/{o['id']}/cancel/" if is_open else None,
            "position": f"{API}/positions/{self.account_number}/{self.instruments[o['symbol']]['id']}/",
            "executions": list(o["executions"]), "fees": "0.00", "state": o["state"], "side": o["side"],
            "time_in_force": o["time_in_force"], "trigger": o["trigger"], "type": o["type"],
            "price": _num(o["price"]), "stop_price": _num(o["stop_price"]), "quantity": _num(o["quantity"]),
            "cumulative_quantity": _num(o["cumulative_quantity"]), "average_price": _num(o["average_price"]),
            "reject_reason": None, "created_at": o["created_at"], "updated_at": o["updated_at"],
            "last_transaction_at": o["last_transaction_at"], "extended_hours": o["extended_hours"],
            "trailing_peg": o["trailing_peg"],
        }

    def _account_json(self) -> dict:
        cash = self.cash
        return {"url": self.account_url, "account_number": self.account_number, "type": "cash",
                "cash": _num(cash, 4), "portfolio_cash": _num(cash, 4),
                "buying_power": _num(max(cash - self._reserved("buy"), 0.0), 4),
                "cash_held_for_orders": _num(self._reserved("buy"), 4), "deactivated": False}

    def _portfolio_json(self) -> dict:
        equity = self._equity()
        return {"url": f"{API}/portfolios/{self.account_number}/", "account": self.account_url,
                "equity": _num(equity, 4), "extended_hours_equity": _num(equity, 4),
                "market_value": _num(equity - self.cash, 4), "withdrawable_amount": _num(self.cash, 4)}

    def _position_json(self, symbol: str, p: dict) -> dict:
        return {"url": f"{API}/positions/{self.account_number}/{self.instruments[symbol]['id']}/",
                "instrument": self.instruments[symbol]["url"], "account": self.account_url,
                "account_number": self.account_number, "quantity": _num(p["quantity"]),
                "average_buy_price": _num(p["average_buy_price"], 4),
                "shares_held_for_sells": _num(self._reserved("sell", symbol)),
                "created_at": robinhood_time_now(), "updated_at": robinhood_time_now()}

    def _quote_json(self, symbol: str) -> dict | None:
        price = self.prices.get(symbol.upper())
        if price is None:
            return None
        return {"symbol": symbol.upper(),
                "ask_price": _num(price + 0.05, 6), "bid_price": _num(price - 0.05, 6),
                "last_trade_price": _num(price, 6), "last_extended_hours_trade_price": None,
                "previous_close": _num(price, 6), "trading_halted": False, "has_traded": True,
                "instrument": self.instruments[symbol.upper()]["url"], "updated_at": robinhood_time_now()}
