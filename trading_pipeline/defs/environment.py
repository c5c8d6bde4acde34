"""The one place that turns settings (TRADING_ENV, TRADING_BROKER, ...) into resources."""

from __future__ import annotations

import os

import dagster as dg

from trading_pipeline.alerts import parse_addresses
from trading_pipeline.defs.resources import (
    AccountLockResource,
    AlertsResource,
    AlpacaBrokerResource,
    BrokerResource,
    IbkrBrokerResource,
    RobinhoodBrokerResource,
    MarketDataResource,
    ModelStoreResource,
    SimulatorBrokerResource,
    StrategyResource,
    WarehouseResource,
)
from trading_pipeline.settings import (
    BrokerConnectionSettings,
    BrokerName,
    TradingEnv,
    TradingSettings,
)

# Settings passed to StrategyResource under the same name.
STRATEGY_FIELDS = (
    "strategy",
    "label_horizon",
    "train_window_sessions",
    "champion_margin",
    "challenger_window_sessions",
    "challenger_min_sessions",
    "feature_set",
    "label_kind",
    "train_window_years",
    "sample_weight_halflife",
    "tune_lgbm",
    "signal_min_t_stat",
    "without_signal",
    "retrain_after_rollback",
    "portfolio_mode",
    "weighting",
    "top_k",
    "no_trade_band",
    "allow_fractional",
    "max_positions",
    "max_position_weight",
    "cash_reserve",
    "min_order_value",
    "max_gross_leverage",
    "max_orders_per_day",
    "max_position_var",
    "max_portfolio_var",
    "var_lookback",
    "stop_loss_percent",
    "trailing_stop",
    "max_daily_loss",
    "max_drawdown",
    "max_suspect_share",
    "flatten_on_kill_switch",
    "drift_window_sessions",
    "drift_column_threshold",
    "drift_warn_share",
    "drift_severe_share",
    "promotion_min_sessions",
    "promotion_min_filled_orders",
    "promotion_min_exposure_sessions",
    "promotion_max_rejected_share",
    "monitor_return_tolerance",
    "monitor_sharpe_drift",
    "monitor_drawdown_multiple",
    "monitor_drawdown_alert",
    "monitor_daily_loss_alert",
    "initial_cash",
    "slippage_bps",
    "commission_per_share",
    "commission_min",
    "decay_window_sessions",
    "decay_min_sessions",
    "decay_min_rank_ic",
)

BROKERS_BY_ENV = {
    TradingEnv.LOCAL: {BrokerName.SIMULATOR},
    TradingEnv.PAPER: {BrokerName.ALPACA, BrokerName.IBKR},
    TradingEnv.LIVE: {BrokerName.ALPACA, BrokerName.IBKR, BrokerName.ROBINHOOD},
}


class TradingEnvironmentError(ValueError):
    """Settings that do not describe a usable environment; the message says what to set."""


def check_environment(settings: TradingSettings) -> BrokerName:
    env = settings.env
    if settings.broker is None:
        if env is TradingEnv.LOCAL:
            return BrokerName.SIMULATOR
        choices = " or ".join(sorted(b.value for b in BROKERS_BY_ENV[env]))
        raise TradingEnvironmentError(
            f"TRADING_ENV={env} needs a broker: set TRADING_BROKER={choices} "
            "(and its credentials, listed in .env.example)"
        )
    broker = settings.broker
    if broker is BrokerName.ROBINHOOD:
        from trading_pipeline.brokers.robinhood import RobinhoodModeError, ensure_environment_allowed

        try:
            ensure_environment_allowed(env.value)
        except RobinhoodModeError as refused:
            raise TradingEnvironmentError(str(refused)) from None
    if broker not in BROKERS_BY_ENV[env]:
        allowed = ", ".join(sorted(b.value for b in BROKERS_BY_ENV[env]))
        raise TradingEnvironmentError(f"TRADING_BROKER={broker} is not available with TRADING_ENV={env}: use {allowed}")
    return broker


