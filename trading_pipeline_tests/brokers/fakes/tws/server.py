"""A fake TWS / IB Gateway on 127.0.0.1 that ib_insync connects to and trades with.

Threads only (stdlib): one accept thread, one reader thread per client connection. All
state changes and all writes to clients happen under one lock, so messages reach each
client in the order TWS would send them, whether a client request or a test caused them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from trading_pipeline_tests.brokers.fakes.tws import wire
from trading_pipeline_tests.brokers.fakes.tws.handlers import (
    LINK_LOST,
    LINK_RESTORED,
    LINK_RESTORED_DATA_LOST,
    TwsRequests,
)
from trading_pipeline_tests.brokers.fakes.tws.state import BrokerState, FakeOrder, tws_time
from trading_pipeline_tests.brokers.fakes.tws.wire import IncomingId as In


class _Client:
    """One API connection; writes happen under the server lock."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.client_id: int | None = None
        self.alive = True

    def send(self, *messages: list[object]) -> None:
        if not self.alive:
            return
        try:
            self.sock.sendall(b"".join(wire.frame(m) for m in messages))
        except OSError:
            self.alive = False

    def close(self) -> None:
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeTws(TwsRequests):
    """A stateful TWS: orders, fills, positions and cash, with knobs for tests."""

    def __init__(
        self,
        *,
        accounts: Iterable[str] = ("DU1234567",),
        cash: float = 100_000.0,
        prices: dict[str, float] | None = None,
        server_version: int = wire.SERVER_VERSION,
    ):
        self.state = BrokerState(tuple(accounts), cash, prices or {"AAA": 100.0, "BBB": 100.0})
        self.server_version = server_version
        self.port: int | None = None
        self.placed: list[dict[str, str]] = []  # every placeOrder as decoded, in order
        self.requests: list[list[str]] = []  # every message received after the handshake
        self.unsupported: list[list[str]] = []
        self.connections_accepted = 0
        self.client_id_grace = 1.0  # seconds a reused client id waits for its old connection
        self._lock = threading.RLock()
        self._clients: list[_Client] = []
        self._listener: socket.socket | None = None
        self._swallow_next = 0
        self._reject_next: list[str] = []
        self._fill_on_cancel: list[float] = []
        self._warn_next: list[tuple[int, str]] = []
        self._drop_after_next = 0
        self._outage = False
        self._held: list = []  # (client, order) placed during an outage, not yet transmitted
        self._untransmitted: dict = {}  # (client id, order id) -> (client, order) sent with transmit=False
        self.delay_commissions = False  # fills come without their commission report

    # lifecycle

    def start(self) -> FakeTws:
        self._listen(0)
        return self

    def stop(self) -> None:
        self.refuse_connections()
        self.drop_connections()

    def __enter__(self) -> FakeTws:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # test control

    def refuse_connections(self) -> None:
        """Stop listening: new connections get 'connection refused'."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the accept thread; close alone leaves a blocked accept() listening
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def accept_connections(self) -> None:
        """Listen again on the same port after `refuse_connections`."""
        if self._listener is None:
            self._listen(self.port)

    def drop_connections(self) -> None:
        """Close every client socket, as when TWS restarts or the network drops."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def swallow_next_order(self) -> None:
        """Keep the next order but send no answer for it (a timeout after acceptance)."""
        with self._lock:
            self._swallow_next += 1

    def reject_next_order(self, reason: str) -> None:
        with self._lock:
            self._reject_next.append(reason)

    def drop_after_next_order(self) -> None:
        """Break the connection right after acknowledging the next order (mid-batch)."""
        with self._lock:
            self._drop_after_next += 1

    def warn_next_order(self, code: int, message: str) -> None:
        """The next order works normally but TWS also sends this informational code for it
        (e.g. 10349 "Order TIF was set to DAY based on order preset.")."""
        with self._lock:
            self._warn_next.append((code, message))

    def start_outage(self, *, announce: bool = True) -> None:
        """TWS loses its connection to IB (error 1100): orders placed now wait inside TWS,
        unacknowledged and unlisted, until `end_outage`. `announce=False`: the 1100 reaches
        connected clients only later (`announce_outage`), so an order can be sent into it."""
        with self._lock:
            self._outage = True
            if announce:
                self.announce_outage()

    def announce_outage(self) -> None:
        with self._lock:
            self._broadcast(wire.error(-1, 1100, LINK_LOST))

    def end_outage(self, *, transmit_held: bool = True, data_lost: bool = False) -> None:
        """Connectivity returns (1102, or 1101 when data was lost). Orders placed during the
        outage are then transmitted (acknowledged to their client) or lost for good."""
        with self._lock:
            self._outage = False
            held, self._held = self._held, []
            code, text = (1101, LINK_RESTORED_DATA_LOST) if data_lost else (1102, LINK_RESTORED)
            self._broadcast(wire.error(-1, code, text))
            if transmit_held:
                for client, order in held:
                    self._accept(client, order)

    @property
    def in_outage(self) -> bool:
        return self._outage

    def release_commissions(self) -> int:
        """Send the commission reports held back by `delay_commissions`; returns how many."""
        with self._lock:
            late = [e for e in self.state.executions if not e.commission_reported]
            for execution in late:
                execution.commission_reported = True
                owner = self._owner(execution.order)
                if owner is not None:
                    owner.send(wire.commission_report(execution))
            return len(late)

    def correct_execution(self, order_ref: str, price: float) -> str:
        """Correct the price of the latest execution of this order: TWS sends the execution
        again under the next revision of its execId (\".01\" -> \".02\"); returns the new id."""
        with self._lock:
            mine = [e for e in self.state.executions if e.order.order_ref == order_ref]
            if not mine:
                raise KeyError(f"no execution today for orderRef {order_ref!r}")
            corrected = self.state.correct(mine[-1], price)
            owner = self._owner(corrected.order)
            if owner is not None:
                owner.send(wire.exec_details(-1, corrected, self._naive_zone()),
                           *([wire.commission_report(corrected)]
                             if corrected.commission_reported else []))
            return corrected.exec_id

    def roll_day(self, now: datetime) -> None:
        """TWS's day rolls over and its clock reads `now`: completed orders and executions of
        earlier days are no longer listed (`state.forgotten_*` keeps them for tests)."""
        with self._lock:
            self.state.roll_day(now)

    def use_naive_execution_times(self, zone: str = "America/New_York") -> None:
        """Write execution times as older TWS builds do: wall time of `zone`, zone not named."""
        with self._lock:
            self.state.timezone, self.state.naive_exec_times = zone, True

    def _broadcast(self, message: list[object]) -> None:
        for client in self._clients:
            if client.client_id is not None:
                client.send(message)

    def fill_instead_of_next_cancel(self, price: float) -> None:
        """The next cancel loses a race: the order fills at `price` just before it arrives."""
        with self._lock:
            self._fill_on_cancel.append(float(price))

    def set_price(self, symbol: str, price: float) -> None:
        with self._lock:
            self.state.prices[symbol] = float(price)
            self.state.instrument(symbol)

    def set_position(self, symbol: str, quantity: float, avg_cost: float | None = None,
                     account: str | None = None) -> None:
        """Change a holding behind the client's back (a trade made by hand)."""
        with self._lock:
            cost = avg_cost if avg_cost is not None else self.state.prices.get(symbol, 100.0)
            self.state.set_position(account or self.account, symbol, quantity, cost)

    def forget_order(self, order_ref: str) -> int:
        """Drop every order with this orderRef from the broker's memory; returns how many."""
        with self._lock:
            before = len(self.state.orders)
            self.state.orders = [o for o in self.state.orders if o.order_ref != order_ref]
            return before - len(self.state.orders)

    def fill_working_orders(self, price: float | None = None, symbol: str | None = None) -> int:
        """Fill every open order that is marketable at `price` (default: the symbol's price)."""
        with self._lock:
            filled = 0
            for order in list(self.state.orders):
                sym = order.instrument.symbol
                if not order.is_open or (symbol is not None and sym != symbol):
                    continue
                if order.parent_id and not self._parent_filled(order):
                    continue  # an attached stop works only once its entry has filled
                at = price if price is not None else self.state.prices.get(sym)
                if at is not None and self.state.marketable(order, at):
                    self._fill(order, order.remaining, at)
                    filled += 1
            return filled

    def _parent_filled(self, order) -> bool:
        parent = self.state.find(order.client_id, order.parent_id)
        return parent is not None and parent.filled > 0

    def untransmitted_refs(self) -> list[str]:
        """orderRefs of orders TWS keeps because they came with transmit=False."""
        with self._lock:
            return [order.order_ref for _, order in self._untransmitted.values()]

    def fill_order(self, order_ref: str, price: float, quantity: float | None = None) -> None:
        """Fill (part of) the open order with this orderRef at `price`, whatever its type."""
        with self._lock:
            orders = [o for o in self.state.with_ref(order_ref) if o.is_open]
            if not orders:
                raise KeyError(f"no open order with orderRef {order_ref!r}")
            order = orders[0]
            self._fill(order, quantity or order.remaining, price)

    # inspection

    def orders_with_ref(self, order_ref: str) -> list[FakeOrder]:
        with self._lock:
            return list(self.state.with_ref(order_ref))

    def position(self, symbol: str, account: str | None = None) -> float:
        with self._lock:
            holding = self.state.holdings[account or self.account].get(symbol)
            return holding.quantity if holding else 0.0

    def live_client_ids(self) -> list[int]:
        with self._lock:
            return [c.client_id for c in self._clients if c.alive and c.client_id is not None]

    # sockets

    def _listen(self, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True,
                         name=f"fake-tws-accept-{self.port}").start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # listener closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock)
            with self._lock:
                self.connections_accepted += 1
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True,
                             name=f"fake-tws-client-{self.port}").start()

    def _serve(self, client: _Client) -> None:
        try:
            if not self._handshake(client):
                return
            while client.alive:
                payload = wire.recv_message(client.sock)
                if payload is None:
                    return
                fields = wire.split(payload)
                if fields and fields[0] == str(In.START_API):
                    self._await_release(int(fields[2]))
                with self._lock:
                    self.requests.append(fields)
                    self._dispatch(client, fields)
        except OSError:
            return
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()

    def _await_release(self, client_id: int) -> None:
        """Give a client that just hung up a moment to be noticed before its id counts as taken."""
        deadline = time.monotonic() + self.client_id_grace
        while client_id in self.live_client_ids() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _handshake(self, client: _Client) -> bool:
        if wire.recv_exact(client.sock, 4) != b"API\0":
            return False
        versions = wire.recv_message(client.sock)
        if versions is None:
            return False
        low, high = wire.parse_version_range(versions)
        if not low <= self.server_version <= high:
            return False
        client.send(wire.handshake(tws_time(datetime.now(UTC)), self.server_version))
        return True
