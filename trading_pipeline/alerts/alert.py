"""What an alert says, independent of the channels that carry it."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from types import MappingProxyType

DetailValue = str | int | float | bool | None


class AlertKind(StrEnum):
    RUN_FAILURE = "run_failure"
    DRIFT = "drift"
    ROLLBACK = "rollback"
    KILL_SWITCH = "kill_switch"
    RECONCILIATION_BREAK = "reconciliation_break"
    PROMOTION = "promotion"
    MONITOR = "monitor"
    DATA_QUALITY = "data_quality"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"alert severity {value!r} is not one of {choices}") from None

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


def _plain(value: object) -> DetailValue:
    """Numbers, booleans and None stay themselves (a webhook receives JSON numbers); anything
    else, and NaN or infinity, travels as its text."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):  # numpy and polars integers too
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)  # JSON has no NaN
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Alert:
    """One event worth a human's attention. `details` are short facts: name -> text or number."""

    kind: AlertKind
    severity: Severity
    title: str
    details: Mapping[str, DetailValue] = field(default_factory=dict)
    session: date | None = None
    strategy: str | None = None
    environment: str | None = None
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        try:
            kind = AlertKind(self.kind)
        except ValueError:
            choices = ", ".join(k.value for k in AlertKind)
            raise ValueError(f"alert kind {self.kind!r} is not one of {choices}") from None
        if not str(self.title).strip():
            raise ValueError("an alert needs a title: one line saying what happened")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        object.__setattr__(self, "title", str(self.title).strip())
        # read-only, so a report holding the alert shows what was actually sent
        object.__setattr__(self, "details", MappingProxyType(
            {str(name): _plain(value) for name, value in (self.details or {}).items()}))

    def with_context(self, *, strategy: str | None = None, environment: str | None = None) -> Alert:
        """The same alert, with strategy and environment filled in where it had none."""
        return dataclasses.replace(self, strategy=self.strategy or strategy,
                                   environment=self.environment or environment,
                                   details=dict(self.details))

    @property
    def headline(self) -> str:
        return f"[{self.severity.value.upper()}] {self.kind.value}: {self.title}"

    def context_items(self) -> list[tuple[str, str]]:
        items = [("session", self.session.isoformat() if self.session else None),
                 ("strategy", self.strategy), ("environment", self.environment)]
        return [(name, value) for name, value in items if value]

    def one_line(self) -> str:
        """For a log line: the headline, then context and details as name=value."""
        pairs = [*self.context_items(), *((name, str(value)) for name, value in self.details.items())]
        facts = " ".join(f"{name}={value}" for name, value in pairs)
        return f"ALERT {self.headline}" + (f" | {facts}" if facts else "")

    def text_body(self) -> str:
        """For an e-mail or a chat message: one fact per line."""
        lines = [self.headline, ""]
        lines += [f"{name}: {value}" for name, value in self.context_items()]
        lines += [f"{name}: {value}" for name, value in self.details.items()]
        lines += ["", f"raised at {self.raised_at.isoformat(timespec='seconds')}"]
        return "\n".join(lines)

    def to_payload(self) -> dict[str, object]:
        """JSON-ready. `text` lets chat webhooks (Slack, Teams, Mattermost) show it as is."""
        return {
            "text": self.text_body(),
            "kind": self.kind.value,
            "severity": self.severity.value,
            "title": self.title,
            "details": dict(self.details),
            "session": self.session.isoformat() if self.session else None,
            "strategy": self.strategy,
            "environment": self.environment,
            "raised_at": self.raised_at.isoformat(),
        }
