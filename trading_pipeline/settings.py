"""Every non-secret setting, read from environment variables (and a `.env` file) in one place.

Settings are read when resources and definitions are built, never at import time, so tests
can build definitions for any environment without reloading modules. Credentials are not
settings: broker resources read them through Dagster `EnvVar` so they stay out of the UI.
"""

from __future__ import annotations

import os
import re
from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trading_pipeline.alerts.alert import Severity
from trading_pipeline.alerts.smtp import parse_addresses


class TradingEnv(StrEnum):
    LOCAL = "local"
    PAPER = "paper"
    LIVE = "live"


class BrokerName(StrEnum):
    SIMULATOR = "simulator"
    ALPACA = "alpaca"
    IBKR = "ibkr"
    ROBINHOOD = "robinhood"


class DataSource(StrEnum):
    SYNTHETIC = "synthetic"
    FILES = "files"


def default_home() -> Path:
    """Where runtime state goes unless TRADING_HOME says otherwise: DAGSTER_HOME."""
    return Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()


class BrokerConnectionSettings(BaseSettings):
    """Non-secret connection settings under each SDK's usual names. Credentials are not
    here: resources read them through Dagster `EnvVar`, which keeps them out of the UI."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    apca_api_base_url: str | None = None
    ibkr_host: str | None = None
    ibkr_port: str | None = None
    ibkr_client_id: str | None = None
    ibkr_gateway: str | None = None


class TradingSettings(BaseSettings):
    """`TRADING_*` variables; see `.env.example` for each one's meaning and default."""

    model_config = SettingsConfigDict(
        env_prefix="TRADING_", env_file=".env", extra="ignore", frozen=True,
        env_ignore_empty=True,  # an empty line copied from .env.example means "the default"
        hide_input_in_errors=True,  # the input holds secrets (the alert webhook URL, SMTP password)
    )

    env: TradingEnv = TradingEnv.LOCAL
    broker: BrokerName | None = None  # None: the simulator in local, required in paper/live
    strategy: str = "daily_ml"
    live_enabled: bool = False  # the human key for live trading
    dry_run: bool | None = None  # None: on in live, off elsewhere

    # where state lives (default: under DAGSTER_HOME)
    home: Path = Field(default_factory=default_home)
    warehouse_path: Path | None = None
    mlflow_tracking_uri: str | None = None

    # market data
    data_source: DataSource = DataSource.SYNTHETIC
    data_path: Path | None = None
    # what a symbol from a data file must look like (a regular expression matched in full)
    symbol_pattern: str = r"^[A-Z][A-Z0-9.\-]{0,14}$"
    universe_size: int = Field(default=50, ge=2, le=5000)
    market_seed: int = 7
    regime_shift_date: date | None = None
    history_start: date = date(2020, 1, 2)
    # the first session that can be traded (the first Dagster partition); history before it
    # feeds features and models
    first_session: date = date(2022, 1, 3)
    # a second run of the same account waits this long for the first, then fails with a message
    account_lock_wait_seconds: float = Field(default=300.0, ge=0)

    # model
    model_name: str = "daily_ml_lgbm"
    label_horizon: int = Field(default=5, ge=1, le=60)
    train_window_sessions: int = Field(default=500, ge=60)
    # a new version becomes champion only by beating it on the same recent out-of-sample sessions
    champion_margin: float = Field(default=0.005, ge=0)  # in mean daily rank IC
    challenger_window_sessions: int = Field(default=60, ge=5)
    challenger_min_sessions: int = Field(default=20, ge=1)
    # features and labels (domain/factors, domain/labels) and how models are trained
    feature_set: str = Field(default="small", pattern="^(small|alpha)$")
    label_kind: str = Field(default="rank", pattern="^(rank|excess|excess_vol)$")
    train_window_years: float | None = Field(default=None, gt=0)  # wins over train_window_sessions
    sample_weight_halflife: int | None = Field(default=None, ge=1)  # sessions
    tune_lgbm: bool = False
    # the signal gate: out-of-sample rank IC against a shuffled-label control (t-statistic)
    signal_min_t_stat: float = Field(default=2.0, ge=0)
    without_signal: str = Field(default="trade", pattern="^(trade|hold_cash)$")
    retrain_after_rollback: bool = False

    # portfolio construction
    initial_cash: float = Field(default=100_000.0, gt=0)
    portfolio_mode: str = Field(default="long_only", pattern="^(long_only|long_short)$")
    weighting: str = Field(default="equal", pattern="^(equal|score)$")
    top_k: int = Field(default=10, ge=1)
    no_trade_band: float = Field(default=0.02, ge=0, lt=1)
    allow_fractional: bool = False

    # risk limits (fixed for the length of a run)
    max_positions: int = Field(default=20, ge=1)
    max_position_weight: float = Field(default=0.10, gt=0, le=1)
    cash_reserve: float = Field(default=0.05, ge=0, lt=1)
    min_order_value: float = Field(default=100.0, ge=0)
    max_gross_leverage: float = Field(default=1.0, gt=0)
    max_orders_per_day: int = Field(default=100, ge=1)
    max_position_var: float = Field(default=0.005, gt=0, le=1)
    max_portfolio_var: float = Field(default=0.02, gt=0, le=1)
    var_lookback: int = Field(default=252, ge=20)
    stop_loss_percent: float = Field(default=0.05, gt=0, lt=1)
    trailing_stop: bool = False
    max_daily_loss: float = Field(default=0.05, gt=0, lt=1)
    max_drawdown: float = Field(default=0.25, gt=0, lt=1)
    # a session with more of its symbols quarantined than this stops before any order
    max_suspect_share: float = Field(default=0.2, gt=0, le=1)
    flatten_on_kill_switch: bool = False

    # the simulator
    slippage_bps: float = Field(default=5.0, ge=0)
    commission_per_share: float = Field(default=0.005, ge=0)
    commission_min: float = Field(default=1.0, ge=0)

    # drift and promotion
    drift_window_sessions: int = Field(default=20, ge=5)
    auto_rollback: bool | None = None  # None: on in local and paper, off in live
    drift_column_threshold: float = Field(default=1.0, gt=0)  # normalised Wasserstein per column
    drift_warn_share: float = Field(default=0.3, gt=0, le=1)
    drift_severe_share: float = Field(default=0.5, gt=0, le=1)
    promotion_min_sessions: int = Field(default=20, ge=1)
    promotion_min_filled_orders: int = Field(default=10, ge=1)
    promotion_min_exposure_sessions: int = Field(default=10, ge=1)
    promotion_max_rejected_share: float = Field(default=0.10, ge=0, lt=1)

    # live-vs-backtest monitor (alerts; more than one breach rejects a promotion)
    monitor_return_tolerance: float = Field(default=0.30, gt=0)
    monitor_sharpe_drift: float = Field(default=1.0, gt=0)
    monitor_drawdown_multiple: float = Field(default=1.5, gt=0)
    monitor_drawdown_alert: float = Field(default=0.15, gt=0, lt=1)
    monitor_daily_loss_alert: float = Field(default=0.03, gt=0, lt=1)

    # alerts: the log always; a webhook and/or e-mail when configured. The two secrets are here
    # only to know whether they are set: resources read them through Dagster `EnvVar`.
    alert_webhook_url: SecretStr | None = None
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_starttls: bool = True
    alert_smtp_user: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_email_from: str | None = None
    alert_email_to: str | None = None  # comma-separated
    alert_min_severity: Severity = Severity.WARNING  # for webhook and e-mail; the log gets all
    alert_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _check_alert_email(self) -> "TradingSettings":
        if self.alert_smtp_host:
            for name, value, meaning in (
                ("TRADING_ALERT_EMAIL_FROM", self.alert_email_from, "the sender address"),
                ("TRADING_ALERT_EMAIL_TO", self.alert_email_to, "comma-separated recipient addresses"),
            ):
                if not value:
                    raise ValueError(f"TRADING_ALERT_SMTP_HOST is set, so alert e-mail also needs {name}: {meaning}")
                try:
                    parse_addresses(value)
                except ValueError as malformed:
                    raise ValueError(f"{name}: {malformed}") from None
        if bool(self.alert_smtp_user) != bool(self.alert_smtp_password):
            raise ValueError("set both TRADING_ALERT_SMTP_USER and TRADING_ALERT_SMTP_PASSWORD "
                             "for an SMTP login, or neither")
        return self

    # performance decay: realised rank IC of the champion's past predictions (drift report)
    decay_window_sessions: int = Field(default=20, ge=1)
    decay_min_sessions: int = Field(default=10, ge=1)
    decay_min_rank_ic: float = Field(default=-0.15, ge=-1, le=1)

    @model_validator(mode="after")
    def _check_decay(self) -> "TradingSettings":
        if self.decay_min_sessions > self.decay_window_sessions:
            raise ValueError(
                "TRADING_DECAY_MIN_SESSIONS must not exceed TRADING_DECAY_WINDOW_SESSIONS"
            )
        return self

    @model_validator(mode="after")
    def _check_thresholds(self) -> "TradingSettings":
        if self.drift_warn_share > self.drift_severe_share:
            raise ValueError(
                "TRADING_DRIFT_WARN_SHARE must not exceed TRADING_DRIFT_SEVERE_SHARE"
            )
        if self.data_source is DataSource.FILES and self.data_path is None:
            raise ValueError(
                "TRADING_DATA_SOURCE=files needs TRADING_DATA_PATH: a folder of CSV or Parquet bars"
            )
        return self

    @model_validator(mode="after")
    def _check_symbol_pattern(self) -> "TradingSettings":
        try:
            re.compile(self.symbol_pattern)
        except re.error as error:
            raise ValueError(f"TRADING_SYMBOL_PATTERN is not a regular expression: {error}") from None
        return self

    @property
    def resolved_warehouse_path(self) -> Path:
        return self.warehouse_path or self.home / "warehouse.duckdb"

    @property
    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def resolved_broker(self) -> BrokerName:
        return self.broker or BrokerName.SIMULATOR

    @property
    def resolved_auto_rollback(self) -> bool:
        return self.env is not TradingEnv.LIVE if self.auto_rollback is None else self.auto_rollback

    @property
    def resolved_dry_run(self) -> bool:
        return self.env is TradingEnv.LIVE if self.dry_run is None else self.dry_run
