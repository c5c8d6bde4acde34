"""Delivering an alert: always to the log, then to every configured channel, never raising."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from trading_pipeline.alerts.alert import Alert, Severity

DEFAULT_LOGGER = logging.getLogger("trading_pipeline.alerts")

LOG_LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING,
              Severity.CRITICAL: logging.CRITICAL}


class AlertDeliveryError(Exception):
    """A channel could not deliver. Its message is safe to log: no secret is ever in it."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise `AlertDeliveryError` with a message free of secrets."""


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    BELOW_MIN_SEVERITY = "below_min_severity"


@dataclass(frozen=True)
class ChannelOutcome:
    channel: str
    status: DeliveryStatus
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status.value}: {self.detail}" if self.detail else self.status.value


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one alert on each channel, the log first."""

    alert: Alert
    outcomes: tuple[ChannelOutcome, ...]

    @property
    def delivered(self) -> tuple[str, ...]:
        return tuple(o.channel for o in self.outcomes if o.status is DeliveryStatus.DELIVERED)

    @property
    def failures(self) -> tuple[ChannelOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status is DeliveryStatus.FAILED)

    @property
    def ok(self) -> bool:
        return not self.failures

    def outcome(self, channel: str) -> ChannelOutcome:
        for outcome in self.outcomes:
            if outcome.channel == channel:
                return outcome
        raise KeyError(f"no channel named {channel!r} in this report: {[o.channel for o in self.outcomes]}")

    def as_metadata(self) -> dict[str, str]:
        """For asset or run metadata: channel -> outcome (no secrets in either)."""
        return {f"alert_{o.channel}": str(o) for o in self.outcomes}


class AlertDispatcher:
    """Logs every alert, then hands those at or above `min_severity` to each channel.

    A channel that fails is logged as an error naming it and the cause, and reported; it never
    raises into the caller, which is usually a trading step that must go on.
    """

    def __init__(self, channels: Sequence[Channel] = (), *, min_severity: Severity | str = Severity.WARNING,
                 logger: logging.Logger | logging.LoggerAdapter | None = None):
        self.channels = tuple(channels)
        self.min_severity = Severity.parse(min_severity)
        self.logger = logger or DEFAULT_LOGGER

    def __repr__(self) -> str:
        return f"AlertDispatcher({list(self.channels)!r}, min_severity={self.min_severity.value})"

    def deliver(self, alert: Alert) -> DeliveryReport:
        outcomes = [self._log(alert)]
        for channel in self.channels:
            if not alert.severity.at_least(self.min_severity):
                outcomes.append(ChannelOutcome(channel.name, DeliveryStatus.BELOW_MIN_SEVERITY,
                                               f"{alert.severity.value} < {self.min_severity.value}"))
                continue
            outcomes.append(self._send(channel, alert))
        return DeliveryReport(alert, tuple(outcomes))

    def _log(self, alert: Alert) -> ChannelOutcome:
        try:
            self.logger.log(LOG_LEVELS[alert.severity], alert.one_line())
        except Exception as failure:  # noqa: BLE001 - a broken log handler must not stop the other channels
            return ChannelOutcome("log", DeliveryStatus.FAILED, type(failure).__name__)
        return ChannelOutcome("log", DeliveryStatus.DELIVERED)

    def _send(self, channel: Channel, alert: Alert) -> ChannelOutcome:
        try:
            channel.send(alert)
        except Exception as failure:  # noqa: BLE001 - whatever a channel does, the caller goes on
            # Our channels say what went wrong without secrets; anything else may carry one in
            # its text (an SDK echoing a URL), so only its type is shown.
            cause = str(failure) if isinstance(failure, AlertDeliveryError) else (
                f"unexpected {type(failure).__name__}")
            self._log_failure(channel.name, alert, cause)
            return ChannelOutcome(channel.name, DeliveryStatus.FAILED, cause)
        return ChannelOutcome(channel.name, DeliveryStatus.DELIVERED)

    def _log_failure(self, channel: str, alert: Alert, cause: str) -> None:
        try:
            self.logger.error(f"alert not delivered by the {channel} channel ({alert.headline}): {cause}")
        except Exception:  # noqa: BLE001, S110 - the report still says it; nothing more to do here
            pass
