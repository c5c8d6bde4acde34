"""The fake on a free port of 127.0.0.1 (http.server, one thread per request)."""

from __future__ import annotations

import contextlib
import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trading_pipeline_tests.brokers.fakes.alpaca.payloads import DROP, error
from trading_pipeline_tests.brokers.fakes.alpaca.state import FakeAlpaca


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeAlpaca/1.0"

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fake: FakeAlpaca = self.server.fake  # type: ignore[attr-defined]
        try:
            result = fake.answer(self.command, self.path, self.headers, self.rfile.read(length))
        except Exception:  # a bug in the fake: answer 500 and let the test see it in `crashes`
            fake.crashes.append(traceback.format_exc())
            result = (*error(500, 50010000, "fake crashed"), 0.0)
        if result is DROP:
            self.close_connection = True  # accepted, but the client hears nothing
            return
        status, payload, hold = result
        if hold and fake.shutting_down.wait(hold):
            return  # shutting down: the client gave up long ago
        data = b"" if payload is None else json.dumps(payload).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve


class FakeAlpacaServer:
    """`FakeAlpaca` on a free port of 127.0.0.1; a context manager that starts and stops it."""

    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.fake = fake  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-alpaca", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAlpacaServer:
        self._thread.start()
        self.fake.url = self.url
        return self

    def __exit__(self, *exc) -> None:
        self.fake.shutting_down.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
