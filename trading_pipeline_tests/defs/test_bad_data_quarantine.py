"""A suspect bar is quarantined, not traded: named in market_bars's metadata and the
data_quality table, alerted, left out of the simulator's marks and fills, released only by a
recorded decision; too many suspects stop the run before any order."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.defs.assets.market import market_bars
from trading_pipeline.defs.checks import bar_quality
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.defs.quality import release_quarantine_job
from trading_pipeline.domain.calendar import previous_session, sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.orders import OrderIntent, Side
from trading_pipeline.services import data_quality

FIRST, D2 = date(2023, 10, 2), date(2024, 2, 2)
D1 = previous_session(D2)
D0 = previous_session(D1)


def write_files(folder, bars: pl.DataFrame) -> None:
    bars.with_columns(pl.col("session").dt.strftime("%Y-%m-%d")).write_csv(folder / "bars.csv")


def times_100(bars: pl.DataFrame, symbols: list[str], session: date) -> pl.DataFrame:
    hit = pl.col("symbol").is_in(symbols) & (pl.col("session") == session)
    return bars.with_columns(pl.when(hit).then(pl.col(c) * 100).otherwise(pl.col(c)).alias(c)
                             for c in ("open", "high", "low", "close", "adj_close"))


@pytest.fixture
def market(tmp_path, small_settings):
    """Six synthetic symbols in a file; make(bad_symbols) writes them with a 100x bar on D2."""
    folder = tmp_path / "bars"
    folder.mkdir()
    clean = SyntheticMarket(seed=5, universe_size=6).bars(sessions_between(FIRST, D2))
    settings = small_settings(data_source="files", data_path=folder, history_start=FIRST,
                              first_session=FIRST)

    def make(bad_symbols: list[str]):
        write_files(folder, times_100(clean, bad_symbols, D2))
        return clean, settings

    return make


def run(settings, session: date, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize([market_bars, bar_quality], partition_key=session.isoformat(),
                          resources=resources_for(settings), instance=instance, raise_on_error=False)


def metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("market_bars")[0].metadata.items()}


def check(result) -> dg.AssetCheckEvaluation:
    return result.get_asset_check_evaluations()[0]


def test_a_100x_bar_is_quarantined_named_alerted_and_the_run_goes_on(market):
    clean, settings = market(["SYM0003"])
    assert run(settings, D1).success
    with dg.instance_for_test() as instance:
        result = run(settings, D2, instance)
        logs = " ".join(str(e.user_message) for e in instance.all_logs(result.run_id))
    shown = metadata(result)
    assert shown["quarantined"] == 1 and shown["quarantined_symbols"] == "SYM0003"
    table = shown["data_quality"]
    assert [r.data["symbol"] for r in table.records] == ["SYM0003"]
    assert table.records[0].data["kind"] == "unit_error" and "101.0x the last good close" in table.records[0].data["reason"]
    assert "1 symbol(s) quarantined" in logs and "SYM0003 (unit_error)" in logs  # the alert, in the run's log
    evaluation = check(result)
    assert evaluation.passed  # 1 of 6 is under the 20 % share: the run goes on without SYM0003
    assert evaluation.metadata["quarantined_symbols"].value == "SYM0003"
    warehouse = resources_for(settings)["warehouse"].warehouse
    assert list(data_quality.quarantined_symbols(warehouse, D2)) == ["SYM0003"]
    assert "SYM0003" not in data_quality.tradable_bars(warehouse, D2)["symbol"].to_list()
    # planning values it at its last good close, not the 100x one
    good = dict(data_quality.last_good_closes(warehouse, D2).iter_rows())
    d1_close = clean.filter((pl.col("symbol") == "SYM0003") & (pl.col("session") == D1))["close"][0]
    assert good["SYM0003"] == pytest.approx(d1_close)
    returns = data_quality.clean_returns_history(warehouse, D2, 20)
    assert returns["return"].abs().max() < 1.0  # the 100x move never enters VaR


def test_the_simulator_values_the_book_at_the_last_good_price(market):
    clean, settings = market(["SYM0003"])
    assert run(settings, D1).success and run(settings, D2).success
    resources = resources_for(settings)
    warehouse, broker = resources["warehouse"].warehouse, resources["broker"]
    source = resources["market"].market()
    with broker.connected(warehouse, source, D0) as sim:
        sim.submit(OrderIntent(client_order_id="buy-s003", symbol="SYM0003", side=Side.BUY, quantity=10,
                               session=D0, strategy="t"))
    with broker.connected(warehouse, source, D2) as sim:
        account = sim.account()
        position = {p.symbol: p for p in sim.positions()}["SYM0003"]
    d1_close = clean.filter((pl.col("symbol") == "SYM0003") & (pl.col("session") == D1))["close"][0]
    assert position.quantity == 10
    assert position.market_price == pytest.approx(d1_close)  # not the 100x close of D2
    assert account.equity < 1.01 * settings.costs.initial_cash


def test_too_many_suspects_stop_the_session_with_the_reasons(market):
    _, settings = market(["SYM0001", "SYM0002"])  # 2 of 6 > 20 %
    assert run(settings, D1).success
    evaluation = check(run(settings, D2))
    assert not evaluation.passed
    assert "2 of 6 symbols quarantined" in evaluation.description
    assert evaluation.metadata["quarantined_unit_error"].value == 2


def test_a_release_is_a_recorded_decision_with_a_reason(market):
    _, settings = market(["SYM0003"])
    run(settings, D1), run(settings, D2)
    resources = resources_for(settings)
    warehouse = resources["warehouse"].warehouse
    refused = release_quarantine_job.execute_in_process(
        run_config={"ops": {"release_quarantine": {"config": {"session": D2.isoformat(), "symbol": "SYM0001",
                                                              "reason": "looked"}}}},
        resources={"warehouse": resources["warehouse"]}, raise_on_error=False)
    assert not refused.success  # SYM0001 is not quarantined: nothing to release
    result = release_quarantine_job.execute_in_process(
        run_config={"ops": {"release_quarantine": {"config": {"session": D2.isoformat(), "symbol": "SYM0003",
                                                              "reason": "checked the exchange: real"}}}},
        resources={"warehouse": resources["warehouse"]})
    assert result.success
    assert data_quality.quarantined_symbols(warehouse, D2) == {}
    recorded = data_quality.events(warehouse, D2)
    assert recorded["event"].to_list() == ["released"]
    assert "checked the exchange: real" in recorded["detail"][0] and recorded["actor"][0].startswith("run ")
    with pytest.raises(data_quality.QuarantineReleaseError, match="needs a reason"):
        data_quality.release(warehouse, D2, "SYM0003", "  ", actor="me")


def test_a_later_load_that_corrects_the_bar_is_recorded(market, tmp_path):
    clean, settings = market(["SYM0003"])
    run(settings, D1), run(settings, D2)
    write_files(tmp_path / "bars", clean)  # the vendor fixes D2
    result = run(settings, D2)
    shown = metadata(result)
    assert shown["quarantined"] == 0 and shown["corrections"] == 1
    assert data_quality.events(resources_for(settings)["warehouse"].warehouse, D2)["event"].to_list() == ["corrected"]
    warehouse = resources_for(settings)["warehouse"].warehouse
    assert data_quality.quarantined_symbols(warehouse, D2) == {}


def test_a_correction_of_an_earlier_session_is_recorded_on_the_next_run(market, tmp_path):
    clean, settings = market(["SYM0003"])
    run(settings, D1), run(settings, D2)
    D3 = date(2024, 2, 5)
    fixed = pl.concat([clean, SyntheticMarket(seed=5, universe_size=6).bars([D3])])
    write_files(tmp_path / "bars", fixed)  # the vendor fixes D2 and adds D3
    warehouse = resources_for(settings)["warehouse"].warehouse
    from trading_pipeline.storage import market_store
    market_store.write_session(warehouse, D2, clean.filter(pl.col("session") == D2))  # a reload of D2
    shown = metadata(run(settings, D3))
    assert shown["corrections"] == 1
    event = data_quality.events(warehouse, D2).row(0, named=True)
    assert event["event"] == "corrected" and event["symbol"] == "SYM0003" and "was unit_error" in event["detail"]
    assert data_quality.quarantined_symbols(warehouse, D2) == {}


def test_an_unchanged_bar_and_a_delisted_symbol_are_named_left_out_and_the_run_goes_on(tmp_path, small_settings):
    # Issue: bar_quality stopped the whole run on `stale_bars: 1`, naming no symbol.
    folder = tmp_path / "bars"
    folder.mkdir()
    clean = SyntheticMarket(seed=5, universe_size=10).bars(sessions_between(FIRST, D2))
    last_d1 = clean.filter((pl.col("symbol") == "SYM0002") & (pl.col("session") == D1))
    unchanged = last_d1.with_columns(pl.lit(D2).alias("session"), pl.lit(0.0).alias("volume"))
    files = pl.concat([
        clean.filter(~((pl.col("session") == D2) & pl.col("symbol").is_in(["SYM0002", "SYM0005"]))), unchanged])
    write_files(folder, files.sort("session", "symbol"))
    settings = small_settings(data_source="files", data_path=folder, history_start=FIRST, first_session=FIRST)
    assert run(settings, D1).success
    result = run(settings, D2)
    evaluation = check(result)
    assert evaluation.passed  # 2 of 10: left out of the session, the run goes on
    assert evaluation.metadata["quarantined_symbols"].value == "SYM0002, SYM0005"
    reasons = data_quality.quarantined_symbols(resources_for(settings)["warehouse"].warehouse, D2)
    assert reasons["SYM0002"].startswith("stale: unchanged bar") and "no trade" in reasons["SYM0002"]
    assert reasons["SYM0005"].startswith("missing: no bar on 2024-02-02 (last bar on 2024-02-01")
