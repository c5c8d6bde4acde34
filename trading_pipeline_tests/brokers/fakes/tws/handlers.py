"""How the fake TWS answers each client request (mixed into `FakeTws`).

Handlers run under the server lock with the state in `self.state`; each answers with the
messages real TWS sends for that request, ending with the end-marker ib_insync waits for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from trading_pipeline_tests.brokers.fakes.tws import historical, wire
from trading_pipeline_tests.brokers.fakes.tws.state import BrokerState, FakeOrder, tws_time
from trading_pipeline_tests.brokers.fakes.tws.wire import IncomingId as In

if TYPE_CHECKING:
    from trading_pipeline_tests.brokers.fakes.tws.server import _Client

LINK_LOST = "Connectivity between IB and Trader Workstation has been lost."
LINK_RESTORED = "Connectivity between IB and Trader Workstation has been restored - data maintained."
LINK_RESTORED_DATA_LOST = ("Connectivity between IB and Trader Workstation has been restored - "
                           "data lost.")

# requests answered by silence, as TWS does
_SILENT = {In.CANCEL_ACCOUNT_SUMMARY, In.CANCEL_POSITIONS, In.REQ_MARKET_DATA_TYPE,
           In.REQ_AUTO_OPEN_ORDERS, In.CANCEL_ACCOUNT_UPDATES_MULTI}


class TwsRequests:
    """Needs `state`, the logs below, `_clients` and `live_client_ids()` from `FakeTws`."""

    state: BrokerState
    placed: list[dict[str, str]]
    unsupported: list[list[str]]
    _clients: list[_Client]
    _swallow_next: int
    _reject_next: list[str]
    _fill_on_cancel: list[float]
    _warn_next: list[tuple[int, str]]
    _drop_after_next: int
    _outage: bool
    _held: list[tuple[_Client, FakeOrder]]
    _untransmitted: dict[tuple[int, int], tuple[_Client, FakeOrder]]
    delay_commissions: bool

    @property
    def account(self) -> str:
        return self.state.accounts[0]

    def _dispatch(self, client: _Client, fields: list[str]) -> None:
        msg_id = int(fields[0])
        handler = {
            In.START_API: self._start_api,
            In.PLACE_ORDER: self._place_order,
            In.CANCEL_ORDER: self._cancel_order,
            In.REQ_OPEN_ORDERS: lambda c, f: self._open_orders(c, only_own=True),
            In.REQ_ALL_OPEN_ORDERS: lambda c, f: self._open_orders(c, only_own=False),
            In.REQ_COMPLETED_ORDERS: self._completed_orders,
            In.REQ_POSITIONS: self._positions,
            In.REQ_ACCOUNT_UPDATES: self._account_updates,
            In.REQ_ACCOUNT_UPDATES_MULTI: self._account_updates_multi,
            In.REQ_ACCOUNT_SUMMARY: self._account_summary,
            In.REQ_EXECUTIONS: self._executions,
            In.REQ_IDS: lambda c, f: c.send(wire.next_valid_id(self.state.next_order_id())),
            In.REQ_MANAGED_ACCTS: lambda c, f: c.send(wire.managed_accounts(self.state.accounts)),
            In.REQ_CURRENT_TIME: lambda c, f: c.send(
                wire.current_time(int(self.state.now().timestamp()))),
            historical.REQ_HISTORICAL_DATA: lambda c, f: historical.answer(self, c, f),  # type: ignore[arg-type]
        }.get(msg_id)
        if handler is not None:
            handler(client, fields)
        elif msg_id not in _SILENT:
            self.unsupported.append(fields)

    def _start_api(self, client: _Client, fields: list[str]) -> None:
        client_id = int(fields[2])
        if client_id in self.live_client_ids():
            client.send(wire.error(-1, 326, "Unable to connect as the client id is already in "
                                            "use. Retry with a unique client id."))
            client.close()
            return
        client.client_id = client_id
        client.send(
            wire.next_valid_id(self.state.next_order_id()),
            wire.managed_accounts(self.state.accounts),
            wire.error(-1, 2104, "Market data farm connection is OK:usfarm"),
        )
        if self._outage:  # modelled: a client joining during an outage is told at once
            client.send(wire.error(-1, 1100, LINK_LOST))

    def _place_order(self, client: _Client, fields: list[str]) -> None:
        decoded = wire.decode_place_order(fields)
        self.placed.append(decoded)
        order_id = int(decoded["order_id"])
        self.state.highest_order_id = max(self.state.highest_order_id, order_id)
        if self.state.find(client.client_id, order_id) is not None:
            client.send(wire.error(order_id, 103, "Duplicate order id"))
            return
        order = FakeOrder(
            order_id=order_id,
            client_id=client.client_id,
            perm_id=self.state.new_perm_id(),
            account=decoded["account"] or self.account,
            instrument=self.state.instrument(decoded["symbol"]),
            action=decoded["action"],
            quantity=float(decoded["total_quantity"]),
            order_type=decoded["order_type"],
            lmt_price=wire.optional_float(decoded["lmt_price"]),
            aux_price=wire.optional_float(decoded["aux_price"]),
            tif=decoded["tif"] or "DAY",
            order_ref=decoded["order_ref"],
            trailing_percent=wire.optional_float(decoded["trailing_percent"]),
            trail_stop_price=wire.optional_float(decoded["trail_stop_price"]),
            outside_rth=decoded["outside_rth"] == "1",
            raw=decoded,
        )
        order.extreme_price = self.state.prices.get(order.instrument.symbol)
        order.parent_id = int(decoded["parent_id"] or 0)
        group = self._attach(client, order, transmit=decoded["transmit"] not in ("0", "False", ""))
        if group is None:
            return  # refused, or kept in TWS until the group's last order arrives
        for member in group:
            self._transmit(client, member)

    def _attach(self, client: _Client, order: FakeOrder, *, transmit: bool) -> list[FakeOrder] | None:
        """TWS's handling of `transmit` and `parentId`: an order sent with transmit=False stays
        in TWS, unacknowledged and not at IB, until an order of its group arrives with
        transmit=True; then the group goes, parent first. A child whose parent TWS does not
        know is refused."""
        key = (client.client_id, order.order_id)
        if order.parent_id:
            parent = (self._untransmitted.get((client.client_id, order.parent_id), (None, None))[1]
                      or self.state.find(client.client_id, order.parent_id))
            if parent is None:
                client.send(wire.error(order.order_id, 135, f"Can't find order with id ={order.parent_id}"))
                return None
        if not transmit:
            self._untransmitted[key] = (client, order)
            return None
        group = []
        if order.parent_id and (client.client_id, order.parent_id) in self._untransmitted:
            group.append(self._untransmitted.pop((client.client_id, order.parent_id))[1])
        return [*group, order]

    def _transmit(self, client: _Client, order: FakeOrder) -> None:
        if self._outage:
            # TWS cannot reach IB: the order waits inside TWS, unacknowledged and not listed,
            # until connectivity returns (then it is transmitted, or lost)
            self._held.append((client, order))
            return
        self._accept(client, order)

    def _accept(self, client: _Client, order: FakeOrder) -> None:
        order_id = order.order_id
        self.state.orders.append(order)
        reason = self._refusal(order)
        if reason is not None:
            order.status, order.completed_status = "Inactive", f"Rejected: {reason[1]}"
            order.completed_time = tws_time(self.state.now())
            client.send(wire.error(order_id, reason[0], reason[1]), wire.order_status(order))
            return
        order.status = "PreSubmitted" if order.order_type in ("STP", "STP LMT", "TRAIL") else "Submitted"
        if self._swallow_next:
            self._swallow_next -= 1
            return  # accepted, but the answer is lost
        client.send(wire.open_order(order), wire.order_status(order))
        if self._drop_after_next:
            self._drop_after_next -= 1
            client.close()  # the connection breaks right after this order was acknowledged
            return
        if self._warn_next:
            # informational codes come with the order id like errors do, after the order
            # is already working (ib_insync then marks its trade Cancelled locally)
            code, message = self._warn_next.pop(0)
            client.send(wire.error(order_id, code, message))

    def _refusal(self, order: FakeOrder) -> tuple[int, str] | None:
        if order.account not in self.state.accounts:
            return 321, "Error validating request:-'bN' : cause - Invalid account code"
        if order.instrument.symbol not in self.state.prices:
            return 200, "No security definition has been found for the request"
        if self._reject_next:
            return 201, f"Order rejected - reason:{self._reject_next.pop(0)}"
        return None

    def _cancel_order(self, client: _Client, fields: list[str]) -> None:
        order_id = int(fields[2])
        order = self._fill_before_cancel(self.state.find(client.client_id, order_id))
        if order is None:
            client.send(wire.error(order_id, 10147,
                                   f"OrderId {order_id} that needs to be cancelled is not found."))
        elif not order.is_open:
            client.send(wire.error(order_id, 10148, f"OrderId {order_id} that needs to be "
                                                    f"cancelled cannot be cancelled, state: {order.status}."))
        else:
            order.status = "Cancelled"
            order.completed_status = "Cancelled by Trader"
            order.completed_time = tws_time(self.state.now())
            client.send(wire.order_status(order), wire.error(order_id, 202, "Order Canceled - reason:"))
            if order.filled <= 0:  # an unfilled parent takes its attached children with it
                for child in self.state.orders:
                    if child.parent_id == order.order_id and child.client_id == order.client_id and child.is_open:
                        child.status, child.completed_status = "Cancelled", "Cancelled: parent order canceled"
                        child.completed_time = order.completed_time
                        client.send(wire.order_status(child))

    def _open_orders(self, client: _Client, *, only_own: bool) -> None:
        messages = []
        for order in self.state.orders:
            if order.is_open and (not only_own or order.client_id == client.client_id):
                messages += [wire.open_order(order), wire.order_status(order)]
        client.send(*messages, wire.open_order_end())

    def _completed_orders(self, client: _Client, fields: list[str]) -> None:
        done = [wire.completed_order(o) for o in self.state.orders if not o.is_open]
        client.send(*done, wire.completed_orders_end())

    def _positions(self, client: _Client, fields: list[str]) -> None:
        messages = []
        for account, holdings in self.state.holdings.items():
            for symbol, holding in holdings.items():
                messages.append(wire.position(account, self.state.instrument(symbol),
                                              holding.quantity, holding.avg_cost))
        client.send(*messages, wire.position_end())

    def _account_updates(self, client: _Client, fields: list[str]) -> None:
        subscribe, account = fields[2] == "1", fields[3] or self.account
        if not subscribe or account not in self.state.accounts:
            return
        messages = [wire.account_value(tag, value, "USD", account)
                    for tag, value in self.state.account_values(account).items()]
        for symbol, holding in self.state.holdings[account].items():
            price = self.state.prices.get(symbol, holding.avg_cost)
            messages.append(wire.portfolio_value(self.state.instrument(symbol), holding.quantity,
                                                 price, holding.avg_cost, account))
        client.send(*messages, wire.account_time(time.strftime("%H:%M")),
                    wire.account_download_end(account))

    def _account_updates_multi(self, client: _Client, fields: list[str]) -> None:
        req_id, account = int(fields[2]), fields[3]
        values = self.state.account_values(account) if account in self.state.accounts else {}
        client.send(*[wire.account_update_multi(req_id, account, tag, value, "USD")
                      for tag, value in values.items()], wire.account_update_multi_end(req_id))

    def _account_summary(self, client: _Client, fields: list[str]) -> None:
        req_id, tags = int(fields[2]), set(fields[4].split(","))
        messages = []
        for account in self.state.accounts:
            for tag, value in self.state.account_values(account).items():
                if tag in tags:
                    messages.append(wire.account_summary(req_id, account, tag, value, "USD"))
        client.send(*messages, wire.account_summary_end(req_id))

    def _executions(self, client: _Client, fields: list[str]) -> None:
        req_id, account, symbol = int(fields[2]), fields[4], fields[6]
        messages = []
        for execution in self.state.executions:
            order = execution.order
            if (account and order.account != account) or (symbol and order.instrument.symbol != symbol):
                continue
            messages.append(wire.exec_details(req_id, execution, self._naive_zone()))
            if execution.commission_reported:
                messages.append(wire.commission_report(execution))
        client.send(*messages, wire.exec_details_end(req_id))

    def _naive_zone(self) -> str | None:
        return self.state.timezone if self.state.naive_exec_times else None

    # fills

    def _fill_before_cancel(self, order: FakeOrder | None) -> FakeOrder | None:
        """The `fill_instead_of_next_cancel` race: the market fills the order first."""
        if order is not None and order.is_open and self._fill_on_cancel:
            self._fill(order, order.remaining, self._fill_on_cancel.pop(0))
        return order

    def _fill(self, order: FakeOrder, quantity: float, price: float) -> None:
        execution = self.state.fill(order, quantity, price)
        execution.commission_reported = not self.delay_commissions
        owner = self._owner(order)
        if owner is not None:
            owner.send(
                wire.exec_details(-1, execution, self._naive_zone()),
                wire.open_order(order),
                wire.order_status(order),
                *([wire.commission_report(execution)] if execution.commission_reported else []),
            )

    def _owner(self, order: FakeOrder) -> _Client | None:
        return next((c for c in self._clients if c.client_id == order.client_id and c.alive), None)