def broker_resource(settings: TradingSettings, broker: BrokerName,
                    connection: BrokerConnectionSettings) -> BrokerResource:
    """Credentials are `EnvVar`s: a missing one fails the run at launch, naming the variable."""
    if broker is BrokerName.ALPACA:
        return AlpacaBrokerResource(
            api_key_id=dg.EnvVar("APCA_API_KEY_ID"),
            api_secret_key=dg.EnvVar("APCA_API_SECRET_KEY"),
            paper=settings.env is not TradingEnv.LIVE,
            base_url=connection.apca_api_base_url,
        )
    if broker is BrokerName.IBKR:
        return IbkrBrokerResource(
            trading_env=settings.env.value,
            host=connection.ibkr_host,
            port=connection.ibkr_port,
            client_id=connection.ibkr_client_id,
            gateway=connection.ibkr_gateway,
            account=dg.EnvVar("IBKR_ACCOUNT") if os.environ.get("IBKR_ACCOUNT") else None,
        )
    if broker is BrokerName.ROBINHOOD:
        return RobinhoodBrokerResource(
            username=dg.EnvVar("ROBINHOOD_USERNAME"),
            password=dg.EnvVar("ROBINHOOD_PASSWORD"),
            totp_secret=dg.EnvVar("ROBINHOOD_TOTP_SECRET"),
            session_dir=str(settings.home / "robinhood"),
        )
    return SimulatorBrokerResource(
        initial_cash=settings.initial_cash,
        slippage_bps=settings.slippage_bps,
        commission_per_share=settings.commission_per_share,
        commission_min=settings.commission_min,
    )


def alerts_resource(settings: TradingSettings) -> AlertsResource:
    """The webhook URL and SMTP password are `EnvVar`s, like broker credentials: out of the UI."""
    return AlertsResource(
        webhook_url=dg.EnvVar("TRADING_ALERT_WEBHOOK_URL") if settings.alert_webhook_url else None,
        smtp_host=settings.alert_smtp_host,
        smtp_port=settings.alert_smtp_port,
        smtp_starttls=settings.alert_smtp_starttls,
        smtp_user=settings.alert_smtp_user,
        smtp_password=dg.EnvVar("TRADING_ALERT_SMTP_PASSWORD") if settings.alert_smtp_password else None,
        email_from=settings.alert_email_from,
        email_to=list(parse_addresses(settings.alert_email_to)),
        min_severity=settings.alert_min_severity.value,
        timeout_seconds=settings.alert_timeout_seconds,
        strategy=settings.strategy,
        trading_env=settings.env.value,
    )


def resources_for(settings: TradingSettings,
                  connection: BrokerConnectionSettings | None = None) -> dict[str, object]:
    broker = check_environment(settings)
    connection = connection or BrokerConnectionSettings()
    venue = broker_resource(settings, broker, connection)
    return {
        "warehouse": WarehouseResource(path=str(settings.resolved_warehouse_path)),
        "market": MarketDataResource(
            source=settings.data_source.value,
            seed=settings.market_seed,
            universe_size=settings.universe_size,
            regime_shift_date=settings.regime_shift_date.isoformat() if settings.regime_shift_date else None,
            data_path=str(settings.data_path) if settings.data_path else None,
            history_start=settings.history_start.isoformat(),
            symbol_pattern=settings.symbol_pattern,
            warehouse_path=str(settings.resolved_warehouse_path),
        ),
        "model_store": ModelStoreResource(
            tracking_uri=settings.resolved_mlflow_uri,
            model_name=settings.model_name,
            artifact_root=str(settings.mlflow_artifact_root),
        ),
        "strategy": StrategyResource(
            trading_env=settings.env.value,
            live_enabled=settings.live_enabled,
            dry_run=settings.resolved_dry_run,
            auto_rollback=settings.resolved_auto_rollback,
            reports_dir=str(settings.reports_dir),
            **{name: getattr(settings, name) for name in STRATEGY_FIELDS},
        ),
        "broker": venue,
        "account_lock": AccountLockResource(lock_dir=str(settings.home / "locks"), account=venue.venue,
                                            wait_seconds=settings.account_lock_wait_seconds,
                                            warehouse_path=str(settings.resolved_warehouse_path),
                                            strategy=settings.strategy),
        "alerts": alerts_resource(settings),
    }
