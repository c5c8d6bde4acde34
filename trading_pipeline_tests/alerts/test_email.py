"""The e-mail channel against an SMTP server (aiosmtpd) on 127.0.0.1."""

import email
import logging
from email import policy

import pytest

from trading_pipeline.alerts import (
    Alert,
    AlertDispatcher,
    AlertKind,
    DeliveryStatus,
    EmailChannel,
    Severity,
)
from trading_pipeline_tests.alerts.receivers import (
    LoopbackSmtp,
    SmtpSink,
    closed_port,
    self_signed_tls,
)

# logins without TLS are fine on loopback; the STARTTLS test covers the encrypted path
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

PASSWORD = "FAKE-SMTP-PASSWORD-0001"  # the local test server's, not a real one


def kill_switch_alert() -> Alert:
    return Alert(AlertKind.KILL_SWITCH, Severity.CRITICAL, "kill switch engaged: drawdown 27.0 %",
                 {"drawdown": 0.27, "limit": 0.25}, strategy="daily_ml")


def channel_for(server: LoopbackSmtp, **options) -> EmailChannel:
    values = dict(port=server.port, sender="Trading <alerts@desk.example>",
                  recipients="ops@desk.example, risk@desk.example", starttls=False, timeout=5)
    return EmailChannel("127.0.0.1", **{**values, **options})


def parsed(mail) -> email.message.EmailMessage:
    return email.message_from_bytes(mail.content, policy=policy.default)


def test_plain_smtp_delivers_to_every_recipient_with_subject_and_body():
    sink = SmtpSink()
    with LoopbackSmtp(sink) as server:
        report = AlertDispatcher([channel_for(server)]).deliver(kill_switch_alert())
    assert report.outcome("email").status is DeliveryStatus.DELIVERED
    (mail,) = sink.mail
    assert mail.mail_from == "alerts@desk.example"
    assert mail.rcpt_tos == ["ops@desk.example", "risk@desk.example"]
    message = parsed(mail)
    assert message["Subject"] == "[trading_pipeline CRITICAL] kill switch engaged: drawdown 27.0 %"
    assert message["To"] == "ops@desk.example, risk@desk.example"
    assert message["X-Alert-Kind"] == "kill_switch"
    body = message.get_content()
    assert "drawdown: 0.27" in body and "limit: 0.25" in body and "strategy: daily_ml" in body


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_login_with_each_auth_mechanism(mechanism):
    sink = SmtpSink(users={"desk": PASSWORD})
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    with LoopbackSmtp(sink, auth_exclude_mechanism=[other]) as server:
        report = AlertDispatcher([channel_for(server, username="desk", password=PASSWORD)]).deliver(kill_switch_alert())
    assert report.ok, report.failures
    assert sink.logins == [(mechanism, "desk", True)]
    assert [m.authenticated_as for m in sink.mail] == ["desk"]


def test_a_rejected_login_is_reported_without_the_password(caplog):
    sink = SmtpSink(users={"desk": "the-right-one"})
    with caplog.at_level(logging.DEBUG), LoopbackSmtp(sink) as server:
        channel = channel_for(server, username="desk", password=PASSWORD)
        report = AlertDispatcher([channel]).deliver(kill_switch_alert())
    outcome = report.outcome("email")
    assert outcome.status is DeliveryStatus.FAILED and "SMTPAuthenticationError" in outcome.detail
    assert sink.mail == [] and sink.logins[0][2] is False
    for shown in (caplog.text, repr(report), repr(channel)):
        assert PASSWORD not in shown


def test_starttls_then_login(tmp_path):
    server_tls, client_tls = self_signed_tls(tmp_path)
    sink = SmtpSink(users={"desk": PASSWORD})
    with LoopbackSmtp(sink, tls_context=server_tls, require_starttls=True) as server:
        channel = channel_for(server, starttls=True, ssl_context=client_tls, username="desk", password=PASSWORD)
        report = AlertDispatcher([channel]).deliver(kill_switch_alert())
    assert report.ok, report.failures
    assert [m.authenticated_as for m in sink.mail] == ["desk"]


def test_starttls_against_a_server_without_it_is_reported():
    with LoopbackSmtp(SmtpSink()) as server:
        report = AlertDispatcher([channel_for(server, starttls=True)]).deliver(kill_switch_alert())
    assert "STARTTLS" in report.outcome("email").detail and not report.ok


def test_a_server_that_is_down_is_reported():
    channel = EmailChannel("127.0.0.1", port=closed_port(), sender="a@desk.example", recipients=["b@desk.example"],
                           starttls=False, timeout=2)
    report = AlertDispatcher([channel]).deliver(kill_switch_alert())
    assert "ConnectionRefusedError" in report.outcome("email").detail


@pytest.mark.parametrize(("options", "problem"), [
    (dict(recipients=""), "at least one recipient"),
    (dict(sender=""), "a sender address"),
    (dict(username="desk"), "both a user and a password"),
    (dict(recipients="ops"), "'ops' is not an e-mail address"),
])
def test_a_configuration_that_cannot_work_is_refused_naming_the_problem(options, problem):
    values = dict(sender="a@desk.example", recipients="b@desk.example")
    with pytest.raises(ValueError, match=problem):
        EmailChannel("smtp.desk.example", **{**values, **options})
