"""Every non-secret setting, declared once: its type, default, bounds and meaning.

Settings come in groups by what they configure (risk, portfolio, drift, ...). Each group is a
frozen pydantic model whose fields are the declaration, and whose methods build the domain's
config objects from it (`RiskSettings.limits()` -> `RiskLimits`). `TradingSettings` composes the
groups and reads them from `TRADING_*` variables (and a `.env` file) under their flat names:
`TRADING_MAX_POSITION_WEIGHT` fills `risk.max_position_weight`, `TRADING_DRIFT_WARN_SHARE`
fills `drift.warn_share` (a group's `env_prefix` plus the field's name). Dagster resources
carry the same groups as nested config (`defs/resources.py`), `.env.example` and the README's
settings table are rendered from here (`python -m trading_pipeline.settings`).

This module imports neither dagster nor the domain at load time: the shell helpers read
settings without paying for either. Settings are read when resources and definitions are
built, never at import time. Credentials are not settings: broker resources read them
through Dagster `EnvVar` so they stay out of the UI.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from trading_pipeline.alerts.alert import Severity
from trading_pipeline.alerts.smtp import parse_addresses

ENV_PREFIX = "TRADING_"


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
    ALPACA = "alpaca"
    IBKR = "ibkr"


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each variable, the rule and what to do."""


def default_home() -> Path:
    """Where runtime state goes unless TRADING_HOME says otherwise: DAGSTER_HOME."""
    return Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()


