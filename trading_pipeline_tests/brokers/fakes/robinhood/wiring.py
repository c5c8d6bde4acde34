"""Wiring for tests: the loopback transport, a virtual clock, and a ready-made rig."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from trading_pipeline_tests.brokers.fakes.robinhood.server import FakeRobinhood


class LoopbackTransport(HTTPAdapter):
    """Sends https://api.robinhood.com/... to the fake on 127.0.0.1; refuses every other host."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        if parts.scheme != "https" or parts.netloc != "api.robinhood.com":
            raise requests.ConnectionError(f"tests reach 127.0.0.1 only, not {parts.netloc}")
        request.url = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        return super().send(request, **kwargs)


class RefuseNetwork(HTTPAdapter):
    """Mounted on robin_stocks' session between tests: nothing may leave the machine."""

    def send(self, request, **kwargs):
        raise requests.ConnectionError("robin_stocks is not connected to anything in tests")


class VirtualClock:
    """A monotonic clock that moves only when someone sleeps on it (no real waiting)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(seconds, 0.0)
            self.sleeps.append(seconds)
        time.sleep(0)  # let other threads run, as a real sleep would


FAKE_USERNAME = "FAKEUSER-SHOULD-NOT-LEAK"
FAKE_PASSWORD = "FAKEPASS-SHOULD-NOT-LEAK"
FAKE_TOTP_SECRET = "FAKESECRETSHOULDNOTLEAK"  # valid base32, and recognisable in any output
OTHER_TOTP_SECRET = "OTHERSECRETNOTTHEFAKEONE"  # a valid secret the fake does not expect


APPROVED_DEVICE = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"  # approved once, as by robinhood-login


class RobinhoodRig:
    """A started fake, a virtual clock, and brokers wired to both (closed together).

    With `approved_device` (the default) the session folder starts as `robinhood-login`
    leaves it on a machine whose device Robinhood approved: a session file holding that
    device token (and an access token that has long expired), so brokers log in unattended.
    """

    def __init__(self, folder: Path, *, approved_device: bool = True, **fake_options) -> None:
        reset_robin_stocks()
        self.folder = folder
        self.clock = VirtualClock()
        self.fake = FakeRobinhood(username=FAKE_USERNAME, password=FAKE_PASSWORD,
                                  totp_secret=FAKE_TOTP_SECRET, clock=self.clock, **fake_options).start()
        self._brokers: list = []
        if approved_device:
            self.fake.approve_device(APPROVED_DEVICE)
            write_session_file(folder / "session", APPROVED_DEVICE)

    def config(self, **overrides):
        from trading_pipeline.brokers.robinhood import RobinhoodConfig

        values = dict(username=FAKE_USERNAME, password=FAKE_PASSWORD, totp_secret=FAKE_TOTP_SECRET,
                      session_dir=self.folder / "session")
        return RobinhoodConfig(**{**values, **overrides})

    def broker(self, *, limiter=None, now=None, max_order_pages=None, **config_overrides):
        from trading_pipeline.brokers.robinhood import RobinhoodBroker, robinhood_rate_limiter

        extra = {"now": now} if now is not None else {}
        if max_order_pages is not None:
            extra["max_order_pages"] = max_order_pages
        broker = RobinhoodBroker(
            self.config(**config_overrides),
            transport=LoopbackTransport(self.fake.port),
            limiter=limiter or robinhood_rate_limiter(self.clock, self.clock.sleep),
            retry_sleep=self.clock.sleep,
            **extra,
        )
        self._brokers.append(broker)
        return broker

    def close(self) -> None:
        for broker in self._brokers:
            broker.close()
        self.fake.stop()
        reset_robin_stocks()


def write_session_file(folder: Path, device_token: str, access_token: str = "expired-long-ago") -> Path:
    """A robin_stocks session pickle (its own keys) holding `device_token`, mode 600."""
    import os
    import pickle

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "robinhood.pickle"
    with path.open("wb") as handle:
        pickle.dump({"token_type": "Bearer", "access_token": access_token,
                     "refresh_token": "expired-refresh", "device_token": device_token}, handle)
    os.chmod(path, 0o600)
    return path


def reset_robin_stocks() -> None:
    """Put robin_stocks' process-wide globals back to logged-out, offline state."""
    from robin_stocks.robinhood import globals as rh_globals
    from robin_stocks.robinhood import helper as rh_helper

    rh_helper.set_login_state(False)
    rh_globals.SESSION.headers.pop("Authorization", None)
    rh_globals.SESSION.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    rh_globals.SESSION.mount("https://", RefuseNetwork())
    rh_globals.SESSION.mount("http://", RefuseNetwork())
