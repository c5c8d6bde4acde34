"""What the fake TWS remembers: orders, executions, positions and cash (no sockets here)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

OPEN_STATUSES = {"PendingSubmit", "PreSubmitted", "Submitted", "PendingCancel"}
COMMISSION_PER_SHARE = 0.005
COMMISSION_MIN = 1.0


@dataclass
class Instrument:
    con_id: int
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"

    @property
    def local_symbol(self) -> str:
        return self.symbol

    @property
    def trading_class(self) -> str:
        return "NMS"


@dataclass
class FakeOrder:
    """An order as TWS holds it, built from the fields the client sent."""

    order_id: int
    client_id: int
    perm_id: int
    account: str
    instrument: Instrument
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    order_ref: str
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    outside_rth: bool = False
    status: str = "Submitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    completed_status: str = ""
    completed_time: str = ""
    extreme_price: float | None = None  # best price seen since placement, for trailing stops
    parent_id: int = 0  # an attached (child) order: works once its parent has filled
    raw: dict[str, str] = field(default_factory=dict)  # the fields exactly as decoded

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_buy(self) -> bool:
        return self.action.upper() == "BUY"


@dataclass
class Execution:
    exec_id: str
    order: FakeOrder
    shares: float
    price: float
    time: datetime
    cum_qty: float
    avg_price: float
    commission: float
    commission_reported: bool = True  # False until TWS sends its commission report

    @property
    def base_id(self) -> str:
        """The execution's identity across corrections: its id without the last-period part."""
        return self.exec_id.rsplit(".", 1)[0]

    @property
    def revision(self) -> int:
        return int(self.exec_id.rsplit(".", 1)[1])

    @property
    def side(self) -> str:
        return "BOT" if self.order.is_buy else "SLD"


@dataclass
class Holding:
    quantity: float = 0.0
    avg_cost: float = 0.0