class SettingsGroup(BaseModel):
    """One group of settings. A field's variable is TRADING_ + `env_prefix` + its name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env_prefix: ClassVar[str] = ""
    title: ClassVar[str] = ""  # the heading in .env.example and the README


# --- where state lives -----------------------------------------------------------------------

class LocationSettings(SettingsGroup):
    title: ClassVar[str] = "where state lives"

    home: Path = Field(default_factory=default_home, description=(
        "Folder for the warehouse, MLflow store, reports and locks (an absolute path). "
        "Empty: DAGSTER_HOME, which the Makefile sets to $PWD/dagster_home."))
    warehouse_path: Path | None = Field(default=None, description=(
        "DuckDB warehouse file. Empty: $TRADING_HOME/warehouse.duckdb."))
    mlflow_tracking_uri: str | None = Field(default=None, description=(
        "MLflow tracking URI. Empty: sqlite:///$TRADING_HOME/mlflow.db "
        "(artifacts in $TRADING_HOME/mlartifacts)."))
    mlflow_ui_url: str | None = Field(default=None, description=(
        "The MLflow UI that report links open. Empty: the tracking server itself, or "
        "http://127.0.0.1:5000 (`make mlflow`) for a local store."))
    live_env_file: Path = Field(default=Path(".env.live"), description=(
        "The settings file of the live code location (workspace.paper-live.yaml), read into its "
        "process only; it must say TRADING_ENV=live. Relative paths are from the working directory."))


# --- market data ---------------------------------------------------------------------------------

class DataSettings(SettingsGroup):
    title: ClassVar[str] = "market data"

    data_source: DataSource = Field(default=DataSource.SYNTHETIC, description=(
        "synthetic (a deterministic simulated market) | files (a folder of CSV/Parquet bars) | "
        "alpaca | ibkr (the broker's daily bars for TRADING_UNIVERSE, fetched incrementally)."))
    data_path: Path | None = Field(default=None, description=(
        "With files: the folder. Columns date, symbol, open, high, low, close, volume[, adj_close]."))
    symbol_pattern: str = Field(default=r"^[A-Z][A-Z0-9.\-]{0,14}$", description=(
        "With files: the regular expression a symbol (a symbol column's value, or the file "
        "name) must match in full."))
    universe_size: int = Field(default=50, ge=2, le=5000, description=(
        "Synthetic market: the number of symbols."))
    market_seed: int = Field(default=7, description="Synthetic market: the random seed.")
    regime_shift_date: date | None = Field(default=None, description=(
        "Synthetic market: a date from which its behaviour changes (to exercise drift). "
        "Empty: none."))
    history_start: date = Field(default=date(2020, 1, 2), description=(
        "First session of history loaded into the warehouse."))
    first_session: date = Field(default=date(2022, 1, 3), description=(
        "The first session that can be traded: the first partition in the UI (history before "
        "it feeds features and models)."))
    alpaca_data_feed: str = Field(default="iex", pattern="^(iex|sip)$", description=(
        "With alpaca: the data feed, iex (free plan) | sip (with a market data subscription)."))
    universe: str | None = Field(default=None, description=(
        "With alpaca or ibkr: the symbols to fetch and trade, a comma list (AAPL,MSFT,SPY) or "
        "@path to a file of symbols; each must match TRADING_SYMBOL_PATTERN."))

    @model_validator(mode="after")
    def _check(self) -> DataSettings:
        if self.data_source is DataSource.FILES and self.data_path is None:
            raise ValueError("TRADING_DATA_SOURCE=files needs TRADING_DATA_PATH: a folder of CSV or Parquet bars")
        if self.data_source in (DataSource.ALPACA, DataSource.IBKR) and not self.universe:
            raise ValueError(f"TRADING_DATA_SOURCE={self.data_source.value} needs TRADING_UNIVERSE: the symbols to "
                             "trade, a comma list (AAPL,MSFT,SPY) or @path to a file of symbols")
        try:
            re.compile(self.symbol_pattern)
        except re.error as error:
            raise ValueError(f"TRADING_SYMBOL_PATTERN is not a regular expression: {error}") from None
        return self


# --- model ---------------------------------------------------------------------------------------

class ModelSettings(SettingsGroup):
    title: ClassVar[str] = "model: features, labels, training, champion and challenger"

    model_name: str = Field(default="daily_ml_lgbm", description="The model's name in the MLflow registry.")
    label_horizon: int = Field(default=5, ge=1, le=60, description=(
        "Label: the forward return over this many sessions."))
    train_window_sessions: int = Field(default=500, ge=60, description=(
        "Sessions of history in each training window."))
    champion_margin: float = Field(default=0.005, ge=0, description=(
        "A new version (alias challenger) becomes champion only if its mean daily rank IC beats "
        "the champion's by more than this, both out of sample on the same recent sessions."))
    challenger_window_sessions: int = Field(default=60, ge=5, description=(
        "Those sessions: the last this many both versions have out-of-sample scores for..."))
    challenger_min_sessions: int = Field(default=20, ge=1, description=(
        "...and at least this many of them, or the champion stays."))
    feature_set: str = Field(default="small", pattern="^(small|alpha)$", description=(
        "small (15: returns, volatility, volume, range, ranks) | alpha (those and about 100 "
        "Alpha158-style factors)."))
    label_kind: str = Field(default="rank", pattern="^(rank|excess|excess_vol)$", description=(
        "What the model learns: rank (percentile of the forward return in its session) | excess "
        "(minus the session's mean) | excess_vol (that excess over the symbol's 20-session volatility)."))
    train_window_years: float | None = Field(default=None, gt=0, description=(
        "Training window in years (252 sessions each); when set it wins over "
        "TRADING_TRAIN_WINDOW_SESSIONS."))
    sample_weight_halflife: int | None = Field(default=None, ge=1, description=(
        "Weigh recent training rows more: a row's weight halves every this many sessions. "
        "Empty: equal weights."))
    tune_lgbm: bool = Field(default=False, description=(
        "Choose LightGBM's parameters among a few candidates on the training folds only (slower)."))
    ensemble_seeds: int = Field(default=1, ge=1, le=20, description=(
        "Each LightGBM (folds, control, final) is the mean within-session rank of this many "
        "models that differ only in seed; 1: a single model. Costs that many times the fits."))
    signal_min_t_stat: float = Field(default=2.0, ge=0, description=(
        "Signal gate: a version becomes champion (and is promoted) only if its out-of-sample daily "
        "rank IC beats a shuffled-label control with at least this t-statistic (Newey-West)."))
    without_signal: str = Field(default="hold_cash", pattern="^(trade|hold_cash)$", description=(
        "With no champion, a first version that fails the gate: hold_cash (no champion, nor a "
        "champion that failed the gate, is traded: nothing is scored or bought, and what the "
        "account holds is sold) | trade (champion anyway, marked, never promoted)."))
    retrain_after_rollback: bool = Field(default=False, description=(
        "After a drift rollback, also request a training run (the new version must still beat "
        "the champion)."))
    signal_controls: int = Field(default=1, ge=1, le=20, description=(
        "Signal gate: shuffled-label controls per version, each its own shuffle and seeds; the "
        "model faces their mean, and from 2 on the t-statistic's error is at least what their "
        "spread says. Each is one more LightGBM fit per fold."))
    signal_random_scorers: int = Field(default=200, ge=0, le=2000, description=(
        "Signal gate: the model's rank IC must also reach the t-statistic over the spread of this "
        "many random no-skill scorers (random linear combinations of the features' within-session "
        "ranks, no fit) on the same sessions: what a factor lean reaches there. 0: off (the gate "
        "against the controls alone); 1 is refused."))
    training_workers: int = Field(default=2, ge=1, le=32, description=(
        "Training fits its walk-forward folds, final model and the gate's random scorers this "
        "many at once, on threads (each LightGBM on one thread): the same models whatever the "
        "number; less wall time where a core is free (2 on an idle 2-core machine: 1.65x); "
        "about a fold's feature matrix more memory each. 1 on a one-core machine."))

    def selection_rules(self):
        from trading_pipeline.domain.model import SelectionRules

        return SelectionRules(window=self.challenger_window_sessions, margin=self.champion_margin,
                              min_sessions=self.challenger_min_sessions)

    def training_options(self):
        from trading_pipeline.domain.model.signal import SignalRules
        from trading_pipeline.domain.model.training import TrainingOptions

        return TrainingOptions(
            feature_set=self.feature_set, label_kind=self.label_kind, window_years=self.train_window_years,
            sample_weight_halflife=self.sample_weight_halflife, tune=self.tune_lgbm,
            ensemble_seeds=self.ensemble_seeds, signal=SignalRules(
                min_t_stat=self.signal_min_t_stat, controls=self.signal_controls,
                random_scorers=self.signal_random_scorers), without_signal=self.without_signal,
            workers=self.training_workers)


# --- portfolio construction ------------------------------------------------------------------------

class PortfolioSettings(SettingsGroup):
    title: ClassVar[str] = "portfolio construction"

    portfolio_mode: str = Field(default="long_only", pattern="^(long_only|long_short)$", description=(
        "long_only (the top k) | long_short (top k long, bottom k short, dollar-neutral)."))
    weighting: str = Field(default="equal", pattern="^(equal|score)$", description=(
        "equal | score (proportional to the score's distance from the median)."))
    top_k: int = Field(default=10, ge=1, description="Names held (per side in long_short).")
    no_trade_band: float = Field(default=0.02, ge=0, lt=1, description=(
        "Keep a holding unchanged when its target weight moves less than this (limits turnover)."))
    allow_fractional: bool = Field(default=False, description="Order fractional shares.")

    def construction(self, limits):
        from trading_pipeline.domain.risk import ConstructionConfig

        return ConstructionConfig(mode=self.portfolio_mode, weighting=self.weighting, top_k=self.top_k,
                                  no_trade_band=self.no_trade_band, allow_fractional=self.allow_fractional,
                                  limits=limits)


# --- risk limits ---------------------------------------------------------------------------------

class RiskSettings(SettingsGroup):
    title: ClassVar[str] = "risk limits (fixed for the length of a run)"

    max_positions: int = Field(default=20, ge=1, description="Most positions held at once.")
    max_position_weight: float = Field(default=0.10, gt=0, le=1, description=(
        "Largest weight of one position, as a fraction of equity."))
    cash_reserve: float = Field(default=0.05, ge=0, lt=1, description=(
        "Share of equity kept in cash."))
    min_order_value: float = Field(default=100.0, ge=0, description=(
        "Smallest order worth sending, in dollars (a full exit is exempt)."))
    max_gross_leverage: float = Field(default=1.0, gt=0, le=10, description=(
        "Largest sum of |weights|."))
    max_orders_per_day: int = Field(default=100, ge=1, description="Most orders one session may send.")
    max_position_var: float = Field(default=0.005, gt=0, le=1, description=(
        "Largest 1-day historical VaR (95 %) of one position, as a fraction of equity."))
    max_portfolio_var: float = Field(default=0.02, gt=0, le=1, description=(
        "Largest 1-day historical VaR (95 %) of the portfolio, as a fraction of equity."))
    var_lookback: int = Field(default=252, ge=20, description="Sessions of returns behind the VaR.")
    max_suspect_share: float = Field(default=0.2, gt=0, le=1, description=(
        "A session with more than this share of its symbols quarantined (suspect bars, see README "
        "Data quality) stops before any order."))

    def limits(self):
        from trading_pipeline.domain.risk import RiskLimits

        return RiskLimits(
            max_positions=self.max_positions, max_position_weight=self.max_position_weight,
            min_order_value=self.min_order_value, cash_reserve=self.cash_reserve,
            max_gross_leverage=self.max_gross_leverage, max_orders_per_day=self.max_orders_per_day,
            max_position_var=self.max_position_var, max_portfolio_var=self.max_portfolio_var,
            var_lookback=self.var_lookback)


class StopSettings(SettingsGroup):
    title: ClassVar[str] = "protective stops"

    stop_loss_percent: float = Field(default=0.05, gt=0, lt=1, description=(
        "Protective sell stop this far below each long's entry (0.05 means 5 %)."))
    trailing_stop: bool = Field(default=False, description=(
        "A trailing stop by the same percentage instead of a fixed one."))

    def policy(self):
        from trading_pipeline.domain.risk import StopPolicy

        return StopPolicy(stop_percent=self.stop_loss_percent, trailing=self.trailing_stop)


class KillSwitchSettings(SettingsGroup):
    title: ClassVar[str] = "kill switch"

    max_daily_loss: float = Field(default=0.05, gt=0, lt=1, description=(
        "A session's loss beyond this fraction of equity engages the kill switch."))
    max_drawdown: float = Field(default=0.25, gt=0, lt=1, description=(
        "A drawdown from the equity high beyond this engages the kill switch."))
    flatten_on_kill_switch: bool = Field(default=False, description=(
        "Also close every position when the kill switch engages."))

    def rules(self):
        from trading_pipeline.domain.risk import KillSwitchRules

        return KillSwitchRules(max_daily_loss=self.max_daily_loss, max_drawdown=self.max_drawdown)


class CostSettings(SettingsGroup):
    title: ClassVar[str] = "the simulated account: starting cash and execution costs"

    initial_cash: float = Field(default=100_000.0, gt=0, description=(
        "Cash of a new simulator account and of backtests."))
    slippage_bps: float = Field(default=5.0, ge=0, description=(
        "Market and stop fills: buys pay, sells lose, this many basis points."))
    commission_per_share: float = Field(default=0.005, ge=0, description="Commission per share, dollars.")
    commission_min: float = Field(default=1.0, ge=0, description="Least commission per fill, dollars.")

    def execution(self, portfolio: PortfolioSettings):
        """The cost model backtests assume: the paper simulator's rules with these costs."""
        from trading_pipeline.domain.execution import ExecutionConfig

        return ExecutionConfig(slippage_bps=self.slippage_bps, commission_per_share=self.commission_per_share,
                               commission_min=self.commission_min, allow_fractional=portfolio.allow_fractional,
                               allow_short=portfolio.portfolio_mode == "long_short")


