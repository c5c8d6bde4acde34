"""Logging in to Robinhood with a TOTP code, keeping the token where it belongs.

robin_stocks is called with `store_session=True` (with False it reports failure even when
the login worked) and `pickle_path=<session_dir>`, so the token pickle lives in the
project's session folder (700), never under the user's home folder, and is made mode 600.
A stored token that still works is reused without a new password + MFA login.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from trading_pipeline.brokers.robinhood import translate
from trading_pipeline.brokers.robinhood.config import (
    ENV_PASSWORD,
    ENV_TOTP_SECRET,
    ENV_USERNAME,
    RobinhoodConfig,
    RobinhoodLoginError,
)
from trading_pipeline.brokers.robinhood.session import SdkResult, SdkSession, TransientFailure
from trading_pipeline.brokers.robinhood.transport import VERIFICATION_REFUSED, Outcome
from trading_pipeline.brokers.secrets import scrub

log = logging.getLogger(__name__)

TOKEN_FILE = "robinhood.pickle"  # robin_stocks' file name for the token pickle
TOKEN_PATH = "/oauth2/token/"


def token_file(config: RobinhoodConfig) -> Path:
    return config.session_dir / TOKEN_FILE


def log_in(sdk: SdkSession, config: RobinhoodConfig, secrets: Sequence[str | None]) -> None:
    """One login attempt. Raises `RobinhoodLoginError` when Robinhood says no, and
    `TransientFailure` when it did not answer (the caller retries those)."""
    import pyotp

    code = pyotp.TOTP(config.totp_secret.value).now()
    result = sdk.call(
        lambda: sdk.rh.login(
            username=config.username.value,
            password=config.password.value,
            mfa_code=code,
            store_session=True,
            pickle_path=str(config.session_dir),
        ),
        secrets,
    )
    stored = token_file(config)
    if stored.exists():
        os.chmod(stored, 0o600)  # robin_stocks writes it with the umask; the folder is 700
    if isinstance(result.value, dict) and sdk.logged_in:
        log.info("logged in to Robinhood (token kept in %s)", stored)
        return
    sdk.forget_login()
    if stored.exists() and stored.stat().st_size == 0:
        stored.unlink()  # robin_stocks opens the pickle before it knows the login failed
    raise login_failure(result, secrets)


def login_failure(result: SdkResult, secrets: Sequence[str | None]) -> Exception:
    if any(o.error == VERIFICATION_REFUSED for o in result.outcomes):
        return RobinhoodLoginError(
            "Robinhood wants this device approved before it issues a token (a new machine, or "
            "a long-expired session). An unattended run cannot approve it: log in once "
            "interactively with robin_stocks using the same session folder, then re-run"
        )
    token = [o for o in result.outcomes if o.path == TOKEN_PATH]
    last = token[-1] if token else None
    if last is None or last.transient:
        failed = [o for o in result.outcomes if o.transient]
        detail = failed[-1].describe() if failed else "no login request was answered"
        return TransientFailure(f"login: {detail}")
    if last.refused:
        return RobinhoodLoginError(refusal_text(last, secrets))
    said = result.printed.splitlines()[-1] if result.printed else ""
    return RobinhoodLoginError(
        "Robinhood login failed without a reason" + (f" (robin_stocks said: {said})" if said else "")
    )


def refusal_text(outcome: Outcome, secrets: Sequence[str | None]) -> str:
    body = outcome.body if isinstance(outcome.body, dict) else {"detail": outcome.body}
    said = scrub(translate.rejection_reason(body), secrets)
    mentions = " ".join(f"{key} {value}" for key, value in body.items()).lower()
    if "mfa" in mentions or "code" in mentions:
        return (
            f"Robinhood login failed: the MFA code was rejected (HTTP {outcome.status}). Check "
            f"that {ENV_TOTP_SECRET} is the authenticator secret (not a 6-digit code) and that "
            f"this machine's clock is right. {said}"
        )
    return (
        f"Robinhood login failed (HTTP {outcome.status}): check {ENV_USERNAME} and "
        f"{ENV_PASSWORD}. {said}"
    )
