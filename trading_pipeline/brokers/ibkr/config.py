"""Connection settings for Interactive Brokers TWS / IB Gateway.

IBKR has no API keys: TWS or Gateway holds the login and the API client only needs a
socket address. The account id is still treated as sensitive (it identifies a real
brokerage account), so it is a `Secret` and never shows in reprs or error texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trading_pipeline.brokers.secrets import Secret

Mode = Literal["paper", "live"]

# The ports TWS and IB Gateway listen on out of the box.
_DEFAULT_PORTS: dict[tuple[Mode, bool], int] = {
    ("paper", False): 7497,
    ("live", False): 7496,
    ("paper", True): 4002,
    ("live", True): 4001,
}
_LIVE_PORTS = {port for (mode, _), port in _DEFAULT_PORTS.items() if mode == "live"}

ENV_HOST = "IBKR_HOST"
ENV_PORT = "IBKR_PORT"
ENV_CLIENT_ID = "IBKR_CLIENT_ID"
ENV_ACCOUNT = "IBKR_ACCOUNT"
ENV_GATEWAY = "IBKR_GATEWAY"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_port(env: Mode, gateway: bool) -> int:
    """The API port TWS (7497 paper / 7496 live) or IB Gateway (4002 / 4001) uses by default."""
    if env not in ("paper", "live"):
        raise ValueError(f"IBKR has a paper and a live mode, not {env!r}")
    return _DEFAULT_PORTS[(env, bool(gateway))]


@dataclass(frozen=True, kw_only=True)
class IbkrConfig:
    """Where TWS / Gateway listens and how long to wait for it.

    `mode` ("paper"/"live"), when given, is checked against the login at connect time:
    IBKR paper accounts start with "D", so a paper run that reaches a live login (or the
    reverse) is refused before anything is sent.
    """

    port: int
    host: str = "127.0.0.1"
    client_id: int = 17
    account: Secret | None = None
    connect_timeout: float = 10.0
    request_timeout: float = 10.0
    max_attempts: int = 3
    retry_base_delay: float = 0.5
    mode: Mode | None = None
    # the zone of the TWS login: older builds write execution times in it without naming it,
    # and ib_insync would otherwise read them in the host's zone
    tws_timezone: str = "America/New_York"

    def __post_init__(self) -> None:
        if isinstance(self.account, str) and not isinstance(self.account, Secret):
            object.__setattr__(self, "account", Secret(self.account) if self.account else None)
        problems = []
        if not self.host:
            problems.append(f"host is empty (set {ENV_HOST}, e.g. 127.0.0.1)")
        if not (isinstance(self.port, int) and 0 < self.port < 65536):
            problems.append(f"port must be a TCP port number (1-65535), got {self.port!r}")
        if not (isinstance(self.client_id, int) and self.client_id >= 0):
            problems.append(f"client_id must be a whole number >= 0, got {self.client_id!r}")
        for name in ("connect_timeout", "request_timeout"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive seconds, got {getattr(self, name)!r}")
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if self.retry_base_delay < 0:
            problems.append(f"retry_base_delay must be >= 0, got {self.retry_base_delay!r}")
        try:
            ZoneInfo(self.tws_timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            problems.append(f"tws_timezone must be an IANA zone such as America/New_York "
                            f"(the zone TWS/Gateway logs in with), got {self.tws_timezone!r}")
        if self.mode not in (None, "paper", "live"):
            problems.append(f"mode must be 'paper' or 'live', got {self.mode!r}")
        if problems:
            raise ValueError("invalid IBKR settings: " + "; ".join(problems))

    @classmethod
    def from_values(
        cls,
        *,
        trading_env: str,
        host: str | None = None,
        port: str | int | None = None,
        client_id: str | int | None = None,
        account: str | None = None,
        gateway: str | bool | None = None,
        **overrides,
    ) -> IbkrConfig:
        """Build from the raw `IBKR_*` values (strings or None), with errors naming the variable.

        `trading_env` is TRADING_ENV ("paper" or "live"); without `IBKR_PORT` the port is
        the default for that mode and `IBKR_GATEWAY`. A paper run pointed at a well-known
        live port is refused: that is real money.
        """
        if trading_env not in ("paper", "live"):
            raise ValueError(
                f"IBKR is used with TRADING_ENV=paper or TRADING_ENV=live, not {trading_env!r}; "
                "use the built-in simulator for local runs"
            )
        mode: Mode = trading_env  # type: ignore[assignment]
        use_gateway = _parse_bool(ENV_GATEWAY, gateway)
        if port is None or (isinstance(port, str) and not port.strip()):
            resolved_port = default_port(mode, use_gateway)
        else:
            resolved_port = _parse_int(ENV_PORT, port, "the TWS/Gateway API port, e.g. 7497")
            if mode == "paper" and resolved_port in _LIVE_PORTS:
                raise ValueError(
                    f"{ENV_PORT}={resolved_port} is a live-trading port but TRADING_ENV=paper; "
                    f"use {default_port('paper', use_gateway)} (paper) or set TRADING_ENV=live"
                )
        resolved_client_id = (
            17
            if client_id is None or (isinstance(client_id, str) and not client_id.strip())
            else _parse_int(ENV_CLIENT_ID, client_id, "a whole number unique per API client")
        )
        return cls(
            host=(host or "").strip() or "127.0.0.1",
            port=resolved_port,
            client_id=resolved_client_id,
            account=Secret(account.strip()) if account and account.strip() else None,
            mode=mode,
            **overrides,
        )


def _parse_int(variable: str, raw: str | int, meaning: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{variable} must be {meaning}, got {raw!r}")
    if isinstance(raw, int):
        return raw
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{variable} must be {meaning}, got {raw!r}") from None


def _parse_bool(variable: str, raw: str | bool | None) -> bool:
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{variable} must be true or false (IB Gateway or TWS), got {raw!r}")
