"""One writer per account, however a run is launched (UI, daemon, `dagster job execute`, the
CLI): an exclusive lock on a file per account, held for the whole run.

Dagster's run queue limits only the runs it launches itself; a file lock also covers runs
started from a shell. The operating system releases it when the holding process dies, so a
run killed mid-way never leaves the account locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class AccountBusy(RuntimeError):
    """Another run holds the account."""


class AccountLock:
    def __init__(self, lock_dir: str | Path, account: str):
        self.path = Path(lock_dir) / f"account-{_SAFE.sub('_', account)}.lock"
        self.account = account
        self._file = None

    def acquire(self, wait_seconds: float = 0.0, holder: str = "") -> None:
        """Take the lock, waiting up to `wait_seconds` for the run that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    who = self.holder()
                    handle.close()
                    raise AccountBusy(
                        f"account {self.account!r} is being traded by another run ({who}); waited "
                        f"{wait_seconds:g} s. Two runs of one account never interleave: let that run "
                        "finish (or stop it), then start this one again") from None
                time.sleep(min(0.5, max(deadline - time.monotonic(), 0.01)))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "holder": holder,
                                 "since": datetime.now(UTC).isoformat(timespec="seconds")}))
        handle.flush()
        self._file = handle

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "holder unknown"
        return f"pid {info.get('pid')}, {info.get('holder') or 'a run'}, since {info.get('since')}"

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> AccountLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
