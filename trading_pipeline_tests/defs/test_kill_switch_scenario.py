"""A market crash engages the daily-loss kill switch; the next run sends no new entries and
says why; only clear_kill_switch_job lifts it. Bars come from CSV files with a crash written in."""

from datetime import date

import dagster as dg
import polars as pl

from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.calendar import next_session, sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.storage.warehouse import Warehouse

S1 = date(2024, 3, 27)
S2 = next_session(S1)
CRASH = next_session(S2)  # every price 15 % lower from this session's open on
AFTER_CRASH = [next_session(CRASH)]
for _ in range(3):
    AFTER_CRASH.append(next_session(AFTER_CRASH[-1]))


def write_bars_with_crash(folder) -> None:
    bars = SyntheticMarket(seed=11, universe_size=12).bars(sessions_between(date(2023, 1, 3), AFTER_CRASH[-1]))
    crashed = bars.with_columns(
        [pl.when(pl.col("session") >= CRASH).then(pl.col(c) * 0.85).otherwise(pl.col(c)).alias(c)
         for c in ("open", "high", "low", "close", "adj_close")])
    crashed.rename({"session": "date"}).write_csv(folder / "bars.csv")


def test_crash_engages_kill_switch_until_cleared(tmp_path, small_settings):
    folder = tmp_path / "bars"
    folder.mkdir()
    write_bars_with_crash(folder)
    # no no-trade band, so the target moves every session and the model wants new entries
    settings = small_settings(data_source="files", data_path=folder, no_trade_band=0.0)
    defs = build_definitions(settings)
    daily = defs.resolve_job_def("daily_trading_job")
    wh = Warehouse(settings.resolved_warehouse_path)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        def run(session):
            result = daily.execute_in_process(partition_key=session.isoformat(), instance=instance)
            assert result.success, session
            return result

        for session in (S1, S2):
            run(session)
        assert wh.scalar("select count(*) from kill_switch_events") == 0
        run(CRASH)
        engaged, reason = wh.query(
            "select engaged, reason from kill_switch_events order by recorded_at desc limit 1").row(0)
        assert engaged and "daily loss" in reason and "max_daily_loss" in reason
        assert wh.scalar("select count(*) from risk_events where kind = 'kill_switch' and session = ?",
                         [CRASH]) == 1

        held_back = 0
        for session in AFTER_CRASH:
            result = run(session)
            [materialization] = [m for m in result.asset_materializations_for_node("submitted_orders")]
            assert materialization.metadata["kill_switch"].value.startswith("ENGAGED: daily loss")
            buys = wh.query("select status, reason from ledger_orders where session = ? and side = 'buy'",
                            [session])
            assert set(buys["status"]) <= {"not_sent"}  # no new entry leaves while engaged
            assert all("kill switch is engaged" in r for r in buys["reason"])
            held_back += buys.height
        assert held_back > 0  # the model did want new entries, and they were held back

        cleared = defs.resolve_job_def("clear_kill_switch_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"clear_kill_switch": {"config": {"reason": "crash reviewed"}}}})
        assert cleared.success
        assert wh.query("select engaged from kill_switch_events order by recorded_at desc limit 1")["engaged"][0] is False
