"""The kill switch's record, kept in a file beside the warehouse.

DuckDB lets one process write at a time, and a daily run can hold the warehouse for minutes.
An emergency stop must take effect within seconds all the same, and the order path reads the
switch before every submission, so its state lives in an append-only JSON-lines file per
account (a file read, no database lock). Each event is appended as one whole line under a
file lock and synced; a reader takes the last complete line, so it never sees half an event.
The events are mirrored into the warehouse's `kill_switch_events` whenever it is free.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from filelock import FileLock

from trading_pipeline.storage.warehouse import Warehouse

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Reading the switch never needs more than the end of the file.
_TAIL_BYTES = 16_384
HISTORY_SCHEMA = {"recorded_at": pl.Datetime("us"), "engaged": pl.Boolean, "reason": pl.String,
                  "actor": pl.String, "account": pl.String}


@dataclass(frozen=True, slots=True)
class KillSwitchEvent:
    recorded_at: datetime  # naive UTC, like every ledger timestamp
    engaged: bool
    reason: str
    actor: str
    account: str

    def line(self) -> bytes:
        record = asdict(self) | {"recorded_at": self.recorded_at.isoformat()}
        return (json.dumps(record, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, line: bytes) -> KillSwitchEvent:
        record = json.loads(line)
        return cls(recorded_at=datetime.fromisoformat(record["recorded_at"]), engaged=bool(record["engaged"]),
                   reason=record["reason"], actor=record["actor"], account=record["account"])


def store_directory(warehouse_path: Path) -> Path:
    """One folder per warehouse file, so a replay's warehouse never shares a live switch."""
    return warehouse_path.parent / f"{warehouse_path.stem}.kill_switch"


class KillSwitchStore:
    """The file record of every account's kill switch for one warehouse, and its mirror there."""

    def __init__(self, warehouse: Warehouse, mirror_wait_seconds: float = 1.0):
        self.warehouse = warehouse
        self.directory = store_directory(warehouse.path)
        self.mirror_wait_seconds = mirror_wait_seconds

    def path(self, account: str) -> Path:
        if not _ACCOUNT.match(account or ""):
            raise ValueError(f"not a usable account name for the kill switch: {account!r} "
                             "(letters, digits, '.', '_' and '-', e.g. 'simulator' or 'alpaca-paper')")
        return self.directory / f"{account}.jsonl"

    # -- reads: a file read once the account's file exists ------------------------------------

    def latest(self, account: str) -> KillSwitchEvent | None:
        path = self.path(account)
        if not path.exists():
            events = self._adopt(account)
            return events[-1] if events else None
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
        lines = _complete_lines(tail, whole_file=size <= _TAIL_BYTES)
        if not lines and size > _TAIL_BYTES:  # one event longer than the tail: read it all
            return self.events(account)[-1]
        return KillSwitchEvent.parse(lines[-1]) if lines else None

    def events(self, account: str) -> list[KillSwitchEvent]:
        path = self.path(account)
        if not path.exists():
            return self._adopt(account)
        return [KillSwitchEvent.parse(line) for line in _complete_lines(path.read_bytes(), whole_file=True)]

    def history(self, account: str) -> pl.DataFrame:
        events = self.events(account)
        return pl.DataFrame([asdict(e) for e in events], schema=HISTORY_SCHEMA).sort("recorded_at")

    # -- writes ------------------------------------------------------------------------------

    def append(self, event: KillSwitchEvent) -> None:
        """Record the event in the file (at once, whatever holds the warehouse), then try to
        mirror it into the warehouse without waiting long; a later call mirrors what is left."""
        path = self.path(event.account)
        if not path.exists():
            try:
                self._adopt(event.account, self.mirror_wait_seconds)
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise
                # The warehouse is busy: the new event decides the state anyway; older events
                # stay in kill_switch_events, only this file's history starts here.
        with self._lock(event.account):
            _append_line(path, event.line())
        self.mirror(event.account)

    def mirror(self, account: str) -> bool:
        """Copy the file's events missing from `kill_switch_events`; False when the warehouse
        could not take them now (nothing is lost: the file keeps them)."""
        history = self.history(account)
        if history.is_empty():
            return True
        try:
            with Warehouse(self.warehouse.path, self.mirror_wait_seconds).transaction() as con:
                incoming = history  # referenced by name in the SQL below
                con.execute(
                    """insert into kill_switch_events (recorded_at, engaged, reason, actor, account)
                       select i.recorded_at, i.engaged, i.reason, i.actor, i.account from incoming i
                       where not exists (select 1 from kill_switch_events k
                                         where k.account = i.account and k.recorded_at = i.recorded_at
                                           and k.engaged = i.engaged and k.actor = i.actor)""")
        except duckdb.Error:
            # Locked by another process, or a write conflict with this process's own open
            # transaction: the file keeps the events and the next call copies them.
            return False
        return True

    def _adopt(self, account: str, lock_wait_seconds: float | None = None) -> list[KillSwitchEvent]:
        """A warehouse from before this file existed: start the file from its recorded events."""
        warehouse = self.warehouse if lock_wait_seconds is None else Warehouse(self.warehouse.path, lock_wait_seconds)
        rows = warehouse.query(
            """select recorded_at, engaged, reason, actor, account from kill_switch_events
               where account = ? order by recorded_at""", [account])
        events = [KillSwitchEvent(**row) for row in rows.iter_rows(named=True)]
        path = self.path(account)
        with self._lock(account):
            if not path.exists():  # another process may have adopted it meanwhile
                _append_line(path, b"".join(e.line() for e in events))
        return self.events(account)

    def _lock(self, account: str) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / f"{account}.lock", timeout=30)


def _complete_lines(data: bytes, *, whole_file: bool) -> list[bytes]:
    """Whole lines only: a line still being appended has no newline yet, and a tail read from
    the middle of the file starts with the end of an earlier line."""
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line not yet complete
    if not whole_file and lines:
        lines.pop(0)
    return [line for line in lines if line.strip()]


def _append_line(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
