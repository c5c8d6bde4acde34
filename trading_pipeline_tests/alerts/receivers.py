"""Loopback receivers the alert tests talk to: an HTTP webhook, a silent socket, an SMTP server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


class HttpReceiver:
    """Answers each POST with the next status of `statuses` (the last one repeats) and records it."""

    def __init__(self, statuses: tuple[int, ...] = (200,)):
        self.statuses = list(statuses)
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(Received(self.path, dict(self.headers), json.loads(self.rfile.read(length))))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # quiet: its lines would hold the token path
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections and never answers: a webhook that hangs."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed by __exit__
                return
            self.connections.append(connection)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated_as: str | None


@dataclass
class SmtpSink:
    """The handler and authenticator of the SMTP server: records mail and logins."""

    users: dict[str, str] = field(default_factory=dict)
    mail: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # (mechanism, user, accepted)

    async def handle_DATA(self, server, session, envelope):
        user = session.auth_data.login.decode() if session.authenticated else None
        self.mail.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, user))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = self.users.get(user) == password
        self.logins.append((mechanism, user, accepted))
        # handled=False: aiosmtpd answers 535 itself on a refusal
        return AuthResult(success=accepted, handled=False, auth_data=auth_data if accepted else None)


class LoopbackSmtp(Controller):
    """aiosmtpd on 127.0.0.1 with a port the OS picks (the stock controller checks port 0 itself)."""

    def __init__(self, sink: SmtpSink, **smtp_options):
        if sink.users:
            smtp_options.update(authenticator=sink.authenticate, auth_required=True, auth_require_tls=False)
        super().__init__(sink, hostname="127.0.0.1", port=0, **smtp_options)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def __enter__(self) -> LoopbackSmtp:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))
