"""Logging in to Robinhood with a TOTP code, keeping the token where it belongs.

robin_stocks is called with `store_session=True` (with False it reports failure even when
the login worked) and `pickle_path=<session_dir>`, so the token pickle lives in the
project's session folder (700), never under the user's home folder, and is made mode 600.
A stored token that still works is reused without a new password + MFA login.

The session file also holds the *device token*, which is what Robinhood approved (once, in
its app) for this machine. robin_stocks opens the file for writing before it knows whether a
login worked, so a refused login leaves it empty, and the next login would come from a new
device that Robinhood makes a person approve: every unattended run would then be blocked.
So the file is copied aside before each login and put back when the login fails; an empty
file found at start (a crash in between) is restored from that copy too. `first_login` is
the interactive first login (`python -m trading_pipeline.cli robinhood-login`).
"""

from __future__ import annotations

import logging
import os
import shutil
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
BACKUP_SUFFIX = ".bak"
TOKEN_PATH = "/oauth2/token/"
LOGIN_COMMAND = "python -m trading_pipeline.cli robinhood-login"


def token_file(config: RobinhoodConfig) -> Path:
    return config.session_dir / TOKEN_FILE


def _backup_file(stored: Path) -> Path:
    return stored.with_name(stored.name + BACKUP_SUFFIX)


def _copy_private(source: Path, target: Path) -> None:
    """Copy `source` over `target` atomically, mode 600."""
    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def _usable(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def log_in(sdk: SdkSession, config: RobinhoodConfig, secrets: Sequence[str | None], *,
           interactive: bool = False) -> None:
    """One login attempt. Raises `RobinhoodLoginError` when Robinhood says no, and
    `TransientFailure` when it did not answer (the caller retries those). The session file
    (and its device token) is the same after a failed attempt as before it."""
    import pyotp

    stored = token_file(config)
    backup = _backup_file(stored)
    if not _usable(stored) and _usable(backup):
        log.warning("the Robinhood session file %s is missing or empty: restored from %s", stored, backup)
        _copy_private(backup, stored)
    if _usable(stored):
        _copy_private(stored, backup)
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
        show_output=interactive,
    )
    if stored.exists():
        os.chmod(stored, 0o600)  # robin_stocks writes it with the umask; the folder is 700
    if isinstance(result.value, dict) and sdk.logged_in and _usable(stored):
        _copy_private(stored, backup)
        log.info("logged in to Robinhood (session kept in %s)", stored)
        return
    sdk.forget_login()
    if _usable(backup):
        _copy_private(backup, stored)  # keep the approved device token for the next login
    elif stored.exists() and not _usable(stored):
        stored.unlink()  # robin_stocks opens the pickle before it knows the login failed
    raise login_failure(result, secrets)


def first_login(config: RobinhoodConfig, *, transport=None, limiter=None) -> Path:
    """The interactive first login on a machine: password, MFA code and, when Robinhood asks,
    approval of this device in the Robinhood app (robin_stocks polls for it and may ask for
    an SMS or e-mail code on the terminal). Stores the session, with its device token, in
    `config.session_dir` (mode 600) for the unattended runs; returns the session file."""
    from trading_pipeline.brokers.robinhood.broker import RobinhoodBroker

    broker = RobinhoodBroker(config, transport=transport, limiter=limiter, interactive=True)
    try:
        broker.login()
    finally:
        broker.close()
    stored = token_file(config)
    if not _usable(stored):
        raise RobinhoodLoginError(f"Robinhood logged in but robin_stocks stored no session in {stored}")
    return stored


def login_failure(result: SdkResult, secrets: Sequence[str | None]) -> Exception:
    if any(o.error == VERIFICATION_REFUSED for o in result.outcomes):
        return RobinhoodLoginError(
            "Robinhood wants this device approved before it issues a token (a new machine, or "
            "a session folder that was lost). An unattended run cannot approve it: run "
            f"`{LOGIN_COMMAND}` once at a terminal (it stores the approved session in the same "
            "folder), then re-run"
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
