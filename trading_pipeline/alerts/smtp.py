"""Alerts as plain-text e-mail through an SMTP server (stdlib smtplib), STARTTLS and login optional."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from trading_pipeline.alerts.alert import Alert
from trading_pipeline.alerts.dispatch import AlertDeliveryError
from trading_pipeline.brokers.secrets import Secret, scrub


def parse_addresses(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`a@x.com, b@y.com` (or a list) -> ('a@x.com', 'b@y.com'); a malformed one is an error."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    addresses = tuple(item.strip() for item in items if item.strip())
    for address in addresses:
        if "@" not in parseaddr(address)[1]:
            raise ValueError(f"{address!r} is not an e-mail address (expected name@domain)")
    return addresses


class EmailChannel:
    """One message per alert: subject `[trading_pipeline CRITICAL] title`, the facts in the body."""

    name = "email"

    def __init__(self, host: str, *, sender: str, recipients: str | Sequence[str], port: int = 587,
                 starttls: bool = True, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 subject_prefix: str = "trading_pipeline"):
        self.recipients = parse_addresses(recipients)
        problems = [text for missing, text in (
            (not host, "an SMTP host"), (not parse_addresses(sender), "a sender address"),
            (not self.recipients, "at least one recipient"),
            (bool(username) != bool(password), "both a user and a password, or neither"),
        ) if missing]
        if problems:
            raise ValueError(f"alert e-mail needs {', '.join(problems)}")
        if timeout <= 0:
            raise ValueError(f"SMTP timeout must be > 0 seconds (got {timeout})")
        self.host, self.port, self.sender = host, int(port), sender
        self.starttls, self.timeout = starttls, timeout
        self.username = username
        self._password = Secret(password) if password else None
        self._ssl_context = ssl_context
        self.subject_prefix = subject_prefix

    @property
    def target(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def __repr__(self) -> str:
        login = f", user={self.username}, password=***" if self.username else ""
        return (f"EmailChannel({self.target}, starttls={self.starttls}{login}, "
                f"from={self.sender}, to={list(self.recipients)})")

    def compose(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{self.subject_prefix} {alert.severity.value.upper()}] {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.host)
        message["X-Alert-Kind"] = alert.kind.value
        message["X-Alert-Severity"] = alert.severity.value
        message.set_content(alert.text_body())
        return message

    def send(self, alert: Alert) -> None:
        message = self.compose(alert)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                if self.username and self._password:
                    smtp.login(self.username, self._password.value)
                refused = smtp.send_message(message, to_addrs=list(self.recipients))
        except smtplib.SMTPNotSupportedError as unsupported:
            raise AlertDeliveryError(
                f"{self.target}: {unsupported} (STARTTLS is on: use a server that offers it; turn it "
                "off only for a relay on a trusted network)") from None
        except (smtplib.SMTPException, OSError) as failure:
            detail = scrub(f"{type(failure).__name__}: {failure}", [self._password])
            raise AlertDeliveryError(f"{self.target}: {detail}") from None
        if refused:
            raise AlertDeliveryError(f"{self.target} refused recipients {sorted(refused)}; "
                                     f"delivered to the others")