class BrokerState:
    """Accounts, prices, orders and fills; every method is called under the server's lock."""

    def __init__(self, accounts: tuple[str, ...], cash: float, prices: dict[str, float]):
        self.accounts = list(accounts)
        self.cash = {account: float(cash) for account in accounts}
        self.prices = dict(prices)
        self.instruments: dict[str, Instrument] = {}
        self.holdings: dict[str, dict[str, Holding]] = {a: {} for a in accounts}
        self.orders: list[FakeOrder] = []
        self.executions: list[Execution] = []
        # TWS lists completed orders and executions of its current day only; what a day
        # rollover drops from the API lands here, so tests can still see the whole truth
        self.forgotten_orders: list[FakeOrder] = []
        self.forgotten_executions: list[Execution] = []
        self.highest_order_id = 0
        self.clock: datetime | None = None  # None: real time; else TWS's own (test-set) time
        self.timezone = "America/New_York"  # the zone of the TWS login
        self.naive_exec_times = False  # old TWS builds send execution times without a zone
        self._perm_ids = itertools.count(900_001)
        self._exec_ids = itertools.count(1)
        self._con_ids = itertools.count(265_001)

    def now(self) -> datetime:
        return self.clock if self.clock is not None else datetime.now(UTC)

    def roll_day(self, now: datetime) -> None:
        """TWS starts a new day: completed orders and executions are no longer listed
        (working orders stay working)."""
        self.clock = now
        self.forgotten_orders += [o for o in self.orders if not o.is_open]
        self.orders = [o for o in self.orders if o.is_open]
        self.forgotten_executions += self.executions
        self.executions = []

    def correct(self, execution: Execution, price: float) -> Execution:
        """A price correction: the same execution under the next revision of its id. The
        account is re-booked at the corrected price."""
        order = execution.order
        delta = (price - execution.price) * execution.shares
        signed = delta if order.is_buy else -delta
        self.cash[order.account] -= signed
        holding = self.holdings[order.account].get(order.instrument.symbol)
        if holding is not None and holding.quantity:
            holding.avg_cost += signed / holding.quantity
        order.avg_fill_price += delta / order.filled if order.filled else 0.0
        latest = max((e for e in self.executions if e.base_id == execution.base_id),
                     key=lambda e: e.revision)
        corrected = Execution(
            exec_id=f"{execution.base_id}.{latest.revision + 1:02d}", order=order,
            shares=execution.shares, price=price, time=execution.time, cum_qty=execution.cum_qty,
            avg_price=order.avg_fill_price, commission=execution.commission,
            commission_reported=execution.commission_reported,
        )
        self.executions.append(corrected)
        return corrected

    # lookups

    def instrument(self, symbol: str) -> Instrument:
        if symbol not in self.instruments:
            self.instruments[symbol] = Instrument(con_id=next(self._con_ids), symbol=symbol)
        return self.instruments[symbol]

    def next_order_id(self) -> int:
        # TWS never hands out an id again, even after its day rolled over
        return self.highest_order_id + 1

    def new_perm_id(self) -> int:
        return next(self._perm_ids)

    def find(self, client_id: int, order_id: int) -> FakeOrder | None:
        for order in self.orders:
            if order.client_id == client_id and order.order_id == order_id:
                return order
        return None

    def with_ref(self, order_ref: str) -> list[FakeOrder]:
        return [o for o in self.orders if o.order_ref == order_ref]

    # money

    def market_value(self, account: str) -> float:
        return sum(h.quantity * self.prices.get(s, h.avg_cost) for s, h in self.holdings[account].items())

    def gross_value(self, account: str) -> float:
        return sum(abs(h.quantity) * self.prices.get(s, h.avg_cost) for s, h in self.holdings[account].items())

    def account_values(self, account: str) -> dict[str, float]:
        cash = self.cash[account]
        return {
            "NetLiquidation": cash + self.market_value(account),
            "TotalCashValue": cash,
            "BuyingPower": max(cash, 0.0),
            "AvailableFunds": max(cash, 0.0),
            "GrossPositionValue": self.gross_value(account),
        }

    # trading

    def marketable(self, order: FakeOrder, price: float) -> bool:
        """Would `order` trade at `price` (stops trigger, limits are respected)?"""
        buy = order.is_buy
        kind = order.order_type.upper()
        if kind == "MKT":
            return True
        if kind == "LMT":
            return price <= order.lmt_price if buy else price >= order.lmt_price
        if kind in ("STP", "STP LMT"):
            triggered = price >= order.aux_price if buy else price <= order.aux_price
            if kind == "STP" or not triggered:
                return triggered
            return price <= order.lmt_price if buy else price >= order.lmt_price
        if kind == "TRAIL":
            best = order.extreme_price if order.extreme_price is not None else price
            best = min(best, price) if buy else max(best, price)
            order.extreme_price = best
            offset = (
                best * order.trailing_percent / 100.0
                if order.trailing_percent is not None
                else order.aux_price
            )
            order.trail_stop_price = best + offset if buy else best - offset
            return price >= order.trail_stop_price if buy else price <= order.trail_stop_price
        return False

    def fill(self, order: FakeOrder, quantity: float, price: float) -> Execution:
        quantity = min(quantity, order.remaining)
        if quantity <= 0:
            raise ValueError(f"order {order.order_ref or order.order_id} has nothing left to fill")
        total_before = order.filled * order.avg_fill_price
        order.filled += quantity
        order.avg_fill_price = (total_before + quantity * price) / order.filled
        order.last_fill_price = price
        if order.remaining <= 0:
            order.status = "Filled"
            order.completed_status = "Filled Size: %g" % order.filled
            order.completed_time = tws_time(self.now())
        commission = max(COMMISSION_MIN, COMMISSION_PER_SHARE * quantity)
        signed = quantity if order.is_buy else -quantity
        self._book(order.account, order.instrument.symbol, signed, price)
        self.cash[order.account] -= signed * price + commission
        execution = Execution(
            exec_id=f"0000e0d5.{next(self._exec_ids):08d}.01.01",
            order=order,
            shares=quantity,
            price=price,
            time=self.now().replace(microsecond=0),
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            commission=commission,
        )
        self.executions.append(execution)
        return execution

    def set_position(self, account: str, symbol: str, quantity: float, avg_cost: float) -> None:
        self.instrument(symbol)
        self.holdings[account][symbol] = Holding(float(quantity), float(avg_cost))

    def _book(self, account: str, symbol: str, signed_qty: float, price: float) -> None:
        holding = self.holdings[account].setdefault(symbol, Holding())
        new_qty = holding.quantity + signed_qty
        if holding.quantity == 0 or (holding.quantity > 0) != (new_qty > 0) or new_qty == 0:
            holding.avg_cost = price if new_qty != 0 else 0.0
        elif abs(new_qty) > abs(holding.quantity):  # adding to the position
            holding.avg_cost = (holding.quantity * holding.avg_cost + signed_qty * price) / new_qty
        holding.quantity = new_qty


def tws_time(moment: datetime) -> str:
    """Time as TWS writes it in execution and completed-order messages."""
    return moment.astimezone(UTC).strftime("%Y%m%d %H:%M:%S UTC")


def naive_tws_time(moment: datetime, zone: str) -> str:
    """Time as older TWS builds write execution times: wall time of the login's zone, no zone
    named, two spaces (ib_insync reads it in `IB.TimezoneTWS`, else in the host's zone)."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y%m%d  %H:%M:%S")