# --- drift, decay, promotion, monitor ------------------------------------------------------------

class DriftSettings(SettingsGroup):
    env_prefix: ClassVar[str] = "drift_"
    title: ClassVar[str] = "drift"

    window_sessions: int = Field(default=20, ge=5, description=(
        "Recent sessions of features and predictions compared with the champion's training reference."))
    column_threshold: float = Field(default=1.0, gt=0, description=(
        "A column drifts when its distribution moved this far (normalised Wasserstein distance, "
        "in reference standard deviations)."))
    warn_share: float = Field(default=0.3, gt=0, le=1, description="Share of drifted columns for severity warn.")
    severe_share: float = Field(default=0.5, gt=0, le=1, description=(
        "Share of drifted columns for severity severe."))

    @model_validator(mode="after")
    def _check(self) -> DriftSettings:
        if self.warn_share > self.severe_share:
            raise ValueError("TRADING_DRIFT_WARN_SHARE must not exceed TRADING_DRIFT_SEVERE_SHARE")
        return self


class DecaySettings(SettingsGroup):
    env_prefix: ClassVar[str] = "decay_"
    title: ClassVar[str] = "performance decay (part of the drift report)"

    window_sessions: int = Field(default=20, ge=1, description=(
        "The champion's daily rank IC against the returns that followed, averaged over the last "
        "this many sessions whose returns are known."))
    min_sessions: int = Field(default=10, ge=1, description=(
        "Judged only once at least this many sessions of the champion's own predictions count."))
    min_rank_ic: float = Field(default=-0.15, ge=-1, le=1, description=(
        "Below this the report is severe. With 50 symbols a 20-session mean is noisy: it fell to "
        "-0.13 on the calm synthetic market for models whose long-run IC is +0.03."))

    @model_validator(mode="after")
    def _check(self) -> DecaySettings:
        if self.min_sessions > self.window_sessions:
            raise ValueError("TRADING_DECAY_MIN_SESSIONS must not exceed TRADING_DECAY_WINDOW_SESSIONS")
        return self

    def policy(self):
        from trading_pipeline.domain.decay import DecayPolicy

        return DecayPolicy(window=self.window_sessions, min_sessions=self.min_sessions,
                           min_rank_ic=self.min_rank_ic)


