"""Alert delivery: the log always, a webhook and SMTP e-mail when configured. Never imports dagster.

    report = AlertDispatcher([WebhookChannel(url)], logger=log).deliver(
        Alert(AlertKind.KILL_SWITCH, Severity.CRITICAL, "kill switch engaged", {"drawdown": 0.27}))
"""

from trading_pipeline.alerts.alert import Alert, AlertKind, DetailValue, Severity
from trading_pipeline.alerts.dispatch import (
    AlertDeliveryError,
    AlertDispatcher,
    Channel,
    ChannelOutcome,
    DeliveryReport,
    DeliveryStatus,
)
from trading_pipeline.alerts.smtp import EmailChannel, parse_addresses
from trading_pipeline.alerts.webhook import WebhookChannel, redacted_url

__all__ = [
    "Alert", "AlertDeliveryError", "AlertDispatcher", "AlertKind", "Channel", "ChannelOutcome",
    "DeliveryReport", "DeliveryStatus", "DetailValue", "EmailChannel", "Severity", "WebhookChannel",
    "parse_addresses", "redacted_url",
]
