"""Robinhood credentials and limits, and the rule that Robinhood trades real money only."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from pathlib import Path

from trading_pipeline.brokers.base import BrokerError
from trading_pipeline.brokers.secrets import Secret, scrub

ENV_USERNAME = "ROBINHOOD_USERNAME"
ENV_PASSWORD = "ROBINHOOD_PASSWORD"
ENV_TOTP_SECRET = "ROBINHOOD_TOTP_SECRET"


class RobinhoodModeError(ValueError):
    """Robinhood was chosen for an environment it cannot serve (it has no paper mode)."""


class RobinhoodLoginError(BrokerError):
    """Robinhood refused the login (credentials, MFA code or device verification).

    Retrying does not help; the message says what to check and never contains credentials.
    """


def ensure_environment_allowed(trading_env: str) -> None:
    """Refuse Robinhood anywhere but TRADING_ENV=live: it has no paper or sandbox account."""
    env = str(trading_env).strip().lower()
    if env == "live":
        return
    if env == "paper":
        raise RobinhoodModeError(
            "Robinhood has no paper mode: use TRADING_BROKER=alpaca or ibkr for paper, "
            "or TRADING_ENV=live to trade real money at Robinhood"
        )
    raise RobinhoodModeError(
        f"Robinhood trades real money only and cannot run with TRADING_ENV={env or '(empty)'}: "
        "use the built-in simulator for local runs, alpaca or ibkr for paper, or TRADING_ENV=live"
    )


def _secret(value: str) -> Secret:
    # Secret(Secret(x)) would wrap the mask "***" (str() of a Secret), not x.
    return value if isinstance(value, Secret) else Secret(value)


def _totp_problem(raw: str) -> str | None:
    """Why pyotp cannot use `raw` as a TOTP secret (without repeating it), or None."""
    import pyotp

    try:
        pyotp.TOTP(raw).now()
    except (binascii.Error, ValueError, TypeError) as error:
        return scrub(str(error), [raw]) or type(error).__name__
    return None


@dataclass(frozen=True, kw_only=True)
class RobinhoodConfig:
    """Everything the Robinhood adapter needs.

    `session_dir` holds the login token pickle and the order map (both mode 600, the
    folder 700); give it the project's home, never the user's home folder.
    """

    username: Secret
    password: Secret
    totp_secret: Secret
    session_dir: Path
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    retry_base_delay: float = 1.0

    def __post_init__(self) -> None:
        for name in ("username", "password", "totp_secret"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, _secret(value))
        if isinstance(self.totp_secret, Secret):
            # Authenticator apps show the secret in groups of four: accept that spelling.
            compact = self.totp_secret.value.replace(" ", "").upper()
            object.__setattr__(self, "totp_secret", Secret(compact))
        if isinstance(self.session_dir, str):
            object.__setattr__(self, "session_dir", Path(self.session_dir))
        problems = list(self._problems())
        if problems:
            raise ValueError("Robinhood configuration: " + "; ".join(problems))
        # robin_stocks resolves relative folders against the working directory at login time.
        object.__setattr__(self, "session_dir", self.session_dir.expanduser().resolve())

    def _problems(self):
        env_names = {"username": ENV_USERNAME, "password": ENV_PASSWORD, "totp_secret": ENV_TOTP_SECRET}
        for name, env_name in env_names.items():
            value = getattr(self, name)
            if not isinstance(value, Secret) or not value.value.strip():
                yield f"{name} is empty (set {env_name})"
        if isinstance(self.totp_secret, Secret) and self.totp_secret.value:
            problem = _totp_problem(self.totp_secret.value)
            if problem:
                yield (
                    f"{ENV_TOTP_SECRET} is not a usable TOTP secret ({problem}): give the base32 "
                    "text Robinhood shows when you set up an authenticator app (letters A-Z, digits 2-7)"
                )
        if not isinstance(self.session_dir, Path) or not str(self.session_dir).strip():
            yield "session_dir is empty (give the folder that holds the Robinhood session token)"
        if not (isinstance(self.timeout_seconds, (int, float)) and self.timeout_seconds > 0):
            yield f"timeout_seconds must be positive, got {self.timeout_seconds!r}"
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            yield f"max_attempts must be at least 1, got {self.max_attempts!r}"
        if not (isinstance(self.retry_base_delay, (int, float)) and self.retry_base_delay >= 0):
            yield f"retry_base_delay must be >= 0 seconds, got {self.retry_base_delay!r}"

    @classmethod
    def from_values(
        cls,
        username: str | None,
        password: str | None,
        totp_secret: str | None,
        session_dir: str | Path | None,
        **limits,
    ) -> "RobinhoodConfig":
        """Build from raw values (the glue passes environment variables); a missing one is
        named by its environment variable."""
        missing = [
            env_name
            for env_name, value in ((ENV_USERNAME, username), (ENV_PASSWORD, password),
                                    (ENV_TOTP_SECRET, totp_secret))
            if value is None or not str.strip(value)
        ]
        if missing:
            raise ValueError(
                f"Robinhood needs {', '.join(missing)}: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment (or .env); "
                f"Robinhood logins use {ENV_USERNAME}, {ENV_PASSWORD} and {ENV_TOTP_SECRET}"
            )
        if session_dir is None or not str(session_dir).strip():
            raise ValueError("Robinhood needs a session folder (the project's home) for its token")
        return cls(
            username=_secret(username),
            password=_secret(password),
            totp_secret=_secret(totp_secret),
            session_dir=Path(session_dir),
            **limits,
        )

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return (self.username, self.password, self.totp_secret)
