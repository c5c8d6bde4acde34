"""RobinhoodBroker: the `Broker` protocol on robin_stocks, with a TOTP login (pyotp).

Exactly once without a broker-side idempotency key: the caller's ledger is checked first
(not here); here, every client order id is mapped to its Robinhood order in a file under
`session_dir`, an attempt is recorded before each send, and before each send the recent
orders at Robinhood are searched for one that matches the intent and belongs to no other
client id. Such an order (sent before, answer lost) is adopted instead of sending again.
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

from trading_pipeline.brokers.base import BrokerError, OrderNotFound
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
ADOPT_WINDOW = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=1)  # between this machine's clock and Robinhood's


class RobinhoodBroker:
    """Robinhood through robin_stocks. robin_stocks keeps one global session, so use one
    instance per process and `close()` it (or use it as a context manager) when done.

    `transport` is the requests adapter that really sends (default: a plain `HTTPAdapter`);
    `limiter`, `retry_sleep` and `now` are there so tests need no real time.
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
        adopt_window: timedelta = ADOPT_WINDOW,
    ) -> None:
        self.config = config
        self._now = now
        self._retry_sleep = retry_sleep
        self._adopt_window = adopt_window
        self._prepare_session_dir()
        self._orders = OrderMap(config.session_dir)
        self._transport = GuardedTransport(
            inner=transport or HTTPAdapter(),
            limiter=limiter or robinhood_rate_limiter(),
            timeout=config.timeout_seconds,
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
    def token_file(self) -> Path:
        return token_file(self.config)

    # -- login ---------------------------------------------------------------------------

    def login(self) -> None:
        """Log in (reusing the stored token when it is still valid)."""
        self._retrying("login", self._ensure_logged_in)

    def _ensure_logged_in(self) -> None:
        with self._login_lock:
            if not self._sdk.logged_in:
                log_in(self._sdk, self.config, self._secrets())

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
            since = min(self._now() - self._adopt_window, entry.first_attempt - CLOCK_SKEW)
            return self._retrying(f"submit {cid}", lambda: self._adopt_or_send(intent, since))

    def _adopt_or_send(self, intent: OrderIntent, since: datetime) -> OrderStatusReport:
        cid = intent.client_order_id
        instrument = self._instrument_url(intent.symbol)
        if instrument is None:
            return translate.rejected_report(
                intent, f"Robinhood does not list the symbol {intent.symbol}; no order was placed"
            )
        lost = self._find_lost_order(intent, instrument, since)
        if lost is not None:
            self._orders.link(cid, lost["id"])
            log.warning("adopted Robinhood order %s for %s: sent before, answer lost", lost["id"], cid)
            return self._report(lost, cid, self._orders.get(cid))
        call = translate.sdk_order_call(intent)
        result = self._run(lambda: getattr(self._sdk.rh, call.function)(**call.kwargs))
        posts = [o for o in result.outcomes if o.method == "POST" and o.path == "/orders/"]
        post = posts[-1] if posts else None
        order = result.value
        if post is not None and post.status in (200, 201) and isinstance(order, dict) and order.get("id"):
            entry = self._orders.link(cid, order["id"])
            return self._report(order, cid, entry)
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

    def _find_lost_order(self, intent: OrderIntent, instrument: str, since: datetime) -> dict | None:
        found = self._read(
            "list recent orders",
            lambda: self._sdk.rh.get_all_stock_orders(start_date=translate.format_time(since)),
        )
        taken = set(self._orders.by_order_id())
        candidates = sorted(
            (o for o in (found.value or []) if isinstance(o, dict) and o.get("id") not in taken
             and translate.matches_intent(o, intent, instrument, since)),
            key=lambda o: o.get("created_at") or "",
        )
        if len(candidates) > 1:
            log.warning("%d unclaimed Robinhood orders match %s; adopting the oldest",
                        len(candidates), intent.client_order_id)
        return candidates[0] if candidates else None

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
        found = self._query("list open orders", lambda: self._sdk.rh.get_all_open_stock_orders())
        mapped = self._orders.by_order_id()
        reports = []
        for order in found.value or []:
            cid, entry = self._client_id(order, mapped)
            reports.append(self._report(order, cid, entry))
        return reports

    def fills(self, since: datetime) -> list[FillReport]:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        found = self._query(
            "list fills",
            lambda: self._sdk.rh.get_all_stock_orders(start_date=translate.format_time(since)),
        )
        mapped = self._orders.by_order_id()
        reports: list[FillReport] = []
        for order in found.value or []:
            if not order.get("executions"):
                continue
            cid, entry = self._client_id(order, mapped)
            symbol = entry.symbol if entry else self._symbol_for(order["instrument"])
            reports.extend(translate.fill_reports(order, client_order_id=cid, symbol=symbol, since=since))
        return sorted(reports, key=lambda f: f.filled_at)

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
