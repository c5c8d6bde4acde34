"""The webhook channel against HTTP receivers on 127.0.0.1."""

import logging
import time
from datetime import date

import pytest

from trading_pipeline.alerts import (
    Alert,
    AlertDispatcher,
    AlertKind,
    DeliveryStatus,
    Severity,
    WebhookChannel,
)
from trading_pipeline.defs.resources import AlertsResource
from trading_pipeline_tests.alerts.receivers import (
    HttpReceiver,
    SilentServer,
    closed_port,
)

TOKEN_PATH = "/services/T0001/B0002/xoxbSecretToken123"


def drift_alert(**overrides) -> Alert:
    values = dict(kind=AlertKind.DRIFT, severity=Severity.CRITICAL, title="severe drift on champion v3",
                  details={"drifted_share": 0.62, "drifted_columns": 11, "model_version": "3"},
                  session=date(2024, 3, 27), strategy="daily_ml", environment="paper")
    return Alert(**{**values, **overrides})


def test_the_receiver_gets_kind_severity_title_and_details_as_json():
    with HttpReceiver() as receiver:
        report = AlertDispatcher([WebhookChannel(receiver.url(TOKEN_PATH))]).deliver(drift_alert())
    assert report.ok and report.delivered == ("log", "webhook")
    (request,) = receiver.received
    assert request.path == TOKEN_PATH
    assert request.headers["Content-Type"] == "application/json"
    body = request.body
    assert (body["kind"], body["severity"], body["title"]) == ("drift", "critical", "severe drift on champion v3")
    assert body["details"] == {"drifted_share": 0.62, "drifted_columns": 11, "model_version": "3"}
    assert (body["session"], body["strategy"], body["environment"]) == ("2024-03-27", "daily_ml", "paper")
    assert "drifted_share: 0.62" in body["text"]  # what a chat webhook shows


def test_a_server_error_is_retried_after_a_backoff_then_delivered():
    waits: list[float] = []
    with HttpReceiver(statuses=(500, 503, 200)) as receiver:
        channel = WebhookChannel(receiver.url(TOKEN_PATH), backoff=0.25, sleep=waits.append)
        report = AlertDispatcher([channel]).deliver(drift_alert())
    assert report.outcome("webhook").status is DeliveryStatus.DELIVERED
    assert len(receiver.received) == 3
    assert receiver.received[0].body == receiver.received[2].body
    assert waits == [0.25, 0.5]  # exponential backoff between the three attempts


def test_a_client_error_is_not_retried_and_is_reported():
    with HttpReceiver(statuses=(404,)) as receiver:
        report = AlertDispatcher([WebhookChannel(receiver.url(TOKEN_PATH), sleep=lambda s: None)]).deliver(drift_alert())
    assert len(receiver.received) == 1
    assert "HTTP 404" in report.outcome("webhook").detail and "after 1 attempt" in report.outcome("webhook").detail


def test_a_receiver_that_never_answers_is_given_up_after_the_timeout_without_raising(caplog):
    timeout = 0.5
    with SilentServer() as silent:
        channel = WebhookChannel(f"http://127.0.0.1:{silent.port}{TOKEN_PATH}", timeout=timeout)
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="trading_pipeline.alerts"):
            report = AlertDispatcher([channel]).deliver(drift_alert())
        waited = time.monotonic() - started
        connections = len(silent.connections)
    outcome = report.outcome("webhook")
    assert outcome.status is DeliveryStatus.FAILED and not report.ok
    assert f"did not answer within {timeout} s" in outcome.detail
    # the request reached the server, so it is not sent again (the receiver may have acted on it)
    assert connections == 1
    assert timeout <= waited < 10 * timeout, waited  # it waited for the timeout, and no longer
    assert "webhook channel" in caplog.text and "did not answer" in caplog.text


def test_a_refused_connection_is_retried_then_reported():
    waits: list[float] = []
    channel = WebhookChannel(f"http://127.0.0.1:{closed_port()}{TOKEN_PATH}", attempts=3, sleep=waits.append)
    report = AlertDispatcher([channel]).deliver(drift_alert())
    detail = report.outcome("webhook").detail
    assert "could not connect" in detail and "after 3 attempts" in detail
    assert len(waits) == 2


def test_the_token_never_appears_in_logs_reprs_or_reports(caplog):
    refused_url = f"http://127.0.0.1:{closed_port()}{TOKEN_PATH}"
    with caplog.at_level(logging.DEBUG), HttpReceiver(statuses=(500,)) as receiver:
        failing_url = receiver.url(TOKEN_PATH + "?key=QuerySecret99")
        channels = [WebhookChannel(failing_url, sleep=lambda s: None),
                    WebhookChannel(refused_url, sleep=lambda s: None)]
        dispatcher = AlertDispatcher(channels)
        report = dispatcher.deliver(drift_alert())
        resource = AlertsResource(webhook_url=failing_url)
    assert len(receiver.received) == 3 and len(report.failures) == 2
    assert any("urllib3" in r.name for r in caplog.records)  # urllib3's DEBUG lines were captured ...
    shown = "\n".join([caplog.text, repr(report), str(report.as_metadata()), repr(dispatcher),
                       repr(resource), str(resource)])
    for secret in ("xoxbSecretToken123", "QuerySecret99", "B0002"):
        assert secret not in shown  # ... and scrubbed, like everything else
    assert "http://127.0.0.1:" in report.outcome("webhook").detail  # the host still shows


@pytest.mark.parametrize("url", ["hooks.slack.com/services/T0/B0/tok", "ftp://files.example/tok", "https:///tok",
                                 "https://hooks.example:tok/x"])
def test_a_url_that_is_not_http_is_refused_without_repeating_it(url):
    with pytest.raises(ValueError, match="TRADING_ALERT_WEBHOOK_URL") as refused:
        WebhookChannel(url)
    assert "tok" not in str(refused.value)
