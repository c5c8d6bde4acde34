"""RobinhoodBroker: the `Broker` protocol on robin_stocks, with a TOTP login (pyotp).

Exactly once: the caller's ledger is checked first (not here). Here every order carries a
`ref_id` derived from its client order id: Robinhood's idempotency key, which it refuses to
book twice ("Order with this ref_id already exists."). A send whose answer was lost is simply
sent again: either it is booked now, or Robinhood refuses the repeat and the order is found
by its ref_id. Every client order id is also mapped to its Robinhood order in a file under
`session_dir` (an attempt is recorded before each send), so status and cancel find it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from trading_pipeline.brokers.base import BrokerError, OrderNotFound, OrderStateUnknown, UnreadableItem
from trading_pipeline.brokers.rate_limit import RateLimiter
from trading_pipeline.brokers.retry import call_with_retries
from trading_pipeline.brokers.robinhood import translate
from trading_pipeline.brokers.robinhood.config import RobinhoodConfig
from trading_pipeline.brokers.robinhood.login import log_in, token_file
from trading_pipeline.brokers.robinhood.order_map import MappedOrder, OrderMap
from trading_pipeline.brokers.robinhood.session import SdkResult, SdkSession, TransientFailure
from trading_pipeline.brokers.robinhood.transport import GuardedTransport, robinhood_rate_limiter
from trading_pipeline.brokers.secrets import scrub
from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatusReport,
    PositionReport,
)

log = logging.getLogger(__name__)

BROKER = "Robinhood"
CLOCK_SKEW = timedelta(minutes=1)  # between this machine's clock and Robinhood's
# Robinhood cancels a good-til-canceled order 90 days after it was placed, so no open order
# was last updated longer ago than that: open orders are looked for in this window only.
OPEN_ORDER_LOOKBACK = timedelta(days=100)
MAX_ORDER_PAGES = 50  # of Robinhood's order list (100 a page): stops a runaway history walk
DUPLICATE_REF_ID = "ref_id"  # the field Robinhood names when it refuses a reused ref_id


class RobinhoodBroker:
    """Robinhood through robin_stocks. robin_stocks keeps one global session, so use one
    instance per process and `close()` it (or use it as a context manager) when done.

    `transport` is the requests adapter that really sends (default: a plain `HTTPAdapter`);
    `limiter`, `retry_sleep` and `now` are there so tests need no real time. `interactive`
    lets Robinhood's device approval flow run (only `first_login`, at a terminal, sets it).
    """

    name = "robinhood"

    def __init__(
        self,
        config: RobinhoodConfig,
        *,
        transport: HTTPAdapter | None = None,
        limiter: RateLimiter | None = None,
        retry_sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        interactive: bool = False,
        max_order_pages: int = MAX_ORDER_PAGES,
    ) -> None:
        self.config = config
        self._now = now
        self._retry_sleep = retry_sleep
        self._interactive = interactive
        self._max_order_pages = max_order_pages
        self._unreadable: dict[str, list[UnreadableItem]] = {}
        self._prepare_session_dir()
        self._orders = OrderMap(config.session_dir)
        self._transport = GuardedTransport(
            inner=transport or HTTPAdapter(),
            limiter=limiter or robinhood_rate_limiter(),
            timeout=config.timeout_seconds,
            interactive=interactive,
        )
        self._sdk = SdkSession(self._transport)
        self._sdk.install()
        self._instrument_urls: dict[str, str] = {}  # symbol -> instrument URL
        self._symbols: dict[str, str] = {}  # instrument URL -> symbol
        self._login_lock = threading.Lock()
        self._submit_lock = threading.Lock()

    def __repr__(self) -> str:
        folder = str(self.config.session_dir)
        return f"RobinhoodBroker(session_dir={folder!r}, logged_in={self._sdk.logged_in})"

    def __enter__(self) -> "RobinhoodBroker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def unreadable_items(self) -> list[UnreadableItem]:
        """What the latest open_orders() and fills() calls could not read (an order state this
        adapter does not know, an order it cannot parse): left out of that call's answer and
        listed here, for reconciliation to raise as a break."""
        return [item for items in self._unreadable.values() for item in items]

    @property
    def token_file(self) -> Path:
        return token_file(self.config)

    # -- login ---------------------------------------------------------------------------

    def login(self) -> None:
        """Log in (reusing the stored token when it is still valid)."""
        self._retrying("login", self._ensure_logged_in)

    def _ensure_logged_in(self) -> None:
        with self._login_lock:
            if not self._sdk.logged_in:
                log_in(self._sdk, self.config, self._secrets(), interactive=self._interactive)

    def _prepare_session_dir(self) -> None:
        folder = self.config.session_dir
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)

    # -- calling robin_stocks --------------------------------------------------------------

    def _secrets(self) -> list[str | None]:
        return [*self.config.secrets, self._sdk.authorization]

    def _retrying(self, operation: str, fn: Callable[[], Any]) -> Any:
        return call_with_retries(
            fn,
            broker=BROKER,
            operation=operation,
            attempts=self.config.max_attempts,
            base_delay=self.config.retry_base_delay,
            is_transient=lambda error: isinstance(error, TransientFailure),
            secrets=self._secrets(),
            sleep=self._retry_sleep,
        )

    def _run(self, fn: Callable[[], Any]) -> SdkResult:
        """One attempt: log in if needed, call robin_stocks, raise `TransientFailure` when any of
        its requests went unanswered, hit a 5xx or 429, or found the session expired."""
        self._ensure_logged_in()
        result = self._sdk.call(fn, self._secrets())
        if any(o.status == 401 for o in result.outcomes):
            self._sdk.forget_login()
            raise TransientFailure("the Robinhood session expired (HTTP 401)")
        failed = [o for o in result.outcomes if o.transient]
        if failed:
            raise TransientFailure("; ".join(o.describe() for o in failed[-2:]))
        if isinstance(result.error, requests.RequestException):
            raise TransientFailure(type(result.error).__name__)
        return result

    def _read(self, operation: str, fn: Callable[[], Any], allow: tuple[int, ...] = ()) -> SdkResult:
        """`_run` for look-ups, where a refusal (4xx) or an SDK error is a clear failure."""
        result = self._run(fn)
        refused = [o for o in result.outcomes if o.refused and o.status not in allow]
        if refused:
            last = refused[-1]
            raise BrokerError(
                f"Robinhood refused to {operation} ({last.describe()}): "
                + scrub(translate.rejection_reason(last.body), self._secrets())
            )
        if result.error is not None and not any(o.status in allow for o in result.outcomes):
            raise BrokerError(
                f"robin_stocks failed to {operation}: "
                + scrub(f"{type(result.error).__name__}: {result.error}", self._secrets())
            )
        return result

    def _query(self, operation: str, fn: Callable[[], Any], allow: tuple[int, ...] = ()) -> SdkResult:
        return self._retrying(operation, lambda: self._read(operation, fn, allow))

    # -- symbols -------------------------------------------------------------------------

    def _instrument_url(self, symbol: str) -> str | None:
        symbol = symbol.upper()
        if symbol not in self._instrument_urls:
            found = self._read(
                f"look up {symbol}", lambda: self._sdk.rh.get_instruments_by_symbols(symbol)
            )
            items = [i for i in (found.value or []) if isinstance(i, dict) and i.get("url")]
            if not items:
                return None
            self._instrument_urls[symbol] = items[0]["url"]
            self._symbols[items[0]["url"]] = symbol
        return self._instrument_urls[symbol]

    def _symbol_for(self, instrument_url: str) -> str:
        if instrument_url not in self._symbols:
            found = self._query(
                "look up an instrument", lambda: self._sdk.rh.get_instrument_by_url(instrument_url)
            )
            if not isinstance(found.value, dict) or not found.value.get("symbol"):
                raise BrokerError(f"Robinhood returned no symbol for instrument {instrument_url}")
            self._symbols[instrument_url] = found.value["symbol"]
        return self._symbols[instrument_url]

    # -- orders --------------------------------------------------------------------------

    def submit(self, intent: OrderIntent) -> OrderStatusReport:
        reason = translate.unsupported_reason(intent)
        if reason:
            return translate.rejected_report(intent, reason)
        cid = intent.client_order_id
        with self._submit_lock:
            entry = self._orders.get(cid)
            if entry is not None and entry.order_id:
                report = self.order_status(cid)
                if report is None:
                    raise BrokerError(
                        f"{cid} was placed at Robinhood as order {entry.order_id}, which Robinhood "
                        "no longer reports; not sending it again: check the account in the app"
                    )
                return report
            entry = self._orders.record_attempt(intent, self._now())
            since = entry.first_attempt - CLOCK_SKEW
            return self._retrying(f"submit {cid}", lambda: self._send(intent, since))

    def _send(self, intent: OrderIntent, since: datetime) -> OrderStatusReport:
        """Post the order with its deterministic ref_id. Safe to repeat: a repeat that reaches
        Robinhood after the first was booked is refused, and the booked order is reported."""
        cid = intent.client_order_id
        instrument = self._instrument_url(intent.symbol)
        if instrument is None:
            return translate.rejected_report(
                intent, f"Robinhood does not list the symbol {intent.symbol}; no order was placed"
            )
        rh, helper, urls = self._sdk.rh, self._sdk.helper, self._sdk.urls

        def place():
            account_url = rh.load_account_profile(info="url")
            quotes = rh.get_quotes(intent.symbol.upper())
            quote = quotes[0] if quotes and isinstance(quotes[0], dict) else None
            if not account_url or quote is None:
                return None  # the outcomes say why (a refusal or no answer)
            payload, as_json = translate.order_payload(
                intent, account_url=account_url, instrument_url=instrument, quote=quote,
                now=datetime.now())  # robin_stocks stamps bid_ask_timestamp in local time
            return helper.request_post(urls.orders_url(), payload, json=as_json)

        result = self._run(place)
        posts = [o for o in result.outcomes if o.method == "POST" and o.path == "/orders/"]
        post = posts[-1] if posts else None
        order = result.value
        if post is not None and post.status in (200, 201) and isinstance(order, dict) and order.get("id"):
            entry = self._orders.link(cid, order["id"])
            return self._report(order, cid, entry)
        if post is not None and post.refused and isinstance(post.body, dict) and DUPLICATE_REF_ID in post.body:
            return self._booked_before(intent, since)
        refused = post if post is not None and post.refused else next(
            (o for o in reversed(result.outcomes) if o.refused), None
        )
        if refused is not None:
            said = translate.rejection_reason(refused.body, refused.status)
            if refused is not post:
                said = f"no order was placed: {refused.describe()}: {said}"
            return translate.rejected_report(intent, scrub(said, self._secrets()))
        cause = f"{type(result.error).__name__}: {result.error}" if result.error else result.printed
        raise BrokerError(
            f"robin_stocks did not place {cid}: " + scrub(cause or "no answer and no error", self._secrets())
        )

    def _booked_before(self, intent: OrderIntent, since: datetime) -> OrderStatusReport:
        """Robinhood refused the ref_id as already used: an earlier send (answer lost) booked
        the order. Find it by its ref_id and report it."""
        cid, ref_id = intent.client_order_id, translate.ref_id_for(intent.client_order_id)
        found = [o for o in self._orders_since(since, "find an order by its ref_id") if o.get("ref_id") == ref_id]
        if not found:
            raise OrderStateUnknown(
                f"Robinhood says an order with ref_id {ref_id} ({cid}) exists but does not list it "
                f"among the orders updated since {since.isoformat()}: not sending it again; look "
                "for it in the Robinhood app and record what you find"
            )
        order = found[0]
        entry = self._orders.link(cid, order["id"])
        log.warning("Robinhood order %s for %s was booked by an earlier send whose answer was lost",
                    order["id"], cid)
        return self._report(order, cid, entry)

    def _orders_since(self, since: datetime, operation: str) -> list[dict]:
        """Robinhood's orders updated since `since`, page by page, at most `max_order_pages`."""
        helper, urls = self._sdk.helper, self._sdk.urls
        url: str | None = urls.orders_url(start_date=translate.format_time(since))
        orders: list[dict] = []
        for _ in range(self._max_order_pages):
            page = self._query(operation, lambda: helper.request_get(url, "regular")).value
            if not isinstance(page, dict):
                raise BrokerError(f"Robinhood answered {operation} with no list of orders")
            orders.extend(o for o in page.get("results") or [] if isinstance(o, dict))
            url = page.get("next")
            if not url:
                return orders
        raise BrokerError(
            f"Robinhood lists more than {self._max_order_pages} pages of orders updated since "
            f"{since.isoformat()} ({operation}); nothing was read. Ask for a shorter period, or "
            "raise max_order_pages after checking the account in the app"
        )

    def _resolve(self, client_order_id: str) -> tuple[str | None, MappedOrder | None]:
        entry = self._orders.get(client_order_id)
        if entry is not None and entry.order_id:
            return entry.order_id, entry
        if client_order_id.startswith(translate.EXTERNAL_PREFIX):
            return client_order_id.removeprefix(translate.EXTERNAL_PREFIX), None
        return None, entry

    def _report(self, order: dict, cid: str, entry: MappedOrder | None) -> OrderStatusReport:
        symbol = entry.symbol if entry else self._symbol_for(order["instrument"])
        try:
            return translate.order_report(
                order, client_order_id=cid, symbol=symbol, order_type=entry.type if entry else None
            )
        except (KeyError, ValueError, TypeError) as error:
            raise BrokerError(f"Robinhood order {order.get('id')} could not be read: {error}") from None

    def _client_id(self, order: dict, mapped: dict[str, MappedOrder]) -> tuple[str, MappedOrder | None]:
        entry = mapped.get(order.get("id"))
        return (entry.client_order_id if entry else translate.EXTERNAL_PREFIX + str(order.get("id"))), entry

    def order_status(self, client_order_id: str) -> OrderStatusReport | None:
        order_id, entry = self._resolve(client_order_id)
        if order_id is None:
            return None
        found = self._query(
            f"read order {client_order_id}",
            lambda: self._sdk.rh.get_stock_order_info(order_id),
            allow=(404,),
        )
        if any(o.status == 404 for o in found.outcomes) or not isinstance(found.value, dict):
            return None
        return self._report(found.value, client_order_id, entry)

    def cancel(self, client_order_id: str) -> OrderStatusReport:
        order_id, _ = self._resolve(client_order_id)
        if order_id is None:
            raise OrderNotFound(f"Robinhood has no order for {client_order_id}: it was never placed")
        # 400 means "cannot be canceled" (already filled or canceled): the status says which.
        done = self._query(
            f"cancel {client_order_id}",
            lambda: self._sdk.rh.cancel_stock_order(order_id),
            allow=(400, 404),
        )
        if any(o.status == 404 for o in done.outcomes):
            raise OrderNotFound(f"Robinhood does not know order {order_id} ({client_order_id})")
        report = self.order_status(client_order_id)
        if report is None:
            raise OrderNotFound(f"Robinhood does not know order {order_id} ({client_order_id})")
        return report

    def open_orders(self) -> list[OrderStatusReport]:
        # robin_stocks' get_all_open_stock_orders walks the account's whole history; open
        # orders were all updated within the look-back, so only that part is read
        found = self._orders_since(self._now() - OPEN_ORDER_LOOKBACK, "list open orders")
        mapped = self._orders.by_order_id()
        reports, unreadable = [], []
        for order in found:
            if order.get("cancel") is None:  # robin_stocks' own test for "open"
                continue
            cid, entry = self._client_id(order, mapped)
            try:
                reports.append(self._report(order, cid, entry))
            except BrokerError as error:
                unreadable.append(self._unreadable_order("order", order, error))
        self._unreadable["order"] = unreadable
        return reports

    def fills(self, since: datetime) -> list[FillReport]:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        found = self._orders_since(since, "list fills")
        mapped = self._orders.by_order_id()
        reports: list[FillReport] = []
        unreadable = []
        for order in found:
            if not order.get("executions"):
                continue
            cid, entry = self._client_id(order, mapped)
            try:
                symbol = entry.symbol if entry else self._symbol_for(order["instrument"])
                reports.extend(translate.fill_reports(order, client_order_id=cid, symbol=symbol, since=since))
            except (BrokerError, KeyError, ValueError, TypeError) as error:
                unreadable.append(self._unreadable_order("fill", order, error))
        self._unreadable["fill"] = unreadable
        return sorted(reports, key=lambda f: f.filled_at)

    def _unreadable_order(self, kind: str, order: dict, error: Exception) -> UnreadableItem:
        reason = scrub(f"state {order.get('state')!r}: {error}", self._secrets())[:300]
        log.warning("Robinhood order %s left out of %s: %s", order.get("id"), kind, reason)
        return UnreadableItem(kind, str(order.get("id")), reason)

    # -- holdings ------------------------------------------------------------------------

    def positions(self) -> list[PositionReport]:
        found = self._query("list positions", lambda: self._sdk.rh.get_open_stock_positions())
        reports = []
        for position in found.value or []:
            if float(position.get("quantity") or 0) == 0:
                continue
            symbol = position.get("symbol") or self._symbol_for(position["instrument"])
            reports.append(translate.position_report(position, symbol))
        return reports

    def account(self) -> AccountSnapshot:
        rh = self._sdk.rh
        found = self._query(
            "read the account", lambda: (rh.load_account_profile(), rh.load_portfolio_profile())
        )
        account, portfolio = found.value
        if not isinstance(account, dict) or not isinstance(portfolio, dict):
            raise BrokerError("Robinhood returned no brokerage account for this login")
        return translate.account_snapshot(account, portfolio, at=self._now())

    def close(self) -> None:
        """Forget the login in robin_stocks' globals and unmount our transport."""
        self._sdk.uninstall()
