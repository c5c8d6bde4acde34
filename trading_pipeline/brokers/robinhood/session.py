"""robin_stocks' process-wide state, handled in one place.

robin_stocks keeps one global `requests.Session`, one logged-in flag and one output stream
for the whole process, and prints instead of raising. So: every SDK call runs under one
lock, with its prints captured (they are logged at DEBUG with secrets scrubbed, never
written to the console), and with the transport's per-request record reset first. One
Robinhood client per process is the only arrangement robin_stocks supports.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from trading_pipeline.brokers.robinhood.transport import GuardedTransport, Outcome
from trading_pipeline.brokers.secrets import scrub

log = logging.getLogger(__name__)

_SDK_LOCK = threading.RLock()
_MOUNT = "https://"


class TransientFailure(ConnectionError):
    """No answer, a 5xx, a 429 or an expired session: worth another attempt."""


@dataclass(frozen=True, slots=True)
class SdkResult:
    value: Any
    error: Exception | None
    outcomes: list[Outcome] = field(default_factory=list)
    printed: str = ""


class SdkSession:
    """robin_stocks with our transport mounted on its global session."""

    def __init__(self, transport: GuardedTransport) -> None:
        import robin_stocks.robinhood as rh  # imported late: it builds a global session on import
        from robin_stocks.robinhood import globals as rh_globals
        from robin_stocks.robinhood import helper as rh_helper
        from robin_stocks.robinhood import urls as rh_urls

        self.rh = rh
        self.helper = rh_helper  # request_get / request_post: the SDK's own request helpers
        self.urls = rh_urls
        self._helper = rh_helper
        self._session = rh_globals.SESSION
        self._transport = transport
        self._previous_adapter = None
        self._installed = False

    def install(self) -> None:
        with _SDK_LOCK:
            if self._installed:
                return
            self._previous_adapter = self._session.adapters.get(_MOUNT)
            self._session.mount(_MOUNT, self._transport)
            self._installed = True

    def uninstall(self) -> None:
        with _SDK_LOCK:
            self.forget_login()
            if self._installed and self._session.adapters.get(_MOUNT) is self._transport:
                if self._previous_adapter is not None:
                    self._session.mount(_MOUNT, self._previous_adapter)
                else:
                    self._session.adapters.pop(_MOUNT, None)
            self._installed = False
            self._transport.close()

    def forget_login(self) -> None:
        """Drop the login from robin_stocks' globals (the token file stays for the next login)."""
        with _SDK_LOCK:
            self._helper.set_login_state(False)
            self._session.headers.pop("Authorization", None)

    @property
    def logged_in(self) -> bool:
        return bool(self._helper.LOGGED_IN) and "Authorization" in self._session.headers

    @property
    def authorization(self) -> str | None:
        """The bearer token header, to scrub from anything we log."""
        value = self._session.headers.get("Authorization")
        return value.split(" ", 1)[-1] if value else None

    def call(self, fn: Callable[[], Any], secrets: Iterable[str | None], *,
             show_output: bool = False) -> SdkResult:
        """Run `fn` (which calls robin_stocks) and return its value or error, the record of
        its HTTP requests and what it printed (scrubbed). `show_output` leaves robin_stocks'
        prints on the terminal: its device approval prompts are for a person to read."""
        with _SDK_LOCK:
            self._transport.begin()
            printed = io.StringIO()
            previous_output = self._helper.get_output()
            if not show_output:
                self._helper.set_output(printed)
            value, error = None, None
            try:
                with contextlib.nullcontext() if show_output else contextlib.redirect_stdout(printed):
                    value = fn()
            except Exception as exc:  # robin_stocks raises bare Exception and TypeErrors on bad data
                error = exc
            finally:
                self._helper.set_output(previous_output)
            text = scrub(printed.getvalue().strip(), [*secrets, self.authorization])
            if text:
                log.debug("robin_stocks printed: %s", text)
            return SdkResult(value, error, self._transport.outcomes(), text)