class PromotionSettings(SettingsGroup):
    env_prefix: ClassVar[str] = "promotion_"
    title: ClassVar[str] = "promotion to the next stage"

    min_sessions: int = Field(default=20, ge=1, description="Sessions at a stage before the sensor decides.")
    min_filled_orders: int = Field(default=10, ge=1, description=(
        "Evidence that the strategy traded, or no approval: orders filled..."))
    min_exposure_sessions: int = Field(default=10, ge=1, description="...sessions ending with a position held...")
    max_rejected_share: float = Field(default=0.10, ge=0, lt=1, description=(
        "...and the largest share of sent orders the broker may reject."))

    def gates(self):
        from trading_pipeline.domain.promotion import PromotionGates

        return PromotionGates(min_sessions=self.min_sessions, min_filled_orders=self.min_filled_orders,
                              min_exposure_sessions=self.min_exposure_sessions,
                              max_rejected_share=self.max_rejected_share)


class MonitorSettings(SettingsGroup):
    env_prefix: ClassVar[str] = "monitor_"
    title: ClassVar[str] = "live-vs-backtest monitor (an alert per breach; more than one rejects a promotion)"

    return_tolerance: float = Field(default=0.30, gt=0, description=(
        "Alert when the return differs from the backtest's on the same predictions by more than "
        "this share of it (at least of 1 % of equity)."))
    sharpe_drift: float = Field(default=1.0, gt=0, description=(
        "Alert when the annualised Sharpe falls short of the backtest's by more than this."))
    drawdown_multiple: float = Field(default=1.5, gt=0, description=(
        "Alert when the drawdown exceeds this multiple of the version's backtest drawdown."))
    drawdown_alert: float = Field(default=0.15, gt=0, lt=1, description="Alert beyond this drawdown.")
    daily_loss_alert: float = Field(default=0.03, gt=0, lt=1, description=(
        "Alert when one session loses more than this."))

    def thresholds(self):
        from trading_pipeline.domain.monitor import MonitorThresholds

        return MonitorThresholds(
            return_tolerance=self.return_tolerance, sharpe_drift=self.sharpe_drift,
            drawdown_multiple=self.drawdown_multiple, drawdown_alert=self.drawdown_alert,
            daily_loss_alert=self.daily_loss_alert)


