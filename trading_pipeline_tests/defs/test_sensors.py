"""Sensors evaluated with build_sensor_context against a real warehouse and MLflow store."""

import json
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.defs.environment import resources_for
from trading_pipeline.defs.resources import ModelConfig, StrategyResource
from trading_pipeline.defs.sensors.drift_rollback import drift_rollback_sensor
from trading_pipeline.defs.sensors.promotion import paper_to_live_promotion_sensor
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.services import modeling
from trading_pipeline.services.drift import DRIFT_TABLE
from trading_pipeline.storage import market_store

THROUGH = date(2024, 1, 31)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """A warehouse with bars and a registry with versions 1 and 2, champion v2."""
    from trading_pipeline.settings import TradingSettings

    home = tmp_path_factory.mktemp("sensors")
    # Versions with the synthetic market's planted signal, as the promotion scenario trains them:
    # the sensors' stages are under test here; the signal gate has its own tests, and a version
    # that fails it is never promoted; here it only asks that each version beats its control (t >= 0).
    settings = TradingSettings(_env_file=None, home=home, universe_size=50, history_start=date(2022, 6, 1),
                               train_window_sessions=250, signal_min_t_stat=0.0)
    resources = resources_for(settings)
    warehouse, store = resources["warehouse"], resources["model_store"]
    market = SyntheticMarket(seed=settings.data.market_seed, universe_size=50)
    market_store.append_history(warehouse.warehouse, market.bars(sessions_between(date(2022, 6, 1), THROUGH)))
    registry = store.registry()
    options = resources["strategy"].training_options()
    for through in (THROUGH - timedelta(days=14), THROUGH):
        modeling.train_and_register(warehouse.warehouse, warehouse.ledger, registry, through,
                                    250, 5, why="test", options=options)
    registry.set_alias(modeling.CHAMPION, "2", "test setup")
    return resources


def drift_row(resources, session, version, severity, share):
    resources["warehouse"].warehouse.replace_partition(DRIFT_TABLE, session, pl.DataFrame({
        "session": [session], "model_version": [version], "severity": [severity],
        "drifted_share": [share], "drifted_count": [int(share * 10)], "html_path": ["x.html"]}))


def evaluate(sensor, resources, cursor=None):
    # as a context manager: resources that open and close (generators) need its scope
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources) as context:
        result = sensor(context)
        return result, context.cursor


def test_drift_rollback_sensor_rolls_back_once_and_reruns_the_session(two_versions):
    registry = two_versions["model_store"].registry()
    drift_row(two_versions, THROUGH, "2", "warn", 0.35)
    result, cursor = evaluate(drift_rollback_sensor, two_versions)
    assert isinstance(result, dg.SkipReason) and registry.champion_version() == "2"

    drift_row(two_versions, THROUGH, "2", "severe", 0.8)
    requests, cursor = evaluate(drift_rollback_sensor, two_versions, cursor)
    assert [r.job_name for r in requests] == ["daily_trading_job"]  # no retraining unless asked
    result = requests[0]
    assert result.partition_key == THROUGH.isoformat()
    assert {k.to_user_string() for k in result.asset_selection} >= {"predictions", "submitted_orders"}
    assert "market_bars" not in {k.to_user_string() for k in result.asset_selection}
    assert registry.champion_version() == "1"
    events = two_versions["warehouse"].ledger.model_events(registry.model_name)
    rollback = events.filter(pl.col("action") == "rollback").row(0, named=True)
    assert rollback["version"] == "1" and rollback["previous_version"] == "2"
    assert "severe drift" in rollback["reason"]
    assert json.loads(rollback["metrics"])["report_session"] == THROUGH.isoformat()

    # the same report again: no second rollback
    result, _ = evaluate(drift_rollback_sensor, two_versions, cursor)
    assert isinstance(result, dg.SkipReason) and registry.champion_version() == "1"


