"""The code location: assets, checks, jobs, schedules and sensors with the resources the
environment (TRADING_ENV, TRADING_BROKER, ...) selects."""

from __future__ import annotations

import sys

import dagster as dg

from trading_pipeline.defs.assets.account import account_view
from trading_pipeline.defs.assets.controls import kill_switch
from trading_pipeline.defs.assets.market import market_bars
from trading_pipeline.defs.assets.model import drift_report, features, predictions, trained_model
from trading_pipeline.defs.assets.trading import (
    performance,
    reconciled_positions,
    submitted_orders,
    target_portfolio,
)
from trading_pipeline.defs.checks import all_checks
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.defs.jobs import all_jobs
from trading_pipeline.defs.schedules import all_schedules
from trading_pipeline.defs.sensors.alerts import run_failure_alert_sensor
from trading_pipeline.defs.sensors.drift_rollback import drift_rollback_sensor
from trading_pipeline.defs.sensors.promotion import paper_to_live_promotion_sensor
from trading_pipeline.settings import SettingsError, TradingSettings

ASSETS = [market_bars, features, trained_model, predictions, drift_report, target_portfolio,
          submitted_orders, reconciled_positions, performance, account_view, kill_switch]
SENSORS = [drift_rollback_sensor, paper_to_live_promotion_sensor, run_failure_alert_sensor]


def build_definitions(settings: TradingSettings | None = None) -> dg.Definitions:
    settings = settings or TradingSettings()
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=all_checks,
        jobs=all_jobs,
        schedules=all_schedules,
        sensors=SENSORS,
        resources=resources_for(settings),
    )


def _in_code_server() -> bool:
    """Loaded by the web UI's code server (`dagster api grpc` / `dagster code-server`)?"""
    return bool({"grpc", "code-server"} & set(sys.argv))


try:
    defs = build_definitions()
except SettingsError as misconfigured:  # TradingEnvironmentError is one too
    # A settings mistake, not a bug. The UI shows a raised error as the location's load
    # error; on the command line, say what to set without a stack trace.
    if _in_code_server():
        raise
    raise SystemExit(f"trading_pipeline: {misconfigured}") from None