# --- alerts --------------------------------------------------------------------------------------

class AlertSettings(SettingsGroup):
    """The two secrets are here only to know whether they are set: resources read them through
    Dagster `EnvVar`, so they stay out of the UI."""

    env_prefix: ClassVar[str] = "alert_"
    title: ClassVar[str] = "alerts (the log always; a webhook and/or e-mail when configured)"

    webhook_url: SecretStr | None = Field(default=None, description=(
        "Slack, Teams, Mattermost or any HTTP receiver (JSON POST). A secret: it holds the token."))
    smtp_host: str | None = Field(default=None, description=(
        "An SMTP host turns e-mail on; it then needs a sender and recipients."))
    smtp_port: int = Field(default=587, ge=1, le=65535, description="The SMTP port.")
    smtp_starttls: bool = Field(default=True, description=(
        "STARTTLS; off only for a relay on a trusted network."))
    smtp_user: str | None = Field(default=None, description="SMTP login (with the password, or neither).")
    smtp_password: SecretStr | None = Field(default=None, description=(
        "SMTP password. A secret: keep it out of files you share."))
    email_from: str | None = Field(default=None, description="The sender address.")
    email_to: str | None = Field(default=None, description="Comma-separated recipient addresses.")
    min_severity: Severity = Field(default=Severity.WARNING, description=(
        "info | warning | critical: the least severe alert sent to the webhook and e-mail "
        "(the log gets all)."))
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description=(
        "Bound on each webhook request and SMTP conversation."))

    @model_validator(mode="after")
    def _check_email(self) -> AlertSettings:
        if self.smtp_host:
            for name, value, meaning in (
                ("TRADING_ALERT_EMAIL_FROM", self.email_from, "the sender address"),
                ("TRADING_ALERT_EMAIL_TO", self.email_to, "comma-separated recipient addresses"),
            ):
                if not value:
                    raise ValueError(f"TRADING_ALERT_SMTP_HOST is set, so alert e-mail also needs {name}: {meaning}")
                try:
                    parse_addresses(value)
                except ValueError as malformed:
                    raise ValueError(f"{name}: {malformed}") from None
        if bool(self.smtp_user) != bool(self.smtp_password):
            raise ValueError("set both TRADING_ALERT_SMTP_USER and TRADING_ALERT_SMTP_PASSWORD "
                             "for an SMTP login, or neither")
        return self