def account_day(resources, session, equity, version, venue="simulator"):
    """A session at `venue` traded on `version`'s predictions, as the daily loop records it."""
    wh = resources["warehouse"].warehouse
    wh.execute("insert into ledger_account values (?, ?, 0, ?, 0, now())", [session, venue, equity])
    wh.replace_partition("predictions", session, pl.DataFrame(
        {"session": [session], "symbol": ["S0"], "score": [0.0], "model_version": [version]}))


def traded(resources, session, venue="simulator"):
    """An order of `session` the broker filled, and the position it left, as the ledger has them."""
    wh = resources["warehouse"].warehouse
    order_id = f"test-{venue}-{session}"
    wh.execute("insert into ledger_orders (client_order_id, strategy, session, broker, symbol, side, "
               "quantity, order_type, time_in_force, purpose, status, created_at, updated_at) values "
               "(?, 'daily_ml', ?, ?, 'S0', 'buy', 1, 'market', 'day', 'rebalance', 'filled', now(), now())",
               [order_id, session, venue])
    wh.execute("insert into ledger_fills (fill_id, client_order_id, broker, symbol, side, quantity, price, "
               "commission, filled_at, recorded_session) values (?, ?, ?, 'S0', 'buy', 1, 10, 1, now(), ?)",
               [f"fill-{order_id}", order_id, venue, session])
    wh.execute("insert into ledger_positions (session, broker, symbol, quantity, avg_entry_price, "
               "market_price) values (?, ?, 'S0', 1, 10, 10)", [session, venue])


def test_promotion_sensor_records_needs_review_then_approved(two_versions):
    ledger = two_versions["warehouse"].ledger
    wh = ledger.warehouse
    champion = two_versions["model_store"].registry().champion_version()
    sessions = sessions_between(date(2024, 2, 1), date(2024, 3, 15))[:25]
    wh.execute("delete from ledger_account")
    for i, session in enumerate(sessions[:5]):
        account_day(two_versions, session, 100_000 + 100 * i, champion)
    result, cursor = evaluate(paper_to_live_promotion_sensor, two_versions)
    assert ledger.latest_promotion("daily_ml")["decision"] == "needs_review"
    for i, session in enumerate(sessions[5:], start=5):
        account_day(two_versions, session, 100_000 + 100 * i, champion)
    for session in sessions:  # the strategy traded: one filled order and a position a session
        traded(two_versions, session)
    # without a backtest on record the same track record cannot be judged: a person decides
    wh.execute("delete from backtest_summary where model_version = ?", [champion])
    result, cursor = evaluate(paper_to_live_promotion_sensor, two_versions, cursor)
    decision = ledger.latest_promotion("daily_ml")
    assert decision["decision"] == "needs_review"
    assert "no backtest on record" in decision["reasons"] or "expects no profit" in decision["reasons"]

    # with a backtest on record that expects a profit, the same track record is approved
    wh.execute("delete from backtest_summary where model_version = ?", [champion])
    wh.execute("insert into backtest_summary (model_version, sharpe, max_drawdown) values (?, 1.2, -0.05)",
               [champion])
    account_day(two_versions, sessions[-1] + timedelta(days=7), 100_000 + 100 * len(sessions), champion)
    result, cursor = evaluate(paper_to_live_promotion_sensor, two_versions, cursor)
    decision = ledger.latest_promotion("daily_ml")
    assert decision["decision"] == "approved" and decision["stage_to"] == "paper"
    assert "TRADING_ENV=paper" in decision["reasons"]  # what a human does next
    shown = result.asset_events[0]
    assert shown.asset_key.to_user_string() == "performance"
    assert shown.metadata["promotion_decision"].value == "approved"
    count = wh.scalar("select count(*) from promotion_decisions")
    evaluate(paper_to_live_promotion_sensor, two_versions, cursor)  # nothing new: no new record
    assert wh.scalar("select count(*) from promotion_decisions") == count


