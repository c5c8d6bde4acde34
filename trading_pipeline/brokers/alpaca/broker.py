"""The Alpaca adapter: the `Broker` protocol over alpaca-py's TradingClient."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from trading_pipeline.brokers.alpaca import translate
from trading_pipeline.brokers.alpaca.config import ENV_KEY_ID, ENV_SECRET_KEY, AlpacaConfig
from trading_pipeline.brokers.alpaca.http import (
    CREDENTIAL_STATUSES,
    build_client,
    client_base_url,
    error_reason,
    http_status,
    is_transient,
    is_unreadable,
)
from trading_pipeline.brokers.base import BrokerError, OrderNotFound, UnreadableItem, account_key
from trading_pipeline.brokers.retry import call_with_retries
from trading_pipeline.brokers.secrets import scrub
from trading_pipeline.domain.attached_stops import entry_of_attached_stop
from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    PositionReport,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

REJECTION_STATUSES = frozenset({403, 422})  # on POST /orders: buying power, validation
DUPLICATE_ID_MESSAGE = "client_order_id must be unique"
ACTIVITY_PAGE_SIZE = 100  # Alpaca's maximum
MAX_ACTIVITY_PAGES = 500  # 50,000 fills: far beyond a daily look-back; stops a runaway loop
OPEN_ORDERS_LIMIT = 500  # Alpaca's maximum per request
CANCEL_CONFIRM_POLLS = 5
CANCEL_CONFIRM_INTERVAL = 0.2
# How far back the entries of attached stop legs are looked for: a leg lives for the session
# its entry fills in (it has the entry's DAY time in force), read back over a long weekend.
LEG_LOOKBACK = timedelta(days=10)


class AlpacaBroker:
    """Orders, fills, positions and the account at Alpaca (paper or live).

    `submit` is idempotent by client order id: every attempt first asks Alpaca for an order
    with that id (GET /v2/orders:by_client_order_id) and sends only when there is none, so
    a retry after an answer lost in transit finds the order instead of placing another.
    Alpaca also refuses a second order with the same id, which the adapter treats the same way.
    """

    def __init__(
        self,
        config: AlpacaConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        client: Any = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._client = client if client is not None else build_client(config)
        self._client_ids: dict[str, str] = {}  # Alpaca order id -> our client order id
        self._unreadable: dict[str, list[UnreadableItem]] = {}  # per kind, from its latest read
        self.displaced_stops: list[translate.DisplacedStop] = []
        self._legs_learned = False  # whether the recent entries' stop legs were looked up

    @property
    def unreadable_items(self) -> list[UnreadableItem]:
        """What the latest positions(), open_orders() and fills() calls could not read (an
        asset class or order alpaca-py's models refuse): each is left out of that call's
        answer and listed here instead, for reconciliation to raise as a break."""
        return [item for items in self._unreadable.values() for item in items]

    @property
    def name(self) -> str:
        return account_key("alpaca", "paper" if self.config.paper else "live")

    def __repr__(self) -> str:
        return f"AlpacaBroker(endpoint={self.endpoint!r}, paper={self.config.paper})"

    def __enter__(self) -> AlpacaBroker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """The base URL the SDK client is configured with (no request is made)."""
        return client_base_url(self._client)

    # -- the protocol ------------------------------------------------------------------

    # Every buy entry the plan gives a stop goes as an OTO order: Alpaca holds the stop-loss leg
    # (its own order id, a client order id Alpaca makes up) until the entry fills. The leg is
    # read back under the stop's planned id (`attached_stop_id` of the entry's), found through
    # its entry, so it is never a foreign order. Alpaca gives the leg the entry's time in force
    # (DAY): it works through the session the entry fills in; the stop upkeep after that
    # session's close places the GTC stop for the whole position.
    attaches_stops = True

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent) -> tuple[OrderStatusReport, OrderStatusReport]:
        """`entry` as an OTO order whose stop-loss leg is `stop`; idempotent by the entry's id."""
        request = translate.oto_order_request(entry, stop.stop_price)
        entry_report = self._place(entry, request, stop_price=stop.stop_price)
        if entry_report.status is OrderStatus.REJECTED:
            return entry_report, translate.rejected_report(
                stop, f"its entry {entry.client_order_id} was rejected: {entry_report.reason}")
        placed = self._retrying("submit", lambda: self._find_order(entry.client_order_id, "submit"))
        leg = translate.stop_leg(placed) if placed is not None else None
        order = None if leg is None else leg.model_copy(update={"client_order_id": stop.client_order_id})
        if order is None:
            return entry_report, translate.rejected_report(
                stop, f"Alpaca holds no stop leg on entry {entry.client_order_id} (placed without "
                      "one): the stop upkeep after the next close places the position's stop")
        return entry_report, self._report(order)

    def submit(self, intent: OrderIntent) -> OrderStatusReport:
        return self._place(intent, translate.order_request(intent))  # bad intents fail before any network

    def _place(self, intent: OrderIntent, request, stop_price: float | None = None) -> OrderStatusReport:
        """Send `request` (the order for `intent`) unless Alpaca has it already; a refusal is a
        rejected report. `stop_price`: the stop an entry carries (OTO), kept when a wash-trade
        refusal makes the adapter move protective stops out of its way."""

        def attempt():
            existing = self._find_order(intent.client_order_id, "submit")
            if existing is not None:
                return existing
            return self._client.submit_order(request)

        try:
            order = self._retrying("submit", attempt)
        except Exception as error:  # only the POST's own non-transient answers reach here
            status = http_status(error)
            if status is None:
                if is_unreadable(error):
                    raise self._refused("submit", error) from None
                raise
            reason = self._scrub(error_reason(error))
            if status == 422 and DUPLICATE_ID_MESSAGE in reason:
                # an order with this id exists after all (sent by a parallel run): report it
                found = self._retrying("submit", lambda: self._find_order(intent.client_order_id, "submit"))
                if found is not None:
                    return self._report(found)
            if status in REJECTION_STATUSES and translate.WASH_TRADE_MESSAGE in reason.lower():
                return self._submit_around_protective_stops(intent, reason, stop_price)
            if status in REJECTION_STATUSES:
                log.warning("Alpaca rejected order %s (HTTP %s): %s", intent.client_order_id, status, reason)
                return translate.rejected_report(intent, f"Alpaca HTTP {status}: {reason}")
            raise self._refused("submit", error) from None
        return self._report(order)

    def cancel(self, client_order_id: str) -> OrderStatusReport:
        order = self._retrying("cancel", lambda: self._find_order(client_order_id, "cancel"))
        if order is None:
            raise OrderNotFound(f"Alpaca has no order with client order id {client_order_id!r} to cancel")
        if not self._report(order).status.is_open:
            return self._report(order)

        def request_cancel():
            try:
                self._client.cancel_order_by_id(order.id)
            except Exception as error:
                # 422: no longer cancelable (filled or canceled meanwhile); the status below says which
                if http_status(error) != 422:
                    self._raise_unless_transient(error, "cancel")

        self._retrying("cancel", request_cancel)
        # Alpaca cancels asynchronously (pending_cancel first): ask a few times, briefly
        for poll in range(CANCEL_CONFIRM_POLLS):
            order = self._retrying("cancel", lambda: self._find_order(client_order_id, "cancel"))
            if order is None:
                raise OrderNotFound(f"Alpaca lost order {client_order_id!r} while canceling it")
            if not translate.is_pending_cancel(order) or poll == CANCEL_CONFIRM_POLLS - 1:
                break
            self._sleep(CANCEL_CONFIRM_INTERVAL)
        return self._report(order)

    def order_status(self, client_order_id: str) -> OrderStatusReport | None:
        order = self._retrying("order status", lambda: self._find_order(client_order_id, "order status"))
        return None if order is None else self._report(order)

    def open_orders(self) -> list[OrderStatusReport]:
        # raw JSON, read order by order: one order alpaca-py's model refuses must not hide the rest
        orders = self._open_order_payloads()
        if len(orders) >= OPEN_ORDERS_LIMIT:
            log.warning("Alpaca returned %s open orders, its per-request maximum: some may be missing",
                        len(orders))
        if any(str(o.get("id")) not in self._client_ids and o.get("type") in translate.PROTECTIVE_TYPES
               for o in orders):
            self._learn_leg_names()  # a stop leg is read under its planned id, not as foreign
        orders = [{**o, "client_order_id": self._client_ids.get(str(o.get("id")), o.get("client_order_id"))}
                  if o.get("type") in translate.PROTECTIVE_TYPES else o for o in orders]
        reports = self._read_each("order", orders, translate.order_from_json,
                                  lambda raw: f"{raw.get('id')} ({raw.get('client_order_id')})")
        for report in reports:
            self._client_ids[str(report.broker_order_id)] = report.client_order_id
        return reports

    def _open_order_payloads(self, symbol: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"status": "open", "limit": OPEN_ORDERS_LIMIT, "nested": "false"}
        if symbol:
            params["symbols"] = symbol
        found = self._retrying("open orders",
                               self._guarded("open orders", lambda: self._client.get("/orders", params)))
        return [o for o in found or [] if isinstance(o, dict)]

    def fills(self, since: datetime) -> list[FillReport]:
        """Executions since `since`, one per FILL account activity (GET
        /v2/account/activities/FILL; alpaca-py's TradingClient has no method for it, so the
        client's generic `get` is used, with the same timeout and retries)."""
        activities = self._fill_activities(since)
        return self._read_each(
            "fill", activities,
            lambda a: translate.fill_report(a, self._client_order_id(str(a["order_id"]))),
            lambda a: f"{a.get('id')} (order {a.get('order_id')})",
        )

    def positions(self) -> list[PositionReport]:
        found = self._retrying("positions",
                               self._guarded("positions", lambda: self._client.get("/positions")))
        return self._read_each("position", [p for p in found or [] if isinstance(p, dict)],
                               translate.position_from_json, lambda raw: str(raw.get("symbol")))

    def account(self) -> AccountSnapshot:
        raw = self._retrying("account", self._guarded("account", lambda: self._client.get("/account")))
        try:
            return translate.account_from_json(raw if isinstance(raw, dict) else {}, datetime.now(UTC))
        except (ValueError, TypeError) as error:
            raise BrokerError(f"Alpaca answered account with a payload this adapter cannot read: "
                              f"{self._scrub(str(error))[:300]}") from None

    def close(self) -> None:
        self._client._session.close()

    # -- helpers -----------------------------------------------------------------------

    def _read_each(self, kind: str, items: list[dict], read: Callable[[dict], T],
                   name: Callable[[dict], str]) -> list[T]:
        """`read` applied to each item; an item it cannot read is listed in
        `unreadable_items` (replacing this kind's list) instead of failing the whole call."""
        done: list[T] = []
        unreadable: list[UnreadableItem] = []
        for raw in items:
            try:
                done.append(read(raw))
            except (ValueError, KeyError, TypeError) as error:  # pydantic's ValidationError is a ValueError
                problem = UnreadableItem(kind, name(raw), self._scrub(translate.describe_unreadable(raw, error)))
                log.warning("Alpaca %s %s left out: this adapter cannot read it (%s)",
                            kind, problem.key, problem.reason)
                unreadable.append(problem)
        self._unreadable[kind] = unreadable
        return done

    def _submit_around_protective_stops(self, intent: OrderIntent, refusal: str,
                                        planned_stop: float | None = None) -> OrderStatusReport:
        """Alpaca refused `intent` as a potential wash trade: an open order of the other side
        in the same symbol could trade against it. When those orders are all protective stops,
        cancel them and place the entry as an OTO order whose stop (`planned_stop`, the one the
        plan gave the entry, else the tightest of theirs) Alpaca holds until the entry fills; the canceled stops are listed in `displaced_stops`
        for the next session's stop upkeep, which sizes the stop to the whole position. A
        working limit order on the other side is a decision of its own: then this stays a
        rejection."""
        blocking = [o for o in self._open_order_payloads(intent.symbol)
                    if o.get("symbol") == intent.symbol and o.get("side") not in (None, str(intent.side))
                    and o.get("status") != "held"]
        movable = [o for o in blocking if o.get("type") in translate.PROTECTIVE_TYPES
                   and o.get("stop_price") not in (None, "")]
        if not blocking or len(movable) != len(blocking):
            log.warning("Alpaca refused %s as a potential wash trade; an opposite order that is not a "
                        "protective stop is working, so it stays refused", intent.client_order_id)
            return translate.rejected_report(
                intent, f"Alpaca: {refusal} (an open {'sell' if intent.side == 'buy' else 'buy'} order in "
                        f"{intent.symbol} that is not a protective stop blocks it; cancel it first)")
        prices = [float(o["stop_price"]) for o in movable]
        stop_price = planned_stop if planned_stop is not None else (
            max(prices) if intent.side == "buy" else min(prices))
        for order in movable:
            canceled = self.cancel(order["client_order_id"])
            self.displaced_stops.append(translate.DisplacedStop(
                client_order_id=order["client_order_id"], symbol=intent.symbol,
                side=canceled.side, quantity=canceled.remaining_quantity,
                stop_price=float(order["stop_price"]), entry_client_order_id=intent.client_order_id))
            log.warning("canceled protective stop %s (%s) so that %s could be placed: Alpaca refuses "
                        "an entry while an opposite order works; the entry carries a stop at %s",
                        order["client_order_id"], canceled.status, intent.client_order_id, stop_price)
        request = translate.oto_order_request(intent, stop_price)

        def attempt():
            existing = self._find_order(intent.client_order_id, "submit")
            return existing if existing is not None else self._client.submit_order(request)

        try:
            order = self._retrying("submit", attempt)
        except Exception as error:
            status = http_status(error)
            if status not in REJECTION_STATUSES:
                raise
            reason = self._scrub(error_reason(error))
            return translate.rejected_report(
                intent, f"Alpaca HTTP {status}: {reason} (its protective stops "
                        f"{', '.join(o['client_order_id'] for o in movable)} were canceled to make "
                        "room and must be placed again)")
        report = self._report(order)
        moved = ", ".join(o["client_order_id"] for o in movable)
        return dataclasses.replace(report, reason=f"placed with its own stop at {stop_price:g} "
                                                  f"(OTO); protective stop {moved} canceled to make room")

    def _fill_activities(self, since: datetime) -> list[dict]:
        params: dict[str, Any] = {
            "after": translate.activity_time_param(since),
            "direction": "asc",
            "page_size": ACTIVITY_PAGE_SIZE,
        }
        collected: list[dict] = []
        for _ in range(MAX_ACTIVITY_PAGES):
            page = self._retrying(
                "fills",
                self._guarded("fills", lambda: self._client.get("/account/activities/FILL", dict(params))),
            )
            page = [a for a in page or [] if a.get("activity_type", "FILL") == "FILL"]
            collected.extend(page)
            if len(page) < ACTIVITY_PAGE_SIZE:
                return collected
            params["page_token"] = page[-1]["id"]
        raise BrokerError(f"Alpaca returned more than {MAX_ACTIVITY_PAGES} pages of fills since "
                          f"{since.isoformat()}: ask for a shorter period")

    def _client_order_id(self, order_id: str) -> str:
        """Our client order id for an Alpaca order id (remembered; fetched when unknown)."""
        if order_id not in self._client_ids:
            self._learn_leg_names()  # an attached stop's fill carries its leg's id
        if order_id not in self._client_ids:

            def fetch():
                try:
                    return self._client.get_order_by_id(order_id)
                except Exception as error:
                    if http_status(error) == 404:
                        return None
                    self._raise_unless_transient(error, "fills")

            order = self._retrying("fills", fetch)
            # an execution of an order Alpaca no longer knows: keep it visible, flagged as foreign
            self._client_ids[order_id] = order.client_order_id if order is not None else f"alpaca-{order_id}"
        return self._client_ids[order_id]

    def _find_order(self, client_order_id: str, operation: str):
        """Alpaca's order with this client order id, or None; an attached stop's id finds the
        stop leg of its entry (named with that id). Transient errors propagate (to be
        retried); any other refusal becomes a BrokerError at once."""
        try:
            return self._client.get_order_by_client_id(client_order_id)
        except Exception as error:
            if http_status(error) != 404:
                self._raise_unless_transient(error, operation)
        entry_id = entry_of_attached_stop(client_order_id)
        if entry_id is None:
            return None
        entry = self._find_order(entry_id, operation)
        leg = translate.stop_leg(entry) if entry is not None else None
        return None if leg is None else leg.model_copy(update={"client_order_id": client_order_id})

    def _learn_leg_names(self) -> None:
        """Remember the attached-stop id of every recent OTO entry's stop leg (Alpaca lists a
        leg with an id of its own making and no link to its entry; the nested listing has it
        under the entry). Once per client: later legs are named when they are placed."""
        if self._legs_learned:
            return
        self._legs_learned = True
        params = {"status": "all", "nested": "true", "limit": OPEN_ORDERS_LIMIT, "direction": "desc",
                  "after": translate.activity_time_param(datetime.now(UTC) - LEG_LOOKBACK)}
        found = self._retrying("orders", self._guarded("orders", lambda: self._client.get("/orders", params)))
        for raw in found or []:
            if isinstance(raw, dict):
                self._client_ids.update(translate.leg_names(raw))

    def _report(self, order) -> OrderStatusReport:
        self._client_ids[str(order.id)] = order.client_order_id
        return translate.order_report(order)

    def _guarded(self, operation: str, fn: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            try:
                return fn()
            except Exception as error:
                self._raise_unless_transient(error, operation)

        return run

    def _raise_unless_transient(self, error: BaseException, operation: str):
        """Re-raise `error` for `call_with_retries` to retry (or to pass on, when it is not
        Alpaca's); turn Alpaca's refusals and unreadable answers into a BrokerError."""
        if is_transient(error) or not (http_status(error) is not None or is_unreadable(error)):
            raise error
        raise self._refused(operation, error) from None

    def _refused(self, operation: str, error: BaseException) -> BrokerError:
        status = http_status(error)
        if status is None:  # pydantic could not read the answer
            return BrokerError(f"Alpaca answered {operation} with a payload this adapter cannot read: "
                               f"{self._scrub(str(error))[:300]}")
        reason = self._scrub(error_reason(error))
        hint = ""
        if status in CREDENTIAL_STATUSES:
            kind = "paper" if self.config.paper else "live"
            hint = (f"; check {ENV_KEY_ID} and {ENV_SECRET_KEY} are the {kind} account's keys "
                    f"for {self.endpoint}")
        return BrokerError(f"Alpaca refused {operation} (HTTP {status}): {reason}{hint}")

    def _retrying(self, operation: str, fn: Callable[[], T]) -> T:
        return call_with_retries(
            fn,
            broker="Alpaca",
            operation=operation,
            attempts=self.config.max_attempts,
            base_delay=self.config.retry_base_delay,
            is_transient=is_transient,
            secrets=self.config.secrets,
            sleep=self._sleep,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, self.config.secrets)
