"""What the fake Alpaca market data API knows and how it answers `GET /v2/stocks/bars`.

The answer has Alpaca's shape (alpaca-py `StockHistoricalDataClient.get_stock_bars` reads it):
`{"bars": {SYMBOL: [{"t", "o", "h", "l", "c", "v", "n", "vw"}, ...]}, "next_page_token": ...}`,
bars sorted by symbol then time, at most `limit` bars per page across all symbols (Alpaca caps
`limit` at 10,000), a symbol without bars in the range left out of `bars`, daily bars stamped
at midnight New York time in UTC. Errors are `{"message": ...}` with Alpaca's statuses.

Prices are the traded ones; a split or dividend (`corporate_action`) lowers the traded prices
from its ex-date on, and `adjustment=all` (or `split`) divides the bars before the ex-date by
its ratio. Alpaca adjusts for every action up to now; here "now" is the request's `end`, so a
run that walks session by session sees the history it would have seen on each day.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
MAX_LIMIT = 10_000  # Alpaca's cap on bars per page
DEFAULT_LIMIT = 1_000  # Alpaca's default when the request names no limit
FEEDS = ("iex", "sip", "otc", "boats")
ADJUSTMENTS = ("raw", "split", "dividend", "all")


@dataclass(frozen=True)
class DailyBar:
    session: date
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class CorporateAction:
    """From `ex_date` on, traded prices are those before divided by `ratio` (2.0: a 2-for-1
    split); `kind` "split" or "dividend" (a dividend's ratio is close / (close - amount))."""

    symbol: str
    ex_date: date
    ratio: float
    kind: str = "split"


@dataclass(frozen=True)
class DataRequest:
    """One request as the fake received it (a test asserts on these)."""

    path: str
    params: dict[str, str]
    status: int
    bars: int


@dataclass
class FakeAlpacaData:
    """State of the fake: bars per symbol (traded prices before any action), corporate
    actions, the credentials it accepts, the feeds the subscription allows, and answers a
    test asks for (rate-limit refusals)."""

    key_id: str = "fake-data-key"
    secret_key: str = "fake-data-secret"
    history: dict[str, list[DailyBar]] = field(default_factory=dict)
    actions: list[CorporateAction] = field(default_factory=list)
    allowed_feeds: frozenset[str] = frozenset({"iex", "sip"})
    page_cap: int = MAX_LIMIT
    requests: list[DataRequest] = field(default_factory=list)
    _refusals: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str | None = None

    # -- steering -------------------------------------------------------------------------------

    def add_bars(self, symbol: str, bars: list[DailyBar]) -> None:
        with self._lock:
            self.history[symbol] = sorted([*self.history.get(symbol, []), *bars], key=lambda b: b.session)

    def halt(self, symbol: str, sessions: list[date]) -> None:
        """No trading (so no bar) in `symbol` on these sessions."""
        with self._lock:
            self.history[symbol] = [b for b in self.history.get(symbol, []) if b.session not in set(sessions)]

    def delist(self, symbol: str, last: date) -> None:
        """`symbol` trades for the last time on `last`."""
        with self._lock:
            self.history[symbol] = [b for b in self.history.get(symbol, []) if b.session <= last]

    def list_from(self, symbol: str, first: date) -> None:
        """`symbol` starts trading on `first` (an IPO): no bars before it."""
        with self._lock:
            self.history[symbol] = [b for b in self.history.get(symbol, []) if b.session >= first]

    def split(self, symbol: str, ex_date: date, ratio: float) -> None:
        with self._lock:
            self.actions.append(CorporateAction(symbol, ex_date, ratio, "split"))

    def dividend(self, symbol: str, ex_date: date, amount: float) -> None:
        with self._lock:
            before = [b for b in self.history.get(symbol, []) if b.session < ex_date]
            if not before:
                raise ValueError(f"no bar of {symbol} before {ex_date} to price the dividend against")
            close = self._traded(symbol, before[-1], ex_date)[3]
            self.actions.append(CorporateAction(symbol, ex_date, close / (close - amount), "dividend"))

    def refuse_next(self, count: int = 1, retry_after: float | None = 1.0, reset_in: float | None = None) -> None:
        """Answer the next `count` requests 429 (Alpaca's rate limit), with a Retry-After
        and/or an X-RateLimit-Reset (epoch seconds) header."""
        headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if reset_in is not None:
            headers["X-RateLimit-Reset"] = str(int(datetime.now(UTC).timestamp() + reset_in))
        with self._lock:
            self._refusals.extend([(429, headers)] * count)

    def bar_requests(self) -> list[DataRequest]:
        return [r for r in self.requests if r.path.endswith("/stocks/bars")]

    # -- answering --------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers) -> tuple[int, dict, dict[str, str]]:
        split = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(split.query).items()}
        status, body, extra = self._answer(method, split.path, params, headers)
        bars = sum(len(v) for v in body.get("bars", {}).values()) if status == 200 else 0
        with self._lock:
            self.requests.append(DataRequest(split.path, params, status, bars))
        return status, body, extra

    def _answer(self, method, path, params, headers) -> tuple[int, dict, dict[str, str]]:
        if headers.get("APCA-API-KEY-ID") != self.key_id or headers.get("APCA-API-SECRET-KEY") != self.secret_key:
            return 401, {"message": "unauthorized."}, {}
        with self._lock:
            if self._refusals:
                status, extra = self._refusals.pop(0)
                return status, {"message": "too many requests."}, extra
        if method != "GET" or path != "/v2/stocks/bars":
            return 404, {"message": "Not Found"}, {}
        return self._bars(params)

    def _bars(self, params: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            return 400, {"message": "missing symbols"}, {}
        if params.get("timeframe") != "1Day":
            return 422, {"message": f"this fake serves daily bars only, not {params.get('timeframe')}"}, {}
        feed = params.get("feed", "sip")
        if feed not in FEEDS:
            return 400, {"message": f"invalid feed: {feed}"}, {}
        if feed not in self.allowed_feeds:
            return 403, {"message": "subscription does not permit querying recent SIP data"}, {}
        adjustment = params.get("adjustment", "raw")
        if adjustment not in ADJUSTMENTS:
            return 400, {"message": f"invalid adjustment: {adjustment}"}, {}
        try:
            start = _day(params.get("start")) or date(1970, 1, 1)
            end = _day(params.get("end")) or date.today()
            limit = int(params.get("limit") or DEFAULT_LIMIT)
        except ValueError as bad:
            return 400, {"message": f"invalid request: {bad}"}, {}
        if not 1 <= limit <= MAX_LIMIT:
            return 422, {"message": f"invalid limit: must be between 1 and {MAX_LIMIT}"}, {}
        limit = min(limit, self.page_cap)
        after = _read_token(params.get("page_token"))
        rows: list[tuple[str, dict]] = []
        with self._lock:
            for symbol in sorted(set(symbols)):
                for bar in self.history.get(symbol, []):
                    if start <= bar.session <= end and (after is None or (symbol, bar.session.isoformat()) > after):
                        rows.append((symbol, self._payload(symbol, bar, adjustment, end)))
        page, more = rows[:limit], len(rows) > limit
        body: dict = {"bars": {}, "next_page_token": None}
        for symbol, payload in page:
            body["bars"].setdefault(symbol, []).append(payload)
        if more:
            last_symbol, last = page[-1]
            body["next_page_token"] = _token(last_symbol, _session_of(last["t"]))
        return 200, body, {}

    def _traded(self, symbol: str, bar: DailyBar, now: date) -> tuple[float, float, float, float, float]:
        """The bar as traded: prices after every action whose ex-date is on or before the bar."""
        factor = 1.0
        for action in self.actions:
            if action.symbol == symbol and action.ex_date <= bar.session and action.kind == "split":
                factor *= action.ratio
        return (bar.open / factor, bar.high / factor, bar.low / factor, bar.close / factor, bar.volume * factor)

    def _payload(self, symbol: str, bar: DailyBar, adjustment: str, now: date) -> dict:
        o, h, l, c, v = self._traded(symbol, bar, now)
        later = 1.0
        for action in self.actions:
            applies = (adjustment == "all" or adjustment == action.kind)
            if applies and action.symbol == symbol and bar.session < action.ex_date <= now:
                later *= action.ratio
        if later != 1.0:
            o, h, l, c = o / later, h / later, l / later, c / later
            if adjustment != "dividend":
                v = v * later
        stamp = datetime.combine(bar.session, time(0), NEW_YORK).astimezone(UTC)
        return {"t": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": round(o, 4), "h": round(h, 4), "l": round(l, 4),
                "c": round(c, 4), "v": int(round(v)), "n": max(1, int(v // 100)), "vw": round((h + l + c) / 3, 4)}


def _day(value: str | None) -> date | None:
    if not value:
        return None
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(NEW_YORK).date() if moment.tzinfo else moment.date()


def _session_of(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(NEW_YORK).date().isoformat()


def _token(symbol: str, session: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([symbol, session]).encode()).decode()


def _read_token(token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    symbol, session = json.loads(base64.urlsafe_b64decode(token.encode()))
    return symbol, session
