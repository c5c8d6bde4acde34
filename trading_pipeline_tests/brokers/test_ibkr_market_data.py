"""IBKR's historical daily bars through the real ib_insync client against the fake TWS: TRADES
and ADJUSTED_LAST across a split, a symbol without data, IB's pacing rules kept on the client
side, a pacing violation (error 162) waited out, and the incremental service on top."""

import time
from datetime import UTC, date, datetime

import polars as pl
import pytest

from trading_pipeline.brokers.ibkr.config import IbkrConfig
from trading_pipeline.brokers.ibkr.market_data import IbkrBarSource, IbkrDataConfig, IbkrPacing
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import MarketDataError, MarketDataSource, SyntheticMarket
from trading_pipeline.services.market_data import sync_session
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca_data.state import DailyBar
from trading_pipeline_tests.brokers.fakes.tws import FakeTws
from trading_pipeline_tests.brokers.fakes.tws.historical import TwsHistory, attach_history

FIRST, LAST = date(2023, 1, 3), date(2023, 3, 31)
SPLIT_DAY = date(2023, 3, 1)
# IB's rules scaled down so a test waits fractions of a second, not minutes
FAST = dict(window_requests=12, window_seconds=1.0, identical_seconds=0.3, same_contract_requests=3,
            same_contract_seconds=0.2)


@pytest.fixture
def fake():
    with FakeTws() as tws:
        history = attach_history(tws, TwsHistory(**FAST))
        bars = SyntheticMarket(seed=3, universe_size=4).bars(sessions_between(FIRST, LAST))
        for (symbol,), rows in bars.partition_by("symbol", as_dict=True).items():
            history.add(symbol, [DailyBar(*row) for row in rows.select(
                "session", "open", "high", "low", "close", "volume").iter_rows()])
        history.split("SYM0002", SPLIT_DAY, 2.0)
        tws.state.clock = datetime(LAST.year, LAST.month, LAST.day, 21, tzinfo=UTC)
        yield tws


def make_source(fake, pacing: IbkrPacing | None = None, universe=("SYM0001", "SYM0002", "NOSUCH")) -> IbkrBarSource:
    connection = IbkrConfig(port=fake.port, client_id=41, connect_timeout=5, request_timeout=5.0)
    pacing = pacing or IbkrPacing(**FAST, violation_wait=0.3)
    return IbkrBarSource(IbkrDataConfig(connection, pacing), universe, today=lambda: LAST)


def test_traded_and_adjusted_bars_across_a_split(fake):
    source = make_source(fake)
    try:
        assert isinstance(source, MarketDataSource)
        bars = source.fetch_bars(["SYM0002"], FIRST, LAST).sort("session")
    finally:
        source.close()
    assert bars.height == len(sessions_between(FIRST, LAST))
    before = bars.filter(pl.col("session") < SPLIT_DAY).row(-1, named=True)
    after = bars.filter(pl.col("session") == SPLIT_DAY).row(0, named=True)
    assert after["close"] / before["close"] == pytest.approx(0.5, rel=0.15)
    assert before["adj_close"] == pytest.approx(before["close"] / 2, rel=1e-3)
    asked = fake.history.requests
    assert {(r.what, r.end == "") for r in asked} == {("TRADES", False), ("ADJUSTED_LAST", True)}
    assert all(r.bar_size == "1 day" for r in asked) and not fake.history.violations()


def test_a_symbol_without_data_has_no_rows(fake):
    source = make_source(fake)
    try:
        bars = source.fetch_bars(["SYM0001", "NOSUCH"], FIRST, date(2023, 1, 31))
        assert set(bars["symbol"]) == {"SYM0001"} and source.no_data == {"NOSUCH"}
        assert source.fetch_traded(["SYM0001"], date(2022, 6, 1), date(2022, 6, 30)).is_empty()
    finally:
        source.close()
    assert {r.answered for r in fake.history.requests} >= {"unknown", "no data", "bars"}


def test_client_side_pacing_keeps_every_rule(fake):
    source = make_source(fake, universe=())
    started = time.monotonic()
    try:
        for _ in range(3):  # the same request three times: identical requests 0.3 s apart
            source.fetch_traded(["SYM0001"], FIRST, LAST)
        source.fetch_traded(["SYM0001", "SYM0002", "SYM0003", "SYM0004"] * 1, FIRST, date(2023, 2, 1))
        for n in range(12):  # more than the window allows: spread over a second window
            source.fetch_traded(["SYM0003"], FIRST, sessions_between(FIRST, LAST)[20 + n])
    finally:
        source.close()
    assert not fake.history.violations() and source.pacing_violations == 0
    assert source.requests == 19 and time.monotonic() - started >= 1.0


def test_a_pacing_violation_is_waited_out_and_asked_again(fake):
    careless = IbkrPacing(window_requests=1000, window_seconds=1.0, identical_seconds=0.001,
                          same_contract_requests=1000, same_contract_seconds=0.001, violation_wait=0.35)
    source = make_source(fake, careless)
    try:
        for _ in range(3):
            source.fetch_traded(["SYM0001"], FIRST, LAST)
    finally:
        source.close()
    answers = [r.answered for r in fake.history.requests]
    assert answers.count("pacing") >= 1 and answers.count("bars") == 3
    assert source.pacing_violations == answers.count("pacing")


def test_pacing_violations_that_do_not_stop_fail_clearly(fake):
    fake.history.window_requests, fake.history.window_seconds = 1, 600.0
    source = make_source(fake, IbkrPacing(**FAST, violation_wait=0.01, max_pacing_retries=2))
    try:
        source.fetch_traded(["SYM0001"], FIRST, LAST)
        with pytest.raises(MarketDataError, match=r"pacing violations \(error 162\) after 2 waits"):
            source.fetch_traded(["SYM0002"], FIRST, LAST)
    finally:
        source.close()
    assert [r.answered for r in fake.history.requests] == ["bars", "pacing", "pacing", "pacing"]


def test_sessions_fetch_one_adjusted_request_per_symbol_and_restate_the_split(fake, tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    sessions = [s for s in sessions_between(date(2023, 2, 24), date(2023, 3, 6))]
    source = make_source(fake, universe=("SYM0001", "SYM0002"))
    requests = []
    try:
        for session in sessions:
            fake.state.clock = datetime(session.year, session.month, session.day, 21, tzinfo=UTC)
            source._today = lambda session=session: session
            requests.append(sync_session(warehouse, source, session, FIRST).requests)
    finally:
        source.close()
    split_index = sessions.index(SPLIT_DAY)
    assert requests[0] == 4  # back-fill: TRADES and ADJUSTED_LAST per symbol
    assert all(n == 2 for i, n in enumerate(requests[1:], 1) if i != split_index)  # one per symbol
    assert requests[split_index] == 4  # and the split symbol's traded bars and adjusted history
    [event] = market_store.adjustment_events(warehouse).rows(named=True)
    assert (event["symbol"], event["session_detected"], event["source"]) == ("SYM0002", SPLIT_DAY, "ibkr")
    stored = market_store.read_bars_through(warehouse, sessions[-1]).filter(pl.col("symbol") == "SYM0002")
    assert stored.select("session").is_unique().all()
    returns = (stored.sort("session")["adj_close"].pct_change()).drop_nulls()
    assert returns.abs().max() < 0.25
