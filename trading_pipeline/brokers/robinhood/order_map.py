"""Which Robinhood order each client order id became, persisted next to the session token.

Robinhood has no client order id, so this map is what makes `submit` idempotent and lets
`order_status` / `cancel` find an order by our id. An attempt is recorded *before* the order
is sent (with no Robinhood id yet), so a later submit of the same id knows to look for an
order whose answer was lost, as far back as that first attempt.

The file is JSON, written atomically (temp file + rename) with mode 600, and every change
re-reads it under an exclusive file lock, so two processes sharing the folder do not
overwrite each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from trading_pipeline.brokers.base import BrokerError
from trading_pipeline.domain.orders import OrderIntent, OrderType

FILE_NAME = "robinhood_orders.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class MappedOrder:
    client_order_id: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    first_attempt_at: str  # ISO time of the first send attempt
    order_id: str | None = None  # Robinhood's id, once known

    @property
    def first_attempt(self) -> datetime:
        return datetime.fromisoformat(self.first_attempt_at)

    @property
    def type(self) -> OrderType:
        return OrderType(self.order_type)


class OrderMap:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE_NAME
        self._lock = threading.Lock()

    def get(self, client_order_id: str) -> MappedOrder | None:
        with self._lock:
            return self._read().get(client_order_id)

    def client_id_for(self, order_id: str) -> str | None:
        with self._lock:
            for entry in self._read().values():
                if entry.order_id == order_id:
                    return entry.client_order_id
        return None

    def by_order_id(self) -> dict[str, MappedOrder]:
        with self._lock:
            return {e.order_id: e for e in self._read().values() if e.order_id}

    def record_attempt(self, intent: OrderIntent, at: datetime) -> MappedOrder:
        """Note that `intent` is about to be sent; keeps the first attempt's time."""
        with self._changing() as entries:
            existing = entries.get(intent.client_order_id)
            if existing is not None:
                return existing
            entry = MappedOrder(
                client_order_id=intent.client_order_id,
                symbol=intent.symbol,
                side=str(intent.side),
                quantity=float(intent.quantity),
                order_type=str(intent.order_type),
                first_attempt_at=at.isoformat(),
            )
            entries[intent.client_order_id] = entry
            return entry

    def link(self, client_order_id: str, order_id: str) -> MappedOrder:
        """Record that `client_order_id` is Robinhood order `order_id`."""
        with self._changing() as entries:
            entry = entries.get(client_order_id)
            if entry is None:
                raise BrokerError(f"no send attempt recorded for {client_order_id}")
            owner = next((e for e in entries.values() if e.order_id == order_id), None)
            if owner is not None and owner.client_order_id != client_order_id:
                raise BrokerError(
                    f"Robinhood order {order_id} already belongs to {owner.client_order_id}"
                )
            linked = MappedOrder(**{**asdict(entry), "order_id": order_id})
            entries[client_order_id] = linked
            return linked

    def forget_attempt(self, client_order_id: str) -> None:
        """Drop an attempt that never reached Robinhood (it was refused before an order existed)."""
        with self._changing() as entries:
            entry = entries.get(client_order_id)
            if entry is not None and entry.order_id is None:
                del entries[client_order_id]

    # -- file handling -------------------------------------------------------------------

    def _read(self) -> dict[str, MappedOrder]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            return {cid: MappedOrder(**entry) for cid, entry in data["orders"].items()}
        except (ValueError, KeyError, TypeError) as error:
            raise BrokerError(
                f"the Robinhood order map {self.path} is damaged ({type(error).__name__}). It is "
                "what prevents duplicate orders: restore it from a backup, or move it aside only "
                "after checking the open orders in the Robinhood app"
            ) from None

    @contextlib.contextmanager
    def _changing(self):
        with self._lock, self._file_lock():
            entries = self._read()
            yield entries
            self._write(entries)

    @contextlib.contextmanager
    def _file_lock(self):
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, entries: dict[str, MappedOrder]) -> None:
        payload = {"version": _VERSION, "orders": {cid: asdict(e) for cid, e in sorted(entries.items())}}
        fd, temp = tempfile.mkstemp(prefix=".robinhood_orders.", dir=self.path.parent)  # mode 600
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
