import pytest

from trading_pipeline.defs.environment import TradingEnvironmentError, check_environment
from trading_pipeline.definitions import build_definitions
from trading_pipeline.settings import BrokerName


def test_definitions_list_every_asset_job_schedule_and_sensor(small_settings):
    defs = build_definitions(small_settings())
    assets = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert assets == {"market_bars", "features", "trained_model", "predictions", "drift_report",
                      "target_portfolio", "submitted_orders", "reconciled_positions", "performance", "account_view",
                      "kill_switch"}
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"daily_trading_job", "training_job", "emergency_stop_job", "clear_kill_switch_job"} <= jobs
    assert {s.name for s in defs.schedules} == {"daily_trading_schedule", "weekly_training_schedule"}
    assert {s.name for s in defs.sensors} == {"drift_rollback_sensor", "paper_to_live_promotion_sensor",
                                              "run_failure_alert_sensor"}


@pytest.mark.parametrize(
    "env, broker, message",
    [
        ("paper", None, "TRADING_ENV=paper needs a broker: set TRADING_BROKER=alpaca or ibkr"),
        ("live", None, "TRADING_BROKER=alpaca or ibkr or robinhood"),
        ("paper", "robinhood", "Robinhood has no paper mode"),
        ("local", "alpaca", "not available with TRADING_ENV=local"),
    ],
)
def test_unusable_environments_fail_with_what_to_set(small_settings, env, broker, message):
    settings = small_settings(env=env, broker=broker)
    with pytest.raises(TradingEnvironmentError, match=message):
        check_environment(settings)
    with pytest.raises(TradingEnvironmentError, match=message):
        build_definitions(settings)


def test_local_defaults_to_the_simulator(small_settings):
    assert check_environment(small_settings()) is BrokerName.SIMULATOR


def test_live_defaults_are_the_cautious_ones(small_settings):
    live = small_settings(env="live", broker="alpaca")
    assert live.resolved_dry_run is True and live.resolved_auto_rollback is False
    local = small_settings()
    assert local.resolved_dry_run is False and local.resolved_auto_rollback is True
    assert small_settings(env="live", broker="alpaca", dry_run=False, auto_rollback=True).resolved_auto_rollback