class BrokerConnectionSettings(BaseSettings):
    """Non-secret connection settings under each SDK's usual names. Credentials are not
    here: resources read them through Dagster `EnvVar`, which keeps them out of the UI."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    apca_api_base_url: str | None = None
    apca_api_data_url: str | None = None  # Alpaca market data endpoint override (a proxy, a local fake)
    ibkr_host: str | None = None
    ibkr_port: str | None = None
    ibkr_client_id: str | None = None
    ibkr_gateway: str | None = None


class _GroupedVariables(PydanticBaseSettingsSource):
    """What another source (the environment, or the .env file) holds, with each group's fields
    from their flat variables: TRADING_DRIFT_WARN_SHARE -> drift.warn_share."""

    def __init__(self, settings_cls: type[BaseSettings], loaded: EnvSettingsSource):
        super().__init__(settings_cls)
        self._loaded = loaded

    def get_field_value(self, field, field_name):  # unused: __call__ reads the groups at once
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        flat_names = grouped_fields(self.settings_cls)
        # the .env source passes unknown TRADING_* names on as extras: the groups take those
        found: dict[str, Any] = {k: v for k, v in self._loaded().items() if k not in flat_names}
        for flat, (group, name) in flat_names.items():
            value = self._loaded.env_vars.get(f"{ENV_PREFIX}{flat}".lower())
            if value:  # empty: the default, as for the flat settings (env_ignore_empty)
                found.setdefault(group, {})[name] = value
        return found


class TradingSettings(BaseSettings):
    """Every `TRADING_*` variable: the run's safety keys here, everything else in its group."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True,
        env_ignore_empty=True,  # an empty line copied from .env.example means "the default"
        hide_input_in_errors=True,  # the input holds secrets (the alert webhook URL, SMTP password)
    )
    title: ClassVar[str] = "environment and safety keys"

    env: TradingEnv = Field(default=TradingEnv.LOCAL, description=(
        "local (built-in paper simulator, needs nothing) | paper (a broker's paper account) | "
        "live (real money)."))
    broker: BrokerName | None = Field(default=None, description=(
        "simulator (local) | alpaca, ibkr (paper) | alpaca, ibkr, robinhood (live). "
        "Empty: the simulator in local."))
    strategy: str = Field(default="daily_ml", description=(
        "Name of the strategy; part of every client order id."))
    live_enabled: bool = Field(default=False, description=(
        "The human key for live trading: live sends orders only with this true, an approved "
        "promotion on record, the kill switch released and dry-run off."))
    dry_run: bool | None = Field(default=None, description=(
        "Decide and record orders without sending them. Empty: on in live, off elsewhere."))
    auto_rollback: bool | None = Field(default=None, description=(
        "Roll the champion back on severe drift. Empty: on in local and paper, off (alert only) in live."))
    account_lock_wait_seconds: float = Field(default=300.0, ge=0, description=(
        "A second run of the same account waits this long for the first, then fails with a message."))

    # each group built when settings are read (the home's default follows DAGSTER_HOME then)
    locations: LocationSettings = Field(default_factory=LocationSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    stops: StopSettings = Field(default_factory=StopSettings)
    kill_switch: KillSwitchSettings = Field(default_factory=KillSwitchSettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    decay: DecaySettings = Field(default_factory=DecaySettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as invalid:
            raise SettingsError(explain(invalid, type(self))) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Earlier sources win: keyword arguments, then the environment, then the .env file.
        return (init_settings, _GroupedVariables(settings_cls, env_settings),
                _GroupedVariables(settings_cls, dotenv_settings), file_secret_settings)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, values: Any) -> Any:
        """Keyword arguments may use the flat names too: TradingSettings(top_k=4)."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for flat, (group, name) in grouped_fields(cls).items():
            if flat in values:
                section = values.get(group) or {}
                if isinstance(section, BaseModel):
                    section = section.model_dump(exclude_unset=True)
                values[group] = {**section, name: values.pop(flat)}
        return values

    @property
    def resolved_warehouse_path(self) -> Path:
        return self.locations.warehouse_path or self.locations.home / "warehouse.duckdb"

    @property
    def resolved_mlflow_uri(self) -> str:
        return self.locations.mlflow_tracking_uri or f"sqlite:///{self.locations.home / 'mlflow.db'}"

    @property
    def home(self) -> Path:
        return self.locations.home

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.locations.home / "mlartifacts"

    @property
    def reports_dir(self) -> Path:
        return self.locations.home / "reports"

    @property
    def resolved_broker(self) -> BrokerName:
        return self.broker or BrokerName.SIMULATOR

    @property
    def resolved_auto_rollback(self) -> bool:
        return self.env is not TradingEnv.LIVE if self.auto_rollback is None else self.auto_rollback

    @property
    def resolved_dry_run(self) -> bool:
        return self.env is TradingEnv.LIVE if self.dry_run is None else self.dry_run


# --- the declaration, read back: names, errors, .env.example and the README table -----------------

@cache
def groups(settings_cls: type[BaseModel] = TradingSettings) -> dict[str, type[SettingsGroup]]:
    """Field name -> group type, in declaration order."""
    return {name: field.annotation for name, field in settings_cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, SettingsGroup)}


@cache
def grouped_fields(settings_cls: type[BaseModel] = TradingSettings) -> dict[str, tuple[str, str]]:
    """Flat name (the variable without TRADING_, lower case) -> (group, field)."""
    return {f"{group_type.env_prefix}{name}": (group, name)
            for group, group_type in groups(settings_cls).items() for name in group_type.model_fields}


def variable_name(loc: tuple, settings_cls: type[BaseModel] = TradingSettings) -> str | None:
    """The variable behind a validation error's location: ("risk", "top_k") -> TRADING_TOP_K."""
    if not loc or not isinstance(loc[0], str):
        return None
    group_type = groups(settings_cls).get(loc[0])
    if group_type is None:
        return f"{ENV_PREFIX}{loc[0]}".upper()
    if len(loc) < 2 or not isinstance(loc[1], str):
        return None
    return f"{ENV_PREFIX}{group_type.env_prefix}{loc[1]}".upper()


def _declared(settings_cls: type[BaseModel], loc: tuple):
    group_type = groups(settings_cls).get(loc[0]) if loc else None
    if group_type is not None and len(loc) > 1:
        return group_type.model_fields.get(loc[1])
    return settings_cls.model_fields.get(loc[0]) if loc else None


def explain(invalid: ValidationError, settings_cls: type[BaseModel] = TradingSettings) -> str:
    """One line per problem: the variable, what is wrong (the bound), and what to do. A value
    is repeated only for fields that are not secret."""
    lines = []
    for error in invalid.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        name = variable_name(loc, settings_cls)
        message = error["msg"].removeprefix("Value error, ")
        if name is None:  # a rule across several settings: its message names them
            lines.append(f"- {message}")
            continue
        field = _declared(settings_cls, loc)
        secret = field is not None and "SecretStr" in str(field.annotation)
        default = None if field is None or field.default_factory else field.default
        shown = "" if secret else _given(invalid, loc)
        meaning = f" ({field.description.rstrip('.')})" if field is not None and field.description else ""
        fix = ("unset it for the default" if default is None
               else f"unset it for the default {_as_text(default)}")
        lines.append(f"- {name}{shown}: {message}{meaning}. Fix it in the environment or .env, or {fix}.")
    return "invalid settings:\n" + "\n".join(lines)


def _given(invalid: ValidationError, loc: tuple) -> str:
    for error in invalid.errors(include_url=False):
        if tuple(error["loc"]) == loc and isinstance(error.get("input"), (str, int, float, bool)):
            return f"={error['input']}"
    return ""


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _bounds(field) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = []
    for rule in field.metadata:
        for key, sign in words.items():
            if getattr(rule, key, None) is not None:
                parts.append(f"{sign} {getattr(rule, key)}")
        if getattr(rule, "pattern", None):
            parts.append(rule.pattern.strip("^$()").replace("|", " | "))
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    """A setting's type as a reader says it: choices for an enumeration, "optional" for None."""
    if get_origin(annotation) in (Union, UnionType):
        kinds = [_type_name(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " | ".join(kinds) + (", optional" if type(None) in get_args(annotation) else "")
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return " | ".join(member.value for member in annotation)
    return {SecretStr: "secret", Path: "path"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def declared_settings() -> Iterator[tuple[str, str, str, str, str, str]]:
    """(section title, variable, type, default, bounds, meaning) for every setting, in order."""
    sections = [(TradingSettings.title, "", {n: f for n, f in TradingSettings.model_fields.items()
                                             if n not in groups()})]
    sections += [(t.title, t.env_prefix, t.model_fields) for t in groups().values()]
    for title, prefix, fields in sections:
        for name, field in fields.items():
            default = "" if field.default_factory else _as_text(field.default)
            yield (title, f"{ENV_PREFIX}{prefix}{name}".upper(), _type_name(field.annotation), default,
                   _bounds(field), field.description or "")


ENV_EXAMPLE_HEAD = """\
# trading_pipeline settings. Copy to `.env` (git-ignored) and change what you need; every
# line shows the default (empty: see its comment). Credentials are read only from the
# environment, never from code. Generated from trading_pipeline/settings.py:
# python -m trading_pipeline.settings env > .env.example
"""

ENV_EXAMPLE_TAIL = """
# --- third-party telemetry (off: this project talks only to your brokers) ---------------------
MLFLOW_DISABLE_TELEMETRY=true

# --- broker credentials (only for the broker you use; never commit real values) ---------------
# Alpaca (paper or live by TRADING_ENV)
# APCA_API_KEY_ID=
# APCA_API_SECRET_KEY=
# APCA_API_BASE_URL=            # optional override of the endpoint
# APCA_API_DATA_URL=            # optional override of the market data endpoint (TRADING_DATA_SOURCE=alpaca)
# Interactive Brokers (TWS 7497 paper / 7496 live; Gateway 4002 / 4001)
# IBKR_HOST=127.0.0.1
# IBKR_PORT=
# IBKR_CLIENT_ID=17             # TRADING_DATA_SOURCE=ibkr fetches bars on the next id (18)
# IBKR_ACCOUNT=
# IBKR_GATEWAY=false
# Robinhood (live only)
# ROBINHOOD_USERNAME=
# ROBINHOOD_PASSWORD=
# ROBINHOOD_TOTP_SECRET=
"""


def _wrapped(text: str, width: int = 98) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent="# ", subsequent_indent="# ")


def env_example() -> str:
    """The text of `.env.example`: every setting under its group, its meaning, bounds and default."""
    lines = [ENV_EXAMPLE_HEAD.rstrip("\n")]
    section = None
    for title, variable, _, default, bounds, meaning in declared_settings():
        if title != section:
            section = title
            lines += ["", f"# --- {title} " + "-" * max(3, 94 - len(title))]
        lines += _wrapped(meaning)
        if bounds:
            lines.append(f"# allowed: {bounds}")
        # DAGSTER_HOME-relative defaults depend on the machine: left as a comment
        lines.append(f"# {variable}=/absolute/path" if variable == f"{ENV_PREFIX}HOME" else f"{variable}={default}")
    return "\n".join(lines) + "\n" + ENV_EXAMPLE_TAIL


def settings_table() -> str:
    """The README's settings table (markdown), one row per setting, grouped."""
    rows = ["| variable | type | default | bounds | meaning |", "|---|---|---|---|---|"]
    section = None
    for title, variable, type_name, default, bounds, meaning in declared_settings():
        if title != section:
            section = title
            rows.append(f"| **{title}** | | | | |")
        cell = lambda text: text.replace("|", "\\|")  # noqa: E731 - a cell may hold a pattern
        rows.append(f"| `{variable}` | {cell(type_name)} | {f'`{cell(default)}`' if default else ''} | "
                    f"{cell(bounds)} | {cell(meaning)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    # python -m trading_pipeline.settings env|table: print .env.example or the README table
    from trading_pipeline import settings as declared  # the importable module, not __main__'s copy

    what = sys.argv[1] if len(sys.argv) > 1 else "env"
    print(declared.env_example() if what == "env" else declared.settings_table(), end="")
