"""The daily loop end to end on the embedded default: real DuckDB, MLflow, Dagster instance."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.calendar import next_session
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.conftest import daily_sessions

D1 = date(2024, 3, 27)
D2 = next_session(D1)  # 2024-03-28; Good Friday 2024-03-29 is no session
D3 = next_session(D2)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    with daily_sessions(tmp_path_factory.mktemp("loop"), (D1, D2, D3)) as run:
        yield {"settings": run.settings, "job": run.job, "instance": run.instance, "results": run.results,
               "warehouse": Warehouse(run.settings.resolved_warehouse_path)}


def test_every_step_and_check_succeeds(loop):
    for session, result in loop["results"].items():
        assert result.success, session
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks if not c.passed]


def test_the_six_risk_limits_are_six_blocking_checks_run_in_one_step(loop):
    from trading_pipeline.defs.checks import TARGET_LIMITS, risk_limit_checks

    result = loop["results"][D3]
    evaluated = {c.check_name for c in result.get_asset_check_evaluations()
                 if c.asset_key.to_user_string() == "target_portfolio"}
    assert evaluated == set(TARGET_LIMITS)
    assert all(spec.blocking for spec in risk_limit_checks.check_specs)
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert sum(step.startswith("target_portfolio_") for step in steps) == 0, steps
    assert steps.count("risk_limits") == 1, steps


def test_orders_decided_at_d_fill_on_the_next_session_bars(loop):
    wh = loop["warehouse"]
    orders = wh.query("select * from ledger_orders where session = ? and order_type = 'market'", [D1])
    assert orders.height > 0 and set(orders["dry_run"]) == {False}
    fills = wh.query(
        """select f.*, b.open from ledger_fills f join ledger_orders o using (client_order_id)
           join bars b on b.symbol = f.symbol and b.session = ?
           where o.session = ? and o.order_type = 'market'""", [D2, D1])
    assert fills.height == orders.height
    # each buy went with its own stop, which the simulator holds until the buy fills
    stops = wh.query("select client_order_id, status from ledger_orders where session = ? and "
                     "purpose = 'stop_loss'", [D1])
    buys = orders.filter(pl.col("side") == "buy")["client_order_id"].to_list()
    assert sorted(stops["client_order_id"]) == sorted(f"{b}-stop" for b in buys)
    # market orders fill at D2's open plus (buys) slippage, never at D1's prices
    for row in fills.iter_rows(named=True):
        assert row["price"] == pytest.approx(row["open"] * (1 + 5e-4), rel=1e-9)
        assert row["filled_at"].date() == D2


def test_positions_reconcile_with_zero_breaks(loop):
    wh = loop["warehouse"]
    assert wh.scalar("select count(*) from reconciliation_breaks") == 0
    # buys are sized to buying power, so the simulated broker refuses none of them
    assert wh.scalar("select count(*) from ledger_orders where status = 'rejected'") == 0
    held = wh.query("select symbol, quantity from ledger_positions where session = ?", [D3])
    assert held.height > 0


def test_rerunning_a_session_sends_no_second_order(loop):
    wh = loop["warehouse"]
    before = wh.query("select client_order_id, status from ledger_orders order by 1")
    sim_before = wh.scalar("select count(*) from sim_orders")
    result = loop["job"].execute_in_process(partition_key=D2.isoformat(), instance=loop["instance"])
    assert result.success
    after = wh.query("select client_order_id, status from ledger_orders order by 1")
    assert after["client_order_id"].to_list() == before["client_order_id"].to_list()
    assert wh.scalar("select count(*) from sim_orders") == sim_before


def test_equity_curve_and_model_version_recorded(loop):
    wh = loop["warehouse"]
    curve = wh.query("select * from performance order by session")
    assert curve["session"].to_list() == [D1, D2, D3]
    versions = wh.query("select distinct model_version from predictions")
    assert versions.height == 1 and versions["model_version"][0] == "1"


def test_emergency_stop_blocks_sending_until_cleared(loop):
    wh, instance = loop["warehouse"], loop["instance"]
    defs = build_definitions(loop["settings"])
    open_before = wh.scalar("select count(*) from sim_orders where status in ('new', 'partially_filled')")
    assert open_before > 0  # D3's orders are working at the simulated broker
    stop = defs.resolve_job_def("emergency_stop_job").execute_in_process(
        instance=instance,
        run_config={"ops": {"engage_kill_switch_and_cancel": {"config": {"reason": "test stop"}}}})
    assert stop.success
    assert wh.scalar("select count(*) from sim_orders where status in ('new', 'partially_filled')") == 0
    d4 = next_session(D3)
    result = loop["job"].execute_in_process(partition_key=d4.isoformat(), instance=instance)
    assert result.success
    d4_orders = wh.query("select side, purpose, status, reason from ledger_orders where session = ?", [d4])
    entries = d4_orders.filter(pl.col("side") == "buy")
    with_entries = d4_orders.filter(pl.col("side") == "sell", pl.col("reason").str.starts_with("its entry"))
    exits = d4_orders.filter(pl.col("side") == "sell", ~pl.col("reason").fill_null("").str.starts_with("its entry"))
    # no new entries while engaged, and the reason is recorded; exits and stops still go, the
    # stops that go with a held entry are held with it
    assert entries.height > 0 and set(entries["status"]) == {"not_sent"}
    assert all("kill switch" in r for r in entries["reason"])
    assert with_entries.height == entries.height and set(with_entries["status"]) == {"not_sent"}
    assert exits.height > 0 and "not_sent" not in set(exits["status"])
    blocked = entries
    assert wh.scalar("select count(*) from sim_orders where client_order_id in "
                     "(select client_order_id from ledger_orders where session = ? and side = 'buy')",
                     [d4]) == 0

    with pytest.raises(Exception):  # clearing needs a reason
        defs.resolve_job_def("clear_kill_switch_job").execute_in_process(instance=instance)
    cleared = defs.resolve_job_def("clear_kill_switch_job").execute_in_process(
        instance=instance, run_config={"ops": {"clear_kill_switch": {"config": {"reason": "checked"}}}})
    assert cleared.success
    events = wh.query("select engaged, reason from kill_switch_events order by recorded_at")
    assert events.rows() == [(True, "test stop"), (False, "checked")]
    # with the switch released, re-running the blocked session sends what was held back, once
    again = loop["job"].execute_in_process(partition_key=d4.isoformat(), instance=instance)
    assert again.success
    sent = wh.query("select status, dry_run from ledger_orders where session = ?", [d4])
    assert "not_sent" not in set(sent["status"]) and set(sent["dry_run"]) == {False}
    assert wh.scalar("select count(*) from sim_orders where client_order_id in "
                     "(select client_order_id from ledger_orders where session = ? and side = 'buy')",
                     [d4]) == blocked.height


def test_performance_shows_equity_against_the_backtest_and_the_monitor(loop):
    import base64
    import re

    result = loop["results"][D3]
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "performance")
    metadata = event.materialization.metadata
    image = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)",
                         metadata["equity_vs_backtest"].value)
    assert image and base64.b64decode(image.group(1)).startswith(b"\x89PNG")
    assert {"return", "daily_loss"} <= {r.data["check"] for r in metadata["monitor"].value.records}
    # the account is the simulator trading the same decisions the backtest makes: no breach
    assert metadata["monitor_breaches"].value == 0
    assert metadata["backtest_equity"].value == pytest.approx(metadata["equity"].value, rel=1e-9)
    checks = loop["warehouse"].query("select * from monitor_checks where session = ?", [D3])
    assert checks.height == 5 and not checks["breached"].any()
