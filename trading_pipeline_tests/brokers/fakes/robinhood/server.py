"""A stateful fake of the Robinhood endpoints robin_stocks 3.4 uses, on 127.0.0.1.

Served: the OAuth2 token (password + TOTP MFA code checked with pyotp), accounts,
portfolios, positions, instruments by symbol and by URL, quotes, and orders (create as form
or JSON, list with `updated_at[gte]` and pagination, get, cancel) with fills as executions.

Device approval, as robin_stocks 3.4's login meets it: a token request from a device token
Robinhood has not approved is answered 403 with a `verification_workflow`; robin_stocks then
walks Robinhood's "pathfinder" flow (user_machine, inquiries, push prompt status) while the
person approves in the app (`approve_in_app`), and asks for the token again. The device
token is what is approved, so a client that keeps it is not asked again.

HTTP controls: `fail_next` (403/422/429/500 ...), `drop_answer_to_next_accepted_order`,
`slow_next_answer`, `require_device_verification`, `approve_device`, `revoke_tokens`, `stop`;
the book's controls (`fill_working_orders`, `set_price`, `end_of_day`, ...) are in `FakeMarket`.
"""

from __future__ import annotations

import json
import secrets as random_tokens
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pyotp

from trading_pipeline_tests.brokers.fakes.robinhood.market import OPEN_STATES, FakeMarket, robinhood_time_now

DROP = object()  # answer nothing and close the connection


