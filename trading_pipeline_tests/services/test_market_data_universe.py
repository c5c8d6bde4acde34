"""TRADING_UNIVERSE: a comma list or a file of symbols, checked against TRADING_SYMBOL_PATTERN;
the member rules (waiting, halted, exited) as pure functions; the settings that choose it."""

from datetime import date

import pytest

from trading_pipeline.domain.market.universe import (
    SymbolRecord,
    UniverseError,
    parse_universe,
    removed_members,
    review_members,
)
from trading_pipeline.settings import TradingSettings

PATTERN = r"^[A-Z][A-Z0-9.\-]{0,14}$"
D = date(2024, 3, 1)


def test_a_comma_list_keeps_order_and_drops_duplicates():
    universe = parse_universe(" AAPL, MSFT ,BRK.B,AAPL,, SPY ", PATTERN)
    assert universe.symbols == ("AAPL", "MSFT", "BRK.B", "SPY") and universe.origin == "TRADING_UNIVERSE"


def test_a_file_of_symbols_with_comments(tmp_path):
    path = tmp_path / "universe.txt"
    path.write_text("# large caps\nAAPL MSFT\nSPY, QQQ  # ETFs\n\n")
    assert parse_universe(f"@{path}", PATTERN).symbols == ("AAPL", "MSFT", "SPY", "QQQ")


def test_bad_symbols_are_named_by_line_with_what_to_do(tmp_path):
    path = tmp_path / "universe.txt"
    path.write_text("AAPL\nmsft\nSPY\nBAD SYMBOL'\n")
    with pytest.raises(UniverseError) as bad:
        parse_universe(f"@{path}", PATTERN)
    text = str(bad.value)
    assert "2 bad symbols" in text and "universe.txt line 2: symbol 'msft' does not match" in text
    assert "universe.txt line 4" in text and "TRADING_SYMBOL_PATTERN" in text


def test_a_missing_file_or_an_empty_list_is_refused_clearly(tmp_path):
    with pytest.raises(UniverseError, match="cannot read .*nowhere.txt"):
        parse_universe(f"@{tmp_path / 'nowhere.txt'}", PATTERN)
    with pytest.raises(UniverseError, match="TRADING_UNIVERSE is empty"):
        parse_universe("  ", PATTERN)
    (tmp_path / "blank.txt").write_text("# nothing yet\n")
    with pytest.raises(UniverseError, match="names no symbols"):
        parse_universe(f"@{tmp_path / 'blank.txt'}", PATTERN)


def test_a_broker_data_source_needs_a_universe_and_a_known_feed():
    with pytest.raises(ValueError, match="TRADING_DATA_SOURCE=alpaca needs TRADING_UNIVERSE"):
        TradingSettings(_env_file=None, data_source="alpaca")
    with pytest.raises(ValueError, match="TRADING_ALPACA_DATA_FEED=nasdaq"):
        TradingSettings(_env_file=None, data_source="alpaca", universe="AAPL", alpaca_data_feed="nasdaq")
    chosen = TradingSettings(_env_file=None, data_source="ibkr", universe="AAPL,MSFT")
    assert chosen.data.universe == "AAPL,MSFT" and chosen.data.alpaca_data_feed == "iex"


def _since(first: date, last: date) -> int:
    return (last - first).days  # a stand-in calendar: every day a session


def _review(records, **known):
    return review_members(D, list(records), records, history_needed=61, sessions_since=_since,
                          joined=known.get("joined", set(records)), entered=known.get("entered", set()),
                          exited=known.get("exited", set()), exit_after=10)


def test_member_rules():
    records = {
        "FULL": SymbolRecord(61, D, date(2024, 1, 2)),
        "YOUNG": SymbolRecord(30, D, date(2024, 1, 2)),
        "HALTED": SymbolRecord(200, date(2024, 2, 27), date(2023, 1, 2)),
        "GONE": SymbolRecord(200, date(2024, 2, 15), date(2023, 1, 2)),
        "EMPTY": SymbolRecord(0, None, date(2024, 2, 28)),
        "NEVER": SymbolRecord(0, None, date(2024, 2, 1)),
    }
    statuses, events = _review(records)
    assert {s.symbol: s.status for s in statuses} == {
        "FULL": "active", "YOUNG": "waiting", "HALTED": "halted", "GONE": "exited", "EMPTY": "no_data",
        "NEVER": "exited"}
    assert {(e.symbol, e.event) for e in events} == {("FULL", "entered"), ("GONE", "exited"), ("NEVER", "exited")}
    assert "30 of the 61 sessions" in next(s.reason for s in statuses if s.symbol == "YOUNG")


def test_events_are_made_once():
    records = {"FULL": SymbolRecord(61, D, date(2024, 1, 2)), "NEW": SymbolRecord(0, None, D)}
    _, events = _review(records, joined={"FULL"}, entered={"FULL"})
    assert [(e.symbol, e.event) for e in events] == [("NEW", "joined")]
    gone = removed_members(D, ["FULL"], ["FULL", "OLD", "LEFT"], exited={"LEFT"})
    assert [(e.symbol, e.event) for e in gone] == [("OLD", "removed")]
