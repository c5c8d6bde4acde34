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
    DataSource,
    SettingsError,
    TradingEnv,
    TradingSettings,
)

BROKERS_BY_ENV = {
    TradingEnv.LOCAL: {BrokerName.SIMULATOR},
    TradingEnv.PAPER: {BrokerName.ALPACA, BrokerName.IBKR},
    TradingEnv.LIVE: {BrokerName.ALPACA, BrokerName.IBKR, BrokerName.ROBINHOOD},
}


class TradingEnvironmentError(SettingsError):
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
    return SimulatorBrokerResource(**settings.costs.model_dump())


def alerts_resource(settings: TradingSettings) -> AlertsResource:
    """The webhook URL and SMTP password are `EnvVar`s, like broker credentials: out of the UI."""
    alerts = settings.alerts
    return AlertsResource(
        webhook_url=dg.EnvVar("TRADING_ALERT_WEBHOOK_URL") if alerts.webhook_url else None,
        smtp_host=alerts.smtp_host,
        smtp_port=alerts.smtp_port,
        smtp_starttls=alerts.smtp_starttls,
        smtp_user=alerts.smtp_user,
        smtp_password=dg.EnvVar("TRADING_ALERT_SMTP_PASSWORD") if alerts.smtp_password else None,
        email_from=alerts.email_from,
        email_to=list(parse_addresses(alerts.email_to)),
        min_severity=alerts.min_severity.value,
        timeout_seconds=alerts.timeout_seconds,
        strategy=settings.strategy,
        trading_env=settings.env.value,
    )


def strategy_resource(settings: TradingSettings) -> StrategyResource:
    """The safety keys as resolved for the environment, and every strategy group as it is."""
    return StrategyResource(
        strategy=settings.strategy,
        trading_env=settings.env.value,
        live_enabled=settings.live_enabled,
        dry_run=settings.resolved_dry_run,
        auto_rollback=settings.resolved_auto_rollback,
        reports_dir=str(settings.reports_dir),
        **StrategyResource.groups_from(settings),
    )


def broker_data_fields(settings: TradingSettings, connection: BrokerConnectionSettings) -> dict[str, object]:
    """The market data resource's fields for a broker source; its keys are the broker's `EnvVar`s."""
    data = settings.data
    fields: dict[str, object] = {"universe": data.universe, "alpaca_feed": data.alpaca_data_feed}
    if data.data_source is DataSource.ALPACA:
        fields.update(alpaca_key_id=dg.EnvVar("APCA_API_KEY_ID"), alpaca_secret_key=dg.EnvVar("APCA_API_SECRET_KEY"),
                      alpaca_data_url=connection.apca_api_data_url)
    elif data.data_source is DataSource.IBKR:
        fields.update(ibkr_trading_env=settings.env.value, ibkr_host=connection.ibkr_host,
                      ibkr_port=connection.ibkr_port, ibkr_client_id=connection.ibkr_client_id,
                      ibkr_gateway=connection.ibkr_gateway)
    return fields


def resources_for(settings: TradingSettings,
                  connection: BrokerConnectionSettings | None = None) -> dict[str, object]:
    broker = check_environment(settings)
    connection = connection or BrokerConnectionSettings()
    venue = broker_resource(settings, broker, connection)
    data = settings.data
    return {
        "warehouse": WarehouseResource(path=str(settings.resolved_warehouse_path)),
        "market": MarketDataResource(
            source=data.data_source.value,
            seed=data.market_seed,
            universe_size=data.universe_size,
            regime_shift_date=data.regime_shift_date.isoformat() if data.regime_shift_date else None,
            data_path=str(data.data_path) if data.data_path else None,
            history_start=data.history_start.isoformat(),
            symbol_pattern=data.symbol_pattern,
            warehouse_path=str(settings.resolved_warehouse_path),
            **broker_data_fields(settings, connection),
        ),
        "model_store": ModelStoreResource(
            tracking_uri=settings.resolved_mlflow_uri,
            model_name=settings.model.model_name,
            artifact_root=str(settings.mlflow_artifact_root),
        ),
        "strategy": strategy_resource(settings),
        "broker": venue,
        "account_lock": AccountLockResource(lock_dir=str(settings.home / "locks"), account=venue.venue,
                                            wait_seconds=settings.account_lock_wait_seconds,
                                            warehouse_path=str(settings.resolved_warehouse_path),
                                            strategy=settings.strategy),
        "alerts": alerts_resource(settings),
    }
