"""The fake TWS's historical data: `reqHistoricalData` for daily TRADES and ADJUSTED_LAST bars,
answered in TWS's shapes and under IB's pacing rules.

Request (message 20, server version 157): reqId, the contract's 12 fields, includeExpired,
endDateTime, barSizeSetting, durationStr, useRTH, whatToShow, formatDate, keepUpToDate,
chartOptions. Answer (message 17): reqId, start, end, the bar count, then per bar date
(YYYYMMDD with formatDate 1), open, high, low, close, volume, average, barCount; ib_insync
ends the request on it.

Refusals as TWS words them: error 162 "Historical Market Data Service error message:" with
"Pacing violation" (more than `window_requests` requests in `window_seconds`, an identical
request within `identical_seconds`, more than `same_contract_requests` for one contract in
`same_contract_seconds`; a test may scale the windows down), "HMDS query returned no data" for
a known symbol with no bars in range, and 200 "No security definition has been found" for an
unknown symbol. ADJUSTED_LAST must be asked with an empty endDateTime (IB refuses an end date)
and is adjusted for every split up to the fake's clock.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from trading_pipeline_tests.brokers.fakes.alpaca_data.state import CorporateAction, DailyBar
from trading_pipeline_tests.brokers.fakes.tws import wire

if TYPE_CHECKING:
    from trading_pipeline_tests.brokers.fakes.tws.server import FakeTws, _Client

REQ_HISTORICAL_DATA = 20
HISTORICAL_DATA = 17
HMDS = "Historical Market Data Service error message:"


@dataclass(frozen=True)
class HistoricalRequest:
    req_id: int
    symbol: str
    end: str
    duration: str
    bar_size: str
    what: str
    answered: str  # "bars", "pacing", "no data", "unknown", "refused"
    bars: int = 0


@dataclass
class TwsHistory:
    """Daily bars per symbol (traded prices before any split), splits, the pacing rules the
    fake enforces, and every historical request it received."""

    bars: dict[str, list[DailyBar]] = field(default_factory=dict)
    actions: list[CorporateAction] = field(default_factory=list)
    window_requests: int = 60
    window_seconds: float = 600.0
    identical_seconds: float = 15.0
    same_contract_requests: int = 6
    same_contract_seconds: float = 2.0
    requests: list[HistoricalRequest] = field(default_factory=list)
    _sent: deque = field(default_factory=deque)  # (time, key, symbol) of requests let through
    clock = staticmethod(time.monotonic)

    def add(self, symbol: str, bars: list[DailyBar]) -> None:
        self.bars[symbol] = sorted([*self.bars.get(symbol, []), *bars], key=lambda b: b.session)

    def split(self, symbol: str, ex_date: date, ratio: float) -> None:
        self.actions.append(CorporateAction(symbol, ex_date, ratio, "split"))

    def violations(self) -> list[HistoricalRequest]:
        return [r for r in self.requests if r.answered == "pacing"]

    def paced(self, key: tuple, symbol: str) -> bool:
        """True (and counted) if IB's pacing rules let this request through now."""
        now = self.clock()
        sent = self._sent
        while sent and now - sent[0][0] > self.window_seconds:
            sent.popleft()
        if len(sent) >= self.window_requests:
            return False
        if any(k == key and now - t < self.identical_seconds for t, k, _ in sent):
            return False
        same = [t for t, _, s in sent if s == symbol and now - t < self.same_contract_seconds]
        if len(same) >= self.same_contract_requests:
            return False
        sent.append((now, key, symbol))
        return True

    def rows(self, symbol: str, first: date, last: date, adjusted_to: date | None) -> list[list[object]]:
        out = []
        for bar in self.bars.get(symbol, []):
            if not first <= bar.session <= last:
                continue
            traded = 1.0
            later = 1.0
            for action in self.actions:
                if action.symbol != symbol:
                    continue
                if action.ex_date <= bar.session:
                    traded *= action.ratio
                elif adjusted_to is not None and action.ex_date <= adjusted_to:
                    later *= action.ratio
            scale = traded * later
            o, h, l, c = (round(p / scale, 4) for p in (bar.open, bar.high, bar.low, bar.close))
            volume = int(round(bar.volume * scale))
            out.append([bar.session.strftime("%Y%m%d"), o, h, l, c, volume, round((h + l + c) / 3, 4),
                        max(1, volume // 100)])
        return out


def attach_history(fake: FakeTws, history: TwsHistory | None = None) -> TwsHistory:
    """Give `fake` historical data to serve (an empty one unless given)."""
    fake.history = history or TwsHistory()  # type: ignore[attr-defined]
    return fake.history  # type: ignore[attr-defined]


def _days(duration: str) -> int:
    number, unit = duration.split()
    return int(number) * {"D": 1, "W": 7, "M": 31, "Y": 366}[unit]


def answer(fake: FakeTws, client: _Client, fields: list[str]) -> None:
    """Answer one reqHistoricalData (called under the fake's lock)."""
    req_id, symbol, sec_type = int(fields[1]), fields[3], fields[4]
    end, bar_size, duration, what = fields[15], fields[16], fields[17], fields[19]
    history: TwsHistory = getattr(fake, "history", None) or attach_history(fake)

    def record(answered: str, bars: int = 0) -> None:
        history.requests.append(HistoricalRequest(req_id, symbol, end, duration, bar_size, what, answered, bars))

    def refuse(code: int, message: str, answered: str) -> None:
        record(answered)
        client.send(wire.error(req_id, code, message))

    if not history.paced((symbol, sec_type, end, duration, bar_size, what), symbol):
        return refuse(162, f"{HMDS}Historical data request pacing violation", "pacing")
    if bar_size != "1 day" or what not in ("TRADES", "ADJUSTED_LAST"):
        return refuse(162, f"{HMDS}this fake serves 1 day TRADES and ADJUSTED_LAST only", "refused")
    if symbol not in history.bars:
        return refuse(200, "No security definition has been found for the request", "unknown")
    today = fake.state.now().date()
    if what == "ADJUSTED_LAST":
        if end:
            return refuse(162, f"{HMDS}End date not supported with adjusted last", "refused")
        last, adjusted_to = today, today
    else:
        last, adjusted_to = (date(int(end[:4]), int(end[4:6]), int(end[6:8])) if end else today), None
    first = last - timedelta(days=_days(duration) - 1)
    rows = history.rows(symbol, first, last, adjusted_to)
    if not rows:
        return refuse(162, f"{HMDS}HMDS query returned no data: {symbol}@SMART {what.title()}", "no data")
    record("bars", len(rows))
    start_text, end_text = first.strftime("%Y%m%d  00:00:00"), last.strftime("%Y%m%d  23:59:59")
    client.send([HISTORICAL_DATA, req_id, start_text, end_text, len(rows), *(v for row in rows for v in row)])


def load_market(fake: FakeTws, symbols: int = 20, first: date = date(2020, 1, 2), last: date = date(2022, 12, 30),
                *, split=None, seed: int = 7, bars=None, **pacing) -> TwsHistory:
    """Give `fake` `symbols` symbols of the project's synthetic market (or the rows of a
    BAR_SCHEMA frame `bars`) as daily history, an optional split (a `PlannedSplit` from the
    Alpaca data fake's package), and IB's pacing rules (or `pacing` overrides); its clock
    decides how far ADJUSTED_LAST restates (`fake.state.clock`)."""
    from trading_pipeline.domain.calendar import sessions_between
    from trading_pipeline.domain.market import SyntheticMarket

    history = attach_history(fake, TwsHistory(**pacing))
    if bars is None:
        bars = SyntheticMarket(seed=seed, universe_size=symbols).bars(sessions_between(first, last))
    for (symbol,), rows in bars.sort("session").partition_by("symbol", as_dict=True).items():
        history.add(symbol, [DailyBar(*row) for row in rows.select(
            "session", "open", "high", "low", "close", "volume").iter_rows()])
    if split is not None:
        if split.symbol not in history.bars:
            raise ValueError(f"the split names {split.symbol}, which the fake does not hold")
        history.split(split.symbol, split.ex_date, split.ratio)
    return history


def data_environment(fake: FakeTws, universe=None, client_id: int = 17) -> dict[str, str]:
    """The environment variables that point TRADING_DATA_SOURCE=ibkr at this fake (bars are
    fetched on client id `client_id` + 1); the universe defaults to every symbol it holds."""
    history: TwsHistory = getattr(fake, "history", None) or attach_history(fake)
    return {"TRADING_DATA_SOURCE": "ibkr", "TRADING_UNIVERSE": ",".join(universe or sorted(history.bars)),
            "IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(fake.port), "IBKR_CLIENT_ID": str(client_id)}