class FakeRobinhood(FakeMarket):
    def __init__(self, *, username: str, password: str, totp_secret: str,
                 prices: dict[str, float] | None = None, cash: float = 100_000.0,
                 clock=time.monotonic, page_size: int = 100) -> None:
        super().__init__(prices=prices, cash=cash, clock=clock)
        self.username, self.password, self.totp = username, password, pyotp.TOTP(totp_secret)
        self.page_size = page_size
        self.requests: list[tuple[float, str, str]] = []  # (clock time, method, path)
        self.token_requests = 0
        self.mfa_codes: list[str] = []  # codes received at the token endpoint
        self.tokens: set[str] = set()  # valid now
        self.issued_tokens: list[str] = []  # every access and refresh token ever issued
        self._failures: list[dict] = []
        self._drop_next_order_answer = False
        self._slow: dict | None = None
        self.refusals: list[tuple[str | None, dict]] = []  # orders refused: (ref_id, body)
        self.approved_devices: set[str] = set()
        self.device_tokens: list[str] = []  # the device token of every token request
        self.approve_in_app = False  # whether the person taps "approve" when the app asks
        self._workflows: dict[str, str] = {}  # workflow or machine id -> device token
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "FakeRobinhood":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- test controls --------------------------------------------------------------------

    def fail_next(self, status: int, *, method: str | None = None, path: str | None = None,
                  times: int = 1, body: dict | None = None) -> None:
        """Answer the next `times` matching requests with `status` (path is a prefix)."""
        with self._lock:
            self._failures.append(dict(status=status, method=method, path=path, left=times,
                                       body=body if body is not None else {"detail": f"fake error {status}"}))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def drop_answer_to_next_accepted_order(self) -> None:
        """The next order is accepted and kept, but the connection closes without an answer."""
        self._drop_next_order_answer = True

    def slow_next_answer(self, seconds: float, *, method: str, path: str) -> None:
        """Do the next matching request's work (path is exact), then wait `seconds` to answer."""
        self._slow = dict(seconds=seconds, method=method, path=path)

    def require_device_verification(self) -> None:
        """Forget every approved device: the next login must be approved in the app."""
        with self._lock:
            self.approved_devices.clear()

    def approve_device(self, device_token: str) -> None:
        with self._lock:
            self.approved_devices.add(device_token)

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    # -- HTTP -----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, body: bytes):
        parts = urlsplit(target)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "json" in (headers.get("Content-Type") or ""):
            payload = json.loads(body or b"{}")
        else:
            payload = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.requests.append((self.clock(), method, path))
            for failure in self._failures:
                if (failure["left"] > 0 and failure["method"] in (None, method)
                        and (failure["path"] is None or path.startswith(failure["path"]))):
                    failure["left"] -= 1
                    return failure["status"], failure["body"]
            if path == "/oauth2/token/" and method == "POST":
                return self._token(payload)
            if path.startswith(("/pathfinder/", "/push/")):
                return self._device_approval(method, path)
            if (headers.get("Authorization") or "").removeprefix("Bearer ") not in self.tokens:
                return 401, {"detail": "Authentication credentials were not provided."}
            return self._route(method, path, query, payload, headers.get("Content-Type") or "")

    def _route(self, method, path, query, payload, content_type):
        segments = [s for s in path.split("/") if s]
        if method == "GET" and path == "/accounts/":
            return 200, self._page([self._account_json()], query, path)
        if method == "GET" and path == "/portfolios/":
            return 200, self._page([self._portfolio_json()], query, path)
        if method == "GET" and path == "/positions/":
            rows = [self._position_json(s, p) for s, p in sorted(self.positions.items())
                    if query.get("nonzero") != "true" or p["quantity"] != 0]
            return 200, self._page(rows, query, path)
        if method == "GET" and path == "/instruments/":
            found = self.instruments.get(query.get("symbol", "").upper())
            return 200, self._page([found] if found else [], query, path)
        if method == "GET" and segments[:1] == ["instruments"] and len(segments) == 2:
            found = next((i for i in self.instruments.values() if i["id"] == segments[1]), None)
            return (200, found) if found else (404, {"detail": "Not found."})
        if method == "GET" and path == "/quotes/":
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            if not symbols:
                return 400, {"symbols": ["This field is required."]}
            return 200, {"results": [self._quote_json(s) for s in symbols]}
        if segments[:1] == ["orders"]:
            answer = self._orders_route(method, segments, query, payload, content_type)
            if answer[0] == 201 and self._drop_next_order_answer:
                self._drop_next_order_answer = False
                return DROP
            return answer
        return 404, {"detail": "Not found."}

    def _orders_route(self, method, segments, query, payload, content_type):
        if method == "POST" and len(segments) == 1:
            answer = self._create_order(payload, content_type)
            if answer[0] == 400 and "ref_id" not in answer[1]:
                self.refusals.append((payload.get("ref_id"), answer[1]))
            return answer
        if method == "GET" and len(segments) == 1:
            since = query.get("updated_at[gte]")
            rows = sorted(self.orders.values(), key=lambda o: -o["seq"])
            if since:
                since_at = datetime.fromisoformat(since)
                rows = [o for o in rows if datetime.fromisoformat(o["updated_at"]) >= since_at]
            rows = [self._order_json(o) for o in rows]
            return 200, self._page(rows, query, "/orders/")
        order = self.orders.get(segments[1]) if len(segments) > 1 else None
        if order is None:
            return 404, {"detail": "Not found."}
        if method == "GET" and len(segments) == 2:
            return 200, self._order_json(order)
        if method == "POST" and segments[2:] == ["cancel"]:
            if order["state"] not in OPEN_STATES:
                return 400, {"detail": "This order cannot be cancelled."}
            order["state"], order["updated_at"] = "cancelled", robinhood_time_now()
            return 200, {}
        return 405, {"detail": f'Method "{method}" not allowed.'}

    def _token(self, form: dict):
        self.token_requests += 1
        if form.get("username") != self.username or form.get("password") != self.password:
            return 400, {"detail": "Unable to log in with provided credentials."}
        if not form.get("mfa_code"):
            return 400, {"mfa_required": True, "mfa_type": "app"}
        self.mfa_codes.append(form["mfa_code"])
        if not self.totp.verify(form["mfa_code"], valid_window=1):
            return 400, {"detail": "Please enter a valid code."}
        self.device_tokens.append(form.get("device_token") or "")
        if form.get("device_token") not in self.approved_devices:
            workflow_id = f"wf-{len(self._workflows) + 1}"
            self._workflows[workflow_id] = form.get("device_token") or ""
            workflow = {"id": workflow_id, "workflow_status": "workflow_status_internal_pending"}
            return 403, {"verification_workflow": workflow}
        token = "fake-access-" + random_tokens.token_hex(12)
        refresh = "fake-refresh-" + random_tokens.token_hex(8)
        self.tokens.add(token)
        self.issued_tokens += [token, refresh]
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 86400,
                     "refresh_token": refresh, "scope": "internal"}

    def _device_approval(self, method: str, path: str):
        """Robinhood's device approval flow, in the order robin_stocks 3.4 walks it."""
        segments = [s for s in path.split("/") if s]
        if (method, path) == ("POST", "/pathfinder/user_machine/"):
            workflow = next(reversed(self._workflows), None)  # the latest refused login
            if workflow is None:
                return 400, {"detail": "No verification workflow."}
            machine = f"machine-{workflow}"
            self._workflows[machine] = self._workflows[workflow]
            return 200, {"id": machine}
        if segments[:2] == ["pathfinder", "inquiries"] and len(segments) == 4:
            machine = segments[2]
            if machine not in self._workflows:
                return 404, {"detail": "Not found."}
            if method == "GET":
                challenge = {"id": f"challenge-{machine}", "type": "prompt", "status": "issued"}
                return 200, {"context": {"sheriff_challenge": challenge}}
            if self.approve_in_app:  # POST: continue the workflow once the app approved
                self.approved_devices.add(self._workflows[machine])
                return 200, {"type_context": {"result": "workflow_status_approved"}}
            return 200, {"verification_workflow": {"workflow_status": "workflow_status_internal_pending"}}
        if segments[:1] == ["push"] and segments[2:] == ["get_prompts_status"] and method == "GET":
            return 200, {"challenge_status": "validated" if self.approve_in_app else "issued"}
        return 404, {"detail": "Not found."}

    def _page(self, rows: list, query: dict, path: str) -> dict:
        start = int(query.get("cursor") or 0)
        end = start + self.page_size
        following = None
        if end < len(rows):
            rest = {k: v for k, v in query.items() if k != "cursor"}
            following = urlunsplit(("https", "api.robinhood.com", path,
                                    urlencode({**rest, "cursor": end}), ""))
        return {"next": following, "previous": None, "results": rows[start:end]}
class _Handler(BaseHTTPRequestHandler):
    fake: FakeRobinhood

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.fake
        answer = fake.handle(self.command, self.path, self.headers, body)
        slow = fake._slow
        if slow and (self.command, urlsplit(self.path).path) == (slow["method"], slow["path"]):
            fake._slow = None
            time.sleep(slow["seconds"])
        if answer is DROP:
            self.close_connection = True
            return
        status, payload = answer
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, *args) -> None:  # keep test output quiet
        pass
