"""Alpaca's market data through the real alpaca-py client against the loopback fake: traded
and adjusted closes, the feed, pagination, the rate limit, a symbol without data, refusals."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.alpaca.market_data import AlpacaBarSource, AlpacaDataConfig, retry_wait
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import MarketDataError, MarketDataSource
from trading_pipeline_tests.brokers.fakes.alpaca_data import PlannedSplit, serve_market

FIRST, LAST = date(2023, 1, 3), date(2023, 3, 31)
SPLIT_DAY = date(2023, 2, 15)


@pytest.fixture(scope="module")
def server():
    with serve_market(6, FIRST, LAST, split=PlannedSplit("SYM0002", SPLIT_DAY, 4.0), page_cap=100) as running:
        yield running


@pytest.fixture
def source(server):
    server.fake.requests.clear()
    waits: list[float] = []
    made = AlpacaBarSource(AlpacaDataConfig(server.fake.key_id, server.fake.secret_key, url_override=server.url),
                           [*sorted(server.fake.history), "NODATA"], sleep=waits.append)
    made.waits = waits
    yield made
    made.close()


def test_is_a_market_data_source_over_the_chosen_universe(source):
    assert isinstance(source, MarketDataSource)
    assert "NODATA" in source.symbols() and source.sectors()["sector"].unique().to_list() == ["unknown"]


def test_traded_and_adjusted_closes_across_a_split(server, source):
    bars = source.fetch_bars(["SYM0002"], FIRST, LAST).sort("session")
    before = bars.filter(pl.col("session") < SPLIT_DAY).row(-1, named=True)
    after = bars.filter(pl.col("session") == SPLIT_DAY).row(0, named=True)
    # traded prices drop by the split ratio on the ex-date; adjusted history is divided by it
    assert after["close"] / before["close"] == pytest.approx(0.25, rel=0.1)
    assert after["adj_close"] / before["adj_close"] == pytest.approx(1.0, rel=0.1)
    assert before["adj_close"] == pytest.approx(before["close"] / 4, rel=1e-3)
    assert after["adj_close"] == pytest.approx(after["close"], rel=1e-6)
    assert {r.params["adjustment"] for r in server.fake.bar_requests()} == {"raw", "all"}


def test_feed_and_daily_timeframe_are_sent(server, source):
    source.fetch_bars(["SYM0001"], FIRST, FIRST)
    params = [r.params for r in server.fake.bar_requests()]
    assert {p["feed"] for p in params} == {"iex"} and {p["timeframe"] for p in params} == {"1Day"}
    assert {p["adjustment"] for p in params} == {"raw", "all"}


def test_pagination_is_followed_to_the_last_page(server, source):
    bars = source.fetch_bars(sorted(server.fake.history), FIRST, LAST)
    sessions = sessions_between(FIRST, LAST)
    assert bars.height == 6 * len(sessions)  # every bar once: nothing lost or doubled at page edges
    assert bars.select("session", "symbol").is_unique().all()
    pages = [r for r in server.fake.bar_requests() if r.params["adjustment"] == "raw"]
    assert len(pages) == -(-bars.height // 100) and [r.bars for r in pages[:-1]] == [100] * (len(pages) - 1)
    assert "page_token" not in pages[0].params and all("page_token" in r.params for r in pages[1:])
    assert source.requests == 2 * len(pages)


def test_a_symbol_without_data_has_no_rows_and_is_not_an_error(source):
    bars = source.fetch_bars(["SYM0001", "NODATA"], FIRST, date(2023, 1, 10))
    assert set(bars["symbol"]) == {"SYM0001"}
    assert source.fetch_bars(["NODATA"], FIRST, LAST).is_empty()


def test_a_rate_limit_answer_is_waited_out_by_retry_after_and_sent_again(server, source):
    server.fake.refuse_next(2, retry_after=2.5)
    bars = source.fetch_bars(["SYM0001"], FIRST, date(2023, 1, 10))
    assert bars.height == len(sessions_between(FIRST, date(2023, 1, 10)))
    assert source.waits == [2.5, 2.5]
    statuses = [r.status for r in server.fake.bar_requests()]
    assert statuses == [429, 429, 200, 200] and source.transport.rate_limited == 2


def test_rate_limit_reset_header_sets_the_wait_when_there_is_no_retry_after():
    assert retry_wait({"X-RateLimit-Reset": "1000"}, now=990.0) == 10.0
    assert retry_wait({"Retry-After": "3"}, now=0.0) == 3.0
    assert retry_wait({}, now=0.0) == 1.0


def test_a_rate_limit_that_does_not_lift_fails_clearly_after_bounded_retries(server, source):
    server.fake.refuse_next(50, retry_after=None, reset_in=30)
    with pytest.raises(MarketDataError, match=r"429 \(rate limit\) after 4 waits") as failed:
        source.fetch_bars(["SYM0001"], FIRST, LAST)
    assert len(server.fake.bar_requests()) == 5 and len(source.waits) == 4
    assert all(0 < w <= 31 for w in source.waits)
    assert "Nothing was stored" in str(failed.value)
    server.fake._refusals.clear()


def test_wrong_keys_are_named_without_showing_them(server):
    source = AlpacaBarSource(AlpacaDataConfig("wrong-key-id", "wrong-secret-value", url_override=server.url), ["SYM0001"])
    with pytest.raises(MarketDataError, match="APCA_API_KEY_ID") as refused:
        source.fetch_bars(["SYM0001"], FIRST, LAST)
    assert "wrong-secret-value" not in str(refused.value) and "wrong-key-id" not in str(refused.value)
    assert "wrong-secret-value" not in repr(source.config)


def test_sip_without_a_subscription_says_to_use_iex(server):
    server.fake.allowed_feeds = frozenset({"iex"})
    try:
        source = AlpacaBarSource(AlpacaDataConfig(server.fake.key_id, server.fake.secret_key, feed="sip",
                                                  url_override=server.url), ["SYM0001"])
        with pytest.raises(MarketDataError, match="TRADING_ALPACA_DATA_FEED=iex"):
            source.fetch_bars(["SYM0001"], FIRST, LAST)
    finally:
        server.fake.allowed_feeds = frozenset({"iex", "sip"})


def test_an_unknown_feed_is_refused_with_its_setting():
    with pytest.raises(ValueError, match="TRADING_ALPACA_DATA_FEED"):
        AlpacaDataConfig("k", "s", feed="nasdaq")
