"""daily_trading_job with TRADING_DATA_SOURCE=alpaca against the fake Alpaca data API: the bars
come from the broker's feed, incrementally, and a split between sessions is restated."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.calendar import next_session
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca_data import PlannedSplit, data_environment, serve_market
from trading_pipeline_tests.conftest import daily_sessions

HISTORY_START = date(2023, 1, 3)
D1 = date(2024, 3, 26)
D2 = next_session(D1)
D3 = next_session(D2)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env, \
            serve_market(12, HISTORY_START, D3, split=PlannedSplit("SYM0002", D3, 3.0)) as server:
        variables = data_environment(server)
        for name, value in variables.items():
            env.setenv(name, value)
        with daily_sessions(tmp_path_factory.mktemp("alpaca_data"), (D1, D2, D3), history_start=HISTORY_START,
                            data_source="alpaca", universe=variables["TRADING_UNIVERSE"]) as run:
            yield {"run": run, "fake": server.fake,
                   "warehouse": Warehouse(run.settings.resolved_warehouse_path)}


def _bars_metadata(result):
    [materialization] = [m for m in result.asset_materializations_for_node("market_bars")]
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def test_each_session_runs_on_the_brokers_bars(loop):
    for session, result in loop["run"].results.items():
        assert result.success, session
    wh = loop["warehouse"]
    assert wh.scalar("select count(distinct symbol) from bars") == 12
    assert wh.scalar("select count(*) from ledger_orders") > 0


def test_requests_are_incremental_and_reported(loop):
    figures = [_bars_metadata(loop["run"].results[s]) for s in (D1, D2, D3)]
    assert [f["data_source"] for f in figures] == ["alpaca"] * 3
    assert figures[0]["symbols_backfilled"] == 12
    assert figures[1]["data_requests"] == 1
    assert figures[2]["data_requests"] == 3 and "SYM0002 (ratio 3" in figures[2]["splits_or_dividends"]


def test_the_split_restates_stored_history(loop):
    wh = loop["warehouse"]
    [event] = market_store.adjustment_events(wh).rows(named=True)
    assert event["symbol"] == "SYM0002" and event["session_detected"] == D3 and event["ratio"] == pytest.approx(3, rel=1e-3)
    history = market_store.read_bars_through(wh, D3).filter(pl.col("symbol") == "SYM0002").sort("session")
    assert history.select("session").is_unique().all()
    returns = (history["adj_close"] / history["adj_close"].shift(1) - 1).drop_nulls()
    assert returns.abs().max() < 0.25  # no -67% day where the traded price split


def test_credentials_stay_out_of_the_run_record(loop):
    secret = loop["fake"].secret_key
    for result in loop["run"].results.values():
        for event in result.all_events:
            assert secret not in str(event)


def test_daily_job_on_ibkr_historical_data(tmp_path):
    from datetime import UTC, datetime

    from trading_pipeline_tests.brokers.fakes.tws import FakeTws
    from trading_pipeline_tests.brokers.fakes.tws.historical import data_environment as tws_environment
    from trading_pipeline_tests.brokers.fakes.tws.historical import load_market

    with FakeTws() as tws, pytest.MonkeyPatch.context() as env:
        history = load_market(tws, 8, HISTORY_START, D2)
        tws.state.clock = datetime(D2.year, D2.month, D2.day, 22, tzinfo=UTC)
        variables = tws_environment(tws)
        for name, value in variables.items():
            env.setenv(name, value)
        with daily_sessions(tmp_path, (D1, D2), history_start=HISTORY_START, universe_size=8,
                            data_source="ibkr", universe=variables["TRADING_UNIVERSE"]) as run:
            assert all(result.success for result in run.results.values())
            figures = [_bars_metadata(run.results[s]) for s in (D1, D2)]
    assert figures[0]["symbols_backfilled"] == 8 and figures[1]["data_requests"] == 8  # one per symbol
    assert not history.violations()
    assert {r.what for r in history.requests} == {"TRADES", "ADJUSTED_LAST"}
