"""market_bars over the files source: gaps in its metadata, a later session reads no file again,
and a session the run cannot serve fails before anything is written. `latest-session` gives
the last session the files hold."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline import cli
from trading_pipeline.defs.assets.market import market_bars
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.domain.calendar import latest_completed_session, sessions_between
from trading_pipeline.domain.market import SyntheticMarket

FIRST, D1, D2 = date(2024, 1, 2), date(2024, 2, 1), date(2024, 2, 2)
YAHOO = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


def write_yahoo_files(folder, bars: pl.DataFrame) -> None:
    """One `<SYMBOL>.csv` per symbol as Yahoo writes it; the first symbol did not trade on D1."""
    gap_symbol = bars["symbol"].min()
    for (symbol,), rows in bars.partition_by("symbol", as_dict=True).items():
        text = rows.sort("session").select(
            pl.col("session").dt.strftime("%Y-%m-%d"), *(pl.col(c).cast(pl.String) for c in
                                                          ("open", "high", "low", "close", "adj_close", "volume")))
        if symbol == gap_symbol:
            text = text.with_columns(
                pl.when(pl.col("session") == D1.isoformat()).then(pl.lit("null")).otherwise(pl.col(c)).alias(c)
                for c in text.columns[1:])
        text.columns = YAHOO
        text.write_csv(folder / f"{symbol}.csv")


@pytest.fixture
def files(tmp_path, small_settings):
    folder = tmp_path / "bars"
    folder.mkdir()
    bars = SyntheticMarket(seed=3, universe_size=4).bars(sessions_between(FIRST, D2))
    write_yahoo_files(folder, bars)
    return folder, bars, small_settings(data_source="files", data_path=folder, history_start=FIRST)


def run(settings, session: date) -> dg.ExecuteInProcessResult:
    return dg.materialize([market_bars], partition_key=session.isoformat(), resources=resources_for(settings))


def metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("market_bars")[0].metadata.items()}


def stored_bars(settings) -> int:
    warehouse = resources_for(settings)["warehouse"].warehouse
    return warehouse.scalar("select count(*) from bars") if warehouse.table_exists("bars") else 0


def test_gaps_are_left_out_and_counted_and_a_later_session_reads_no_file(files):
    folder, bars, settings = files
    first = metadata(run(settings, D1))
    gap_symbol = bars["symbol"].min()
    assert (first["files"], first["files_read"], first["gaps_in_data"]) == (4, 4, 1)
    assert (first["gaps_this_session"], first["gap_symbols_this_session"]) == (1, gap_symbol)
    assert first["rows"] == 3
    later = metadata(run(settings, D2))
    assert (later["files_read"], later["files_unchanged"], later["gaps_this_session"]) == (0, 4, 0)
    assert later["rows"] == 4
    assert stored_bars(settings) == bars.height - 1  # every bar but the gap


def test_a_session_after_the_files_end_fails_before_writing(files):
    folder, bars, settings = files
    with pytest.raises(dg.Failure) as failure:
        run(settings, date(2024, 2, 5))
    message = str(failure.value.description)
    assert f"the files in {folder} have no bars for session 2024-02-05" in message
    assert "they hold 2024-01-02 .. 2024-02-02" in message and "latest-session" in message
    assert stored_bars(settings) == 0  # the month of history was not written either


def test_a_history_start_after_the_session_fails_before_writing(files, small_settings):
    folder, _, _ = files
    settings = small_settings(data_source="files", data_path=folder, history_start=date(2024, 3, 1))
    with pytest.raises(dg.Failure, match="TRADING_HISTORY_START"):
        run(settings, D1)
    assert stored_bars(settings) == 0


def test_a_session_before_the_first_partition_writes_nothing(files):
    _, _, settings = files
    with pytest.raises(Exception):
        run(settings, date(2019, 12, 31))
    assert stored_bars(settings) == 0


@pytest.fixture
def cli_env(files, tmp_path, monkeypatch):
    folder, _, settings = files
    monkeypatch.chdir(tmp_path)  # no .env from elsewhere
    for name in ("TRADING_DATA_SOURCE", "TRADING_DATA_PATH", "TRADING_HOME", "TRADING_HISTORY_START",
                 "TRADING_FIRST_SESSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    return folder, settings, monkeypatch


def test_latest_session_with_files_is_the_last_session_they_hold(cli_env, capsys):
    folder, settings, env = cli_env
    env.setenv("TRADING_DATA_SOURCE", "files")
    env.setenv("TRADING_DATA_PATH", str(folder))
    env.setenv("TRADING_HISTORY_START", FIRST.isoformat())
    env.setenv("TRADING_FIRST_SESSION", FIRST.isoformat())
    assert cli.main(["latest-session"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == D2.isoformat()
    assert f"end at {D2}, before the latest completed NYSE session" in err
    # the load was kept in the warehouse: the run that follows reads no file again
    assert metadata(run(settings, D2))["files_read"] == 0


def test_latest_session_says_which_setting_to_change_when_the_files_end_before_it(cli_env, capsys):
    folder, _, env = cli_env
    env.setenv("TRADING_DATA_SOURCE", "files")
    env.setenv("TRADING_DATA_PATH", str(folder))
    env.setenv("TRADING_FIRST_SESSION", "2024-06-03")
    assert cli.main(["latest-session"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "TRADING_FIRST_SESSION=2024-06-03 is after 2024-02-02" in err


def test_latest_session_with_broken_files_explains_on_stderr(cli_env, capsys):
    folder, _, env = cli_env
    (folder / "BAD.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n")
    env.setenv("TRADING_DATA_SOURCE", "files")
    env.setenv("TRADING_DATA_PATH", str(folder))
    assert cli.main(["latest-session"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "BAD.csv line 1: has a header and no bars" in err


def test_latest_session_without_files_is_the_latest_completed_session(cli_env, capsys):
    assert cli.main(["latest-session"]) == 0
    assert capsys.readouterr().out.strip() == latest_completed_session().isoformat()
