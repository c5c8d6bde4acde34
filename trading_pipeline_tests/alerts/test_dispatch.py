"""The dispatcher: the log always, channels by minimum severity, failures reported never raised."""

import json
import logging
from datetime import date, datetime

import numpy as np
import pytest

from trading_pipeline.alerts import (
    Alert,
    AlertDeliveryError,
    AlertDispatcher,
    AlertKind,
    DeliveryStatus,
    EmailChannel,
    Severity,
    WebhookChannel,
)
from trading_pipeline_tests.alerts.receivers import (
    HttpReceiver,
    LoopbackSmtp,
    SmtpSink,
    closed_port,
)


def alert(severity: Severity) -> Alert:
    return Alert(AlertKind.PROMOTION, severity, f"promotion needs review ({severity})", {"sessions": 14})


class ExplodingChannel:
    """A channel with a bug: its error text holds something secret."""

    name = "exploding"

    def send(self, alert):
        raise RuntimeError("token=SecretInTheMessage")


@pytest.mark.parametrize(("min_severity", "sent"), [
    ("info", ["info", "warning", "critical"]),
    ("warning", ["warning", "critical"]),
    ("critical", ["critical"]),
])
def test_min_severity_decides_the_webhook_while_the_log_gets_everything(min_severity, sent, caplog):
    with HttpReceiver() as receiver, caplog.at_level(logging.INFO, logger="trading_pipeline.alerts"):
        dispatcher = AlertDispatcher([WebhookChannel(receiver.url("/hook"))], min_severity=min_severity)
        reports = [dispatcher.deliver(alert(severity)) for severity in Severity]
    assert [r.body["severity"] for r in receiver.received] == sent
    assert [r.alert.severity.value for r in reports if "webhook" in r.delivered] == sent
    for report in reports:
        assert report.outcome("log").status is DeliveryStatus.DELIVERED
        if report.alert.severity.value not in sent:
            assert report.outcome("webhook").status is DeliveryStatus.BELOW_MIN_SEVERITY and report.ok
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in logged] == ["INFO", "WARNING", "CRITICAL"]
    assert all("promotion needs review" in message and "sessions=14" in message for _, message in logged)


def test_the_log_channel_writes_to_the_logger_it_is_given(caplog):
    own = logging.getLogger("a_dagster_context_log_stand_in")
    with caplog.at_level(logging.INFO):
        AlertDispatcher(logger=own).deliver(alert(Severity.INFO))
    assert [r.name for r in caplog.records] == ["a_dagster_context_log_stand_in"]


def test_one_failing_channel_neither_raises_nor_stops_the_others(caplog):
    sink = SmtpSink()
    with LoopbackSmtp(sink) as smtp, caplog.at_level(logging.ERROR, logger="trading_pipeline.alerts"):
        channels = [ExplodingChannel(),
                    WebhookChannel(f"http://127.0.0.1:{closed_port()}/hook", sleep=lambda s: None),
                    EmailChannel("127.0.0.1", port=smtp.port, sender="a@desk.example",
                                 recipients="b@desk.example", starttls=False)]
        report = AlertDispatcher(channels).deliver(alert(Severity.CRITICAL))
    assert report.delivered == ("log", "email") and len(sink.mail) == 1
    assert [o.channel for o in report.failures] == ["exploding", "webhook"]
    assert report.outcome("exploding").detail == "unexpected RuntimeError"
    assert "SecretInTheMessage" not in caplog.text + repr(report)
    errors = [r.getMessage() for r in caplog.records]
    assert any("exploding channel" in e for e in errors) and any("webhook channel" in e for e in errors)
    assert report.as_metadata()["alert_email"] == "delivered"
    assert report.as_metadata()["alert_webhook"].startswith("failed: could not connect")


def test_an_alert_checks_its_kind_and_title_and_keeps_details_json_ready():
    with pytest.raises(ValueError, match="not one of run_failure, drift"):
        Alert("outage", Severity.WARNING, "x")
    with pytest.raises(ValueError, match="not one of info, warning, critical"):
        Alert(AlertKind.DRIFT, "loud", "x")
    with pytest.raises(ValueError, match="needs a title"):
        Alert(AlertKind.DRIFT, Severity.WARNING, "  ")
    details = {"count": np.int64(3), "share": np.float64(0.5), "ic": float("nan"), "day": date(2024, 1, 2),
               "at": datetime(2024, 1, 2, 16, 0), "ok": True, "none": None}
    made = Alert("drift", "WARNING", "drift", details)
    assert made.kind is AlertKind.DRIFT and made.severity is Severity.WARNING
    assert made.details == {"count": 3, "share": 0.5, "ic": "nan", "day": "2024-01-02",
                            "at": "2024-01-02T16:00:00", "ok": True, "none": None}
    json.dumps(made.to_payload(), allow_nan=False)  # what requests sends; NaN would be refused
    with pytest.raises(TypeError):
        made.details["count"] = 4  # the report shows what was sent


def test_delivery_errors_are_the_channels_own_words():
    class Refusing:
        name = "refusing"

        def send(self, alert):
            raise AlertDeliveryError("relay said no")

    assert AlertDispatcher([Refusing()]).deliver(alert(Severity.WARNING)).outcome("refusing").detail == "relay said no"
