"""A broker source session by session against the fake Alpaca data API: incremental fetching
(requests per session measured), a split restating stored history, the universe's members
(no data, halted, delisted, newly listed), on a real DuckDB warehouse."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.alpaca.market_data import AlpacaBarSource, AlpacaDataConfig
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.features import compute_features
from trading_pipeline.services.market_data import HISTORY_NEEDED, sync_session
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca_data import PlannedSplit, serve_market

HISTORY_START = date(2022, 6, 1)
SESSIONS = sessions_between(date(2023, 1, 3), date(2023, 3, 31))[:30]
SPLIT = PlannedSplit("SYM0003", SESSIONS[12], 2.0)
HALTED = "SYM0004"  # no bar on sessions 5 and 6
DELISTED = "SYM0005"  # last bar on session 8
LISTED = "SYM0006"  # trades from 40 sessions before the first run: waits for history, then enters
HELD = "SYM0012"  # held by the account, not in the universe
UNIVERSE = [f"SYM{n:04d}" for n in range(1, 12)] + ["NODATA"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    warehouse = Warehouse(tmp_path_factory.mktemp("md") / "warehouse.duckdb")
    warehouse.append("ledger_positions", pl.DataFrame(
        {"session": [date(2022, 12, 30)], "broker": ["alpaca-paper"], "symbol": [HELD], "quantity": [40.0],
         "avg_entry_price": [50.0], "market_price": [50.0]}))
    with serve_market(12, HISTORY_START, SESSIONS[-1], split=SPLIT) as server:
        fake = server.fake
        fake.halt(HALTED, SESSIONS[5:7])
        fake.delist(DELISTED, SESSIONS[8])
        listed_on = sessions_between(date(2022, 10, 1), SESSIONS[0])[-40]
        fake.list_from(LISTED, listed_on)
        source = AlpacaBarSource(AlpacaDataConfig(fake.key_id, fake.secret_key, url_override=server.url), UNIVERSE)
        reports, adjusted_before_split = [], None
        for number, session in enumerate(SESSIONS):
            if number == 12:
                adjusted_before_split = market_store.read_bars_through(warehouse, SESSIONS[11])
            reports.append(sync_session(warehouse, source, session, HISTORY_START))
        yield {"warehouse": warehouse, "reports": reports, "fake": fake, "listed_on": listed_on,
               "before_split": adjusted_before_split}


def test_first_session_backfills_and_later_ones_fetch_one_page(run):
    reports = run["reports"]
    per_session = [r.requests for r in reports]
    print("\nrequests per session (30 sessions, 12 symbols and a held one):", per_session, "total", sum(per_session))
    assert len(reports[0].backfilled) == 12  # 11 of the universe (NODATA has none) and the held one
    # until NODATA leaves (10 sessions without data) its back-fill is tried once a session
    assert all(n == 2 for n in per_session[1:11])
    quiet = [n for i, n in enumerate(per_session) if i > 11 and i != 12]
    assert quiet and all(n == 1 for n in quiet)
    assert per_session[12] == 3  # the split: the one page, the traded bars, the restated history


def test_every_bar_is_stored_once(run):
    bars = run["warehouse"].query("select session, symbol from bars")
    assert bars.is_unique().all()
    expected = run["fake"].history
    for symbol in ("SYM0001", "SYM0003", HALTED, DELISTED):
        stored = bars.filter(pl.col("symbol") == symbol).height
        assert stored == len([b for b in expected[symbol] if b.session <= SESSIONS[-1]]), symbol


def test_split_is_detected_recorded_and_history_replaced_not_appended(run):
    wh = run["warehouse"]
    events = market_store.adjustment_events(wh)
    assert events.select("symbol", "session_detected", "reference_session").rows() == [
        (SPLIT.symbol, SPLIT.ex_date, SESSIONS[11])]
    event = events.row(0, named=True)
    assert event["ratio"] == pytest.approx(2.0, rel=1e-3)
    assert event["new_adj_close"] == pytest.approx(event["old_adj_close"] / 2, rel=1e-3)
    before = run["before_split"].filter(pl.col("symbol") == SPLIT.symbol)
    now = market_store.read_bars_through(wh, SESSIONS[11]).filter(pl.col("symbol") == SPLIT.symbol)
    assert now.height == before.height == event["rows_replaced"]
    assert (now["adj_close"] / before["adj_close"]).to_list() == pytest.approx([0.5] * now.height, rel=1e-3)
    assert now["close"].to_list() == before["close"].to_list()  # traded prices are history: unchanged


def test_features_from_stored_bars_see_no_jump_at_the_split(run):
    bars = market_store.read_bars_through(run["warehouse"], SESSIONS[-1])
    features = compute_features(bars).filter(pl.col("symbol") == SPLIT.symbol)
    ret = features.filter(pl.col("session") == SPLIT.ex_date)["ret_1"].item()
    traded = bars.filter(pl.col("symbol") == SPLIT.symbol).sort("session")
    raw_move = traded.filter(pl.col("session") <= SPLIT.ex_date)["close"].tail(2).to_list()
    assert raw_move[1] / raw_move[0] < 0.6  # the traded price halved ...
    assert abs(ret) < 0.2  # ... the adjusted return did not


def test_no_data_symbol_is_reported_then_leaves_the_universe(run):
    reports = run["reports"]
    assert reports[0].with_status("no_data") == ["NODATA"]
    exits = market_store.universe_events(run["warehouse"]).filter(pl.col("event") == "exited")
    nodata = exits.filter(pl.col("symbol") == "NODATA").row(0, named=True)
    assert nodata["session"] == SESSIONS[11] and "no bars" in nodata["reason"]
    assert "NODATA" not in reports[12].with_status("no_data") and "NODATA" in reports[12].with_status("exited")


def test_halted_days_keep_the_symbol_and_store_no_stale_bar(run):
    reports, wh = run["reports"], run["warehouse"]
    assert HALTED in reports[5].with_status("halted") and HALTED in reports[6].with_status("halted")
    assert HALTED in reports[7].with_status("active")
    assert market_store.read_bars(wh, SESSIONS[5:7]).filter(pl.col("symbol") == HALTED).is_empty()
    exits = market_store.universe_events(wh).filter(pl.col("event") == "exited")["symbol"].to_list()
    assert HALTED not in exits


def test_a_symbol_that_stops_trading_exits_with_why(run):
    events = market_store.universe_events(run["warehouse"])
    exit_row = events.filter((pl.col("symbol") == DELISTED) & (pl.col("event") == "exited")).row(0, named=True)
    assert exit_row["session"] == SESSIONS[8 + 11]  # more than 10 sessions without a bar
    assert f"no bar since {SESSIONS[8]}" in exit_row["reason"] and "stopped trading" in exit_row["reason"]
    assert DELISTED in run["reports"][12].with_status("halted")


def test_a_new_listing_waits_for_the_history_features_need_then_enters(run):
    reports = run["reports"]
    assert LISTED in reports[0].with_status("waiting")
    entered = market_store.universe_events(run["warehouse"]).filter(
        (pl.col("symbol") == LISTED) & (pl.col("event") == "entered")).row(0, named=True)
    stored = len(sessions_between(run["listed_on"], entered["session"]))
    assert stored == HISTORY_NEEDED and f"features need {HISTORY_NEEDED}" in entered["reason"]


def test_rerunning_a_session_fetches_little_and_changes_nothing(run):
    wh = run["warehouse"]
    before = market_store.read_bars_through(wh, SESSIONS[-1])
    source_report = run["reports"][-1]
    assert source_report.session_rows > 0
    fake = run["fake"]
    source = AlpacaBarSource(AlpacaDataConfig(fake.key_id, fake.secret_key, url_override=fake.url), UNIVERSE)
    again = sync_session(wh, source, SESSIONS[-1], HISTORY_START)
    assert again.stored_rows == 0 and again.adjustments.is_empty() and again.requests == 0
    assert market_store.read_bars_through(wh, SESSIONS[-1]).equals(before)


def test_a_holding_outside_the_universe_is_fetched_but_not_a_member(run):
    reports, wh = run["reports"], run["warehouse"]
    assert all(r.held_outside == [HELD] for r in reports)
    assert market_store.read_bars(wh, SESSIONS).filter(pl.col("symbol") == HELD).height == len(SESSIONS)
    assert HELD not in market_store.universe_events(wh)["symbol"].to_list()
    assert reports[-1].metadata()["held_outside_universe"] == HELD
