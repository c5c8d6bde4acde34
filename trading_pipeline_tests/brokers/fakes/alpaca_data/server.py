"""The fake market data API on a free port of 127.0.0.1 (http.server, one thread per request)."""

from __future__ import annotations

import contextlib
import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trading_pipeline_tests.brokers.fakes.alpaca_data.state import FakeAlpacaData


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeAlpacaData/1.0"

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        server: FakeAlpacaDataServer = self.server.owner  # type: ignore[attr-defined]
        try:
            status, body, headers = server.fake.answer(self.command, self.path, self.headers)
        except Exception:  # a bug in the fake: answer 500 and let the test see it in `crashes`
            server.crashes.append(traceback.format_exc())
            status, body, headers = 500, {"message": "fake crashed"}, {}
        data = json.dumps(body).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    do_POST = do_DELETE = do_GET


class FakeAlpacaDataServer:
    """`FakeAlpacaData` on a free port of 127.0.0.1; a context manager that starts and stops it."""

    def __init__(self, fake: FakeAlpacaData) -> None:
        self.fake = fake
        self.crashes: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-alpaca-data", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAlpacaDataServer:
        self._thread.start()
        self.fake.url = self.url
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
