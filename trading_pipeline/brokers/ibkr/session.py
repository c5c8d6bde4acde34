"""One ib_insync connection, driven from any thread, reconnected when it drops.

ib_insync is asyncio-based and binds to the event loop of the thread that connected; a
Dagster step may run in any thread. So the connection lives on a private event-loop
thread and callers hand it coroutines: the caller's thread never needs an event loop,
and updates from TWS (fills, status changes) are processed while the caller is away.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from trading_pipeline.brokers.base import BrokerError
from trading_pipeline.brokers.ibkr import codes
from trading_pipeline.brokers.ibkr.config import ENV_ACCOUNT, IbkrConfig
from trading_pipeline.brokers.retry import call_with_retries
from trading_pipeline.brokers.secrets import MASK, scrub

if TYPE_CHECKING:
    from ib_insync import IB

T = TypeVar("T")
log = logging.getLogger("trading_pipeline.brokers.ibkr")

BROKER = "IBKR"
_RAW_MANAGED_ACCOUNTS = "<<< 15,1,"  # ib_insync's debug line for the managedAccounts message
_IB_LOGGERS = ("ib_insync.client", "ib_insync.wrapper", "ib_insync.ib", "ib_insync.Decoder")
# TWS errors (reqId -1) that mean it will not serve this client
_CONNECT_REFUSALS = {326: "client id already in use", 502: "TWS/Gateway refused the API connection"}


class _ScrubbingFilter(logging.Filter):
    """Masks registered sensitive values (account ids) in ib_insync's own log records."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.append(secret)

    def discard(self, secret: str) -> None:
        with self._lock:
            if secret in self._secrets:
                self._secrets.remove(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        text = record.getMessage()
        if text.startswith(_RAW_MANAGED_ACCOUNTS):
            # logged at DEBUG before anyone can know which ids to hide
            clean = _RAW_MANAGED_ACCOUNTS + MASK
        else:
            clean = scrub(text, secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_LOG_SCRUBBER = _ScrubbingFilter()
for _name in _IB_LOGGERS:
    logging.getLogger(_name).addFilter(_LOG_SCRUBBER)


class _LoopThread:
    """An asyncio event loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)  # ib_insync looks the loop up per thread
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():
                raise  # the operation's own timeout, with its own message
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class IbkrSession:
    """Runs operations against TWS with bounded time and retries, reconnecting as needed.

    Every operation is a coroutine function taking the connected `IB`. Transient failures
    (refused, reset, dropped, timed out) drop the connection so the next attempt starts
    clean; after `max_attempts` the caller gets `BrokerUnavailable`.
    """

    def __init__(self, config: IbkrConfig, *, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._sleep = sleep
        self._lock = threading.RLock()  # one operation at a time: ib_insync shares request keys
        self._loop: _LoopThread | None = None
        self._ib: IB | None = None
        self._closed = False
        self.account_id: str | None = None  # the account orders go to, once connected
        self.link_down = False  # TWS told us (1100) it has lost IB, and not yet 1101/1102
        self.connect_count = 0
        self._scrubbed: list[str] = []  # values this session registered with the log filter
        if config.account:
            self._hide_in_logs(config.account.value)

    @property
    def secrets(self) -> list[str]:
        """The configured account and every account the login manages."""
        return list(self._scrubbed)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def run(self, operation: str, work: Callable[[IB], Awaitable[T]]) -> T:
        """Run `work` on a connected session; retry transient failures; then fail clearly."""
        with self._lock:
            if self._closed:
                raise BrokerError(f"{BROKER} session is closed; build a new broker to {operation}")
            return call_with_retries(
                lambda: self._attempt(work),
                broker=BROKER,
                operation=operation,
                attempts=self.config.max_attempts,
                base_delay=self.config.retry_base_delay,
                max_delay=max(self.config.retry_base_delay * 8, 0.01),
                secrets=self.secrets,
                sleep=self._sleep,
            )

    async def request(self, awaitable: Awaitable[T]) -> T:
        """Await one TWS request within the configured request timeout."""
        try:
            return await asyncio.wait_for(awaitable, self.config.request_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"TWS did not answer within {self.config.request_timeout:g} s"
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._loop is not None:
                try:
                    self._loop.run(self._disconnect(), timeout=5)
                except Exception:  # closing must not fail the caller
                    pass
                self._loop.stop()
                self._loop = None
            for secret in self._scrubbed:
                _LOG_SCRUBBER.discard(secret)
            self._scrubbed.clear()

    # internals

    def _hide_in_logs(self, secret: str) -> None:
        if secret and secret not in self._scrubbed:
            self._scrubbed.append(secret)
            _LOG_SCRUBBER.add(secret)

    def _attempt(self, work: Callable[[IB], Awaitable[T]]) -> T:
        if self._loop is None:
            self._loop = _LoopThread(name=f"ibkr-{self.config.client_id}")
        # a backstop only: connect and every request carry their own timeouts
        backstop = self.config.connect_timeout + 8 * self.config.request_timeout + 5
        try:
            return self._loop.run(self._connected_then(work), timeout=backstop)
        except (ConnectionError, TimeoutError, OSError) as exc:
            log.warning("IBKR call failed (%s); the next attempt reconnects", self.scrub(
                f"{type(exc).__name__}: {exc}"))
            try:  # start the next attempt from a clean connection
                self._loop.run(self._disconnect(), timeout=5)
            except Exception:
                self._ib = None
            raise

    async def _connected_then(self, work: Callable[[IB], Awaitable[T]]) -> T:
        if self._ib is None or not self._ib.isConnected():
            await self._connect()
        return await work(self._ib)

    async def _disconnect(self) -> None:
        if self._ib is not None:
            self._ib.disconnect()
            self._ib = None

    async def _connect(self) -> None:
        from ib_insync import IB

        await self._disconnect()
        ib = IB()  # a fresh one: ib_insync keeps stale trades across its own reconnects
        ib.TimezoneTWS = self.config.tws_timezone  # for execution times that name no zone
        self.link_down = False
        ib.errorEvent += self._on_link_notice  # for the connection's life: 1100 can come at once
        refusals: list[str] = []
        refused = asyncio.Event()

        def on_api_error(message: str) -> None:
            refusals.append(message)
            refused.set()

        def on_error(req_id: int, code: int, message: str, _contract) -> None:
            if req_id == -1 and code in _CONNECT_REFUSALS:
                refusals.append(f"{_CONNECT_REFUSALS[code]} (TWS error {code}: {message})")

        def on_api_start() -> None:
            # account ids arrive before any position or order is logged: hide them now
            for account in ib.client.getAccounts():
                self._hide_in_logs(account)

        ib.client.apiStart += on_api_start
        ib.client.apiError += on_api_error
        ib.errorEvent += on_error
        cfg = self.config
        # no account here: ib_insync would wait out the timeout for updates of a wrong one;
        # the account is checked right after the handshake instead
        connecting = asyncio.ensure_future(
            ib.connectAsync(cfg.host, cfg.port, cfg.client_id, timeout=cfg.connect_timeout)
        )
        watcher = asyncio.ensure_future(refused.wait())
        timed_out = TimeoutError(
            f"TWS/Gateway at {cfg.host}:{cfg.port} did not complete the API handshake "
            f"within {cfg.connect_timeout:g} s"
        )
        try:
            # ib_insync applies the timeout per stage; bound the whole connect by it
            await asyncio.wait(
                {connecting, watcher}, timeout=cfg.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not connecting.done():
                connecting.cancel()
                ib.disconnect()
                if not refused.is_set():
                    raise timed_out
                # TWS accepted the socket then hung up: waiting longer would not help
                raise ConnectionError(
                    f"TWS/Gateway at {cfg.host}:{cfg.port} closed the API connection: "
                    + "; ".join(refusals[-2:])
                )
            try:
                connecting.result()
            except asyncio.TimeoutError:
                raise timed_out from None
        finally:
            watcher.cancel()
            ib.client.apiStart -= on_api_start
            ib.client.apiError -= on_api_error
            ib.errorEvent -= on_error
        try:
            self.account_id = self._choose_account(ib.managedAccounts())
        except BrokerError:
            ib.disconnect()
            raise
        self._ib = ib
        self.connect_count += 1
        log.info(
            "connected to TWS/Gateway at %s:%s as client %s (connection %d)",
            cfg.host, cfg.port, cfg.client_id, self.connect_count,
        )

    def _on_link_notice(self, req_id: int, code: int, _message: str, _contract) -> None:
        kind = codes.meaning(code)
        if req_id == -1 and kind is codes.Meaning.LINK_LOST:
            self.link_down = True
            log.warning("TWS lost its connection to IB (1100): no order is sent until it is back")
        elif req_id == -1 and kind is codes.Meaning.LINK_RESTORED:
            self.link_down = False
            log.info("TWS is connected to IB again (%s)", code)

    async def link_up(self) -> None:
        """Wait (within the request timeout) while TWS has lost IB: an order sent now would wait
        inside TWS with no answer, and whether it ever left could not be told."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout
        while self.link_down:
            if loop.time() >= deadline:
                raise ConnectionError(
                    "TWS has lost its connection to IB (error 1100) and did not report it "
                    "restored (1101/1102); no order was sent")
            await asyncio.sleep(0.01)

    def _choose_account(self, accounts: list[str]) -> str:
        cfg = self.config
        wanted = cfg.account.value if cfg.account else None
        if wanted is not None and wanted not in accounts:
            raise BrokerError(
                f"{ENV_ACCOUNT} is not one of the {len(accounts)} account(s) this TWS/Gateway "
                f"login manages; check {ENV_ACCOUNT}"
            )
        if wanted is None and len(accounts) != 1:
            raise BrokerError(
                f"the TWS/Gateway login manages {len(accounts)} accounts; set {ENV_ACCOUNT} "
                "to the one this pipeline trades"
            )
        account = wanted or accounts[0]
        is_paper = account.upper().startswith("D")  # IBKR paper accounts are DU…/DF…
        if cfg.mode == "paper" and not is_paper:
            raise BrokerError(
                "TRADING_ENV=paper but TWS/Gateway is logged in to a live account; "
                "log in to the paper account (or use the paper port) before running"
            )
        if cfg.mode == "live" and is_paper:
            raise BrokerError(
                "TRADING_ENV=live but TWS/Gateway is logged in to a paper account; "
                "log in to the live account or set TRADING_ENV=paper"
            )
        return account