def test_promotion_counts_only_the_versions_own_sessions_at_the_stages_account(two_versions):
    """A predecessor's sessions, or another account's, never earn a version its approval."""
    ledger = two_versions["warehouse"].ledger
    wh = ledger.warehouse
    champion = two_versions["model_store"].registry().champion_version()
    wh.execute("delete from ledger_account")
    wh.execute("delete from backtest_summary where model_version = ?", [champion])
    wh.execute("insert into backtest_summary (model_version, sharpe, max_drawdown) values (?, 1.2, -0.05)",
               [champion])
    sessions = sessions_between(date(2024, 4, 1), date(2024, 6, 28))
    other = "2" if champion == "1" else "1"
    for i, session in enumerate(sessions[:30]):  # 30 clean sessions of the other version
        account_day(two_versions, session, 100_000 + 50 * i, other)
    for i, session in enumerate(sessions[30:35]):  # then 5 of the champion's own
        account_day(two_versions, session, 101_500 + 50 * i, champion)
    for session in sessions[35:60]:  # and 25 at a broker's paper account, another stage's
        wh.execute("insert into ledger_account values (?, 'alpaca-paper', 0, 100000, 0, now())", [session])
    evaluate(paper_to_live_promotion_sensor, two_versions)
    decision = ledger.latest_promotion("daily_ml")
    assert decision["decision"] == "needs_review" and decision["sessions_evaluated"] == 5
    assert "only 5 of the 20 sessions needed" in decision["reasons"]


def test_auto_rollback_off_raises_an_alert_and_moves_nothing(two_versions):
    registry = two_versions["model_store"].registry()
    registry.set_alias(modeling.CHAMPION, "2", "test setup")
    drift_row(two_versions, THROUGH + timedelta(days=1), "2", "severe", 0.9)
    resources = {**two_versions, "strategy": StrategyResource(auto_rollback=False)}
    result, _ = evaluate(drift_rollback_sensor, resources)
    assert isinstance(result, dg.SkipReason) and "auto-rollback is off" in result.skip_message
    assert registry.champion_version() == "2"


def test_never_rolls_back_onto_a_flagged_version(two_versions):
    registry = two_versions["model_store"].registry()
    registry.set_alias(modeling.CHAMPION, "2", "test setup")
    drift_row(two_versions, THROUGH - timedelta(days=1), "1", "severe", 0.7)  # v1 was flagged too
    drift_row(two_versions, THROUGH + timedelta(days=2), "2", "none", 0.1)  # a calm day: new episode
    drift_row(two_versions, THROUGH + timedelta(days=3), "2", "severe", 0.9)
    result, _ = evaluate(drift_rollback_sensor, two_versions)
    assert isinstance(result, dg.SkipReason) and "no earlier version free of severe drift" in result.skip_message
    assert registry.champion_version() == "2"


def test_one_rollback_per_drift_episode_then_alerts(two_versions):
    """Drift that outlasts a rollback raises an alert instead of walking down every version."""
    registry = two_versions["model_store"].registry()
    wh = two_versions["warehouse"].warehouse
    wh.execute(f"delete from {DRIFT_TABLE}")
    drift_row(two_versions, THROUGH + timedelta(days=10), "2", "none", 0.1)
    registry.set_alias(modeling.CHAMPION, "2", "test setup")
    drift_row(two_versions, THROUGH + timedelta(days=11), "2", "severe", 0.8)
    resources = {**two_versions, "strategy": StrategyResource(model=ModelConfig(retrain_after_rollback=True))}
    requests, cursor = evaluate(drift_rollback_sensor, resources)
    assert [r.job_name for r in requests] == ["daily_trading_job", "training_job"]
    assert registry.champion_version() == "1"
    registry.set_alias(modeling.CHAMPION, "2", "a human puts v2 back")
    drift_row(two_versions, THROUGH + timedelta(days=12), "2", "severe", 0.85)
    result, _ = evaluate(drift_rollback_sensor, resources, cursor)
    assert isinstance(result, dg.SkipReason) and "drift persists after the rollback" in result.skip_message
    assert registry.champion_version() == "2"
