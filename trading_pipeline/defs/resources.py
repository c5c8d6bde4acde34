"""Resources: thin builders of the storage, market, model-store and broker clients.

Their configuration is fixed when a run starts, so limits cannot change during a run.
Credentials are fields filled from `EnvVar`, which Dagster resolves at launch and hides.
"""


from datetime import date
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import ClassVar
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from trading_pipeline.brokers.base import Broker
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse: bars, asset outputs and the ledger."""

    path: str

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.path)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.warehouse)


class MarketDataResource(dg.ConfigurableResource):
    """Where bars come from: the synthetic market (default) or a folder of files."""

    source: str = "synthetic"
    seed: int = 7
    universe_size: int = 50
    regime_shift_date: str | None = None
    data_path: str | None = None
    history_start: str = "2020-01-02"

    _market = PrivateAttr(default=None)

    def market(self):
        from trading_pipeline.domain.market import FileBarSource, SyntheticMarket

        if self._market is None:
            if self.source == "files":
                if not self.data_path:
                    raise ValueError("TRADING_DATA_SOURCE=files needs TRADING_DATA_PATH")
                self._market = FileBarSource(Path(self.data_path))
            else:
                shift = date.fromisoformat(self.regime_shift_date) if self.regime_shift_date else None
                self._market = SyntheticMarket(
                    seed=self.seed, universe_size=self.universe_size, regime_shift_date=shift
                )
        return self._market

    @property
    def first_session(self) -> date:
        return date.fromisoformat(self.history_start)


class ModelStoreResource(dg.ConfigurableResource):
    """The MLflow tracking store and registry."""

    tracking_uri: str
    model_name: str
    artifact_root: str

    def registry(self):
        from trading_pipeline.domain.model import ModelRegistry

        return ModelRegistry(self.tracking_uri, self.model_name, Path(self.artifact_root))


class StrategyResource(dg.ConfigurableResource):
    """The strategy's policy: construction, risk limits, horizons, thresholds, safety keys.
    Fixed when a run starts, so no limit can change during a run."""

    strategy: str = "daily_ml"
    trading_env: str = "local"
    live_enabled: bool = False
    dry_run: bool = False
    label_horizon: int = 5
    train_window_sessions: int = 500
    portfolio_mode: str = "long_only"
    weighting: str = "equal"
    top_k: int = 10
    no_trade_band: float = 0.02
    allow_fractional: bool = False
    max_positions: int = 20
    max_position_weight: float = 0.10
    cash_reserve: float = 0.05
    min_order_value: float = 100.0
    max_gross_leverage: float = 1.0
    max_orders_per_day: int = 100
    max_position_var: float = 0.005
    max_portfolio_var: float = 0.02
    var_lookback: int = 252
    stop_loss_percent: float = 0.05
    trailing_stop: bool = False
    max_daily_loss: float = 0.05
    max_drawdown: float = 0.25
    flatten_on_kill_switch: bool = False
    drift_window_sessions: int = 20
    auto_rollback: bool = True
    drift_column_threshold: float = 1.0
    drift_warn_share: float = 0.3
    drift_severe_share: float = 0.5
    promotion_min_sessions: int = 20
    reports_dir: str = "dagster_home/reports"

    @property
    def reports_path(self) -> Path:
        return Path(self.reports_dir)

    def risk_limits(self):
        from trading_pipeline.domain.risk import RiskLimits

        return RiskLimits(
            max_positions=self.max_positions, max_position_weight=self.max_position_weight,
            min_order_value=self.min_order_value, cash_reserve=self.cash_reserve,
            max_gross_leverage=self.max_gross_leverage, max_orders_per_day=self.max_orders_per_day,
            max_position_var=self.max_position_var, max_portfolio_var=self.max_portfolio_var,
            var_lookback=self.var_lookback,
        )

    def construction(self):
        from trading_pipeline.domain.risk import ConstructionConfig

        return ConstructionConfig(
            mode=self.portfolio_mode, weighting=self.weighting, top_k=self.top_k,
            no_trade_band=self.no_trade_band, allow_fractional=self.allow_fractional,
            limits=self.risk_limits(),
        )

    def stop_policy(self):
        from trading_pipeline.domain.risk import StopPolicy

        return StopPolicy(stop_percent=self.stop_loss_percent, trailing=self.trailing_stop)

    def kill_switch_rules(self):
        from trading_pipeline.domain.risk import KillSwitchRules

        return KillSwitchRules(max_daily_loss=self.max_daily_loss, max_drawdown=self.max_drawdown)


class BrokerResource(dg.ConfigurableResource):
    """A venue. Assets ask for this type; the environment decides which subclass."""

    # Fields holding credentials: masked wherever the resource is printed.
    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self._SECRET_FIELDS and value else value)

    # The adapter's `name`, which keys its rows in the ledger.
    venue: ClassVar[str] = ""

    def open(self, warehouse: Warehouse, market, session: date) -> Broker:
        """A broker client whose view of the market reaches `session`."""
        raise NotImplementedError

    @contextmanager
    def connected(self, warehouse: Warehouse, market, session: date) -> Iterator[Broker]:
        """`open`, and close the client (sockets, threads, sessions) whatever happens."""
        client = self.open(warehouse, market, session)
        try:
            yield client
        finally:
            client.close()


class SimulatorBrokerResource(BrokerResource):
    """The built-in paper simulator: fills on the bars after each order, state in the warehouse."""

    venue: ClassVar[str] = "simulator"

    initial_cash: float = 100_000.0
    slippage_bps: float = 5.0
    commission_per_share: float = 0.005
    commission_min: float = 1.0
    max_volume_participation: float = 0.1

    def open(self, warehouse: Warehouse, market, session: date) -> Broker:
        from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig

        config = SimulatorConfig(
            initial_cash=self.initial_cash,
            slippage_bps=self.slippage_bps,
            commission_per_share=self.commission_per_share,
            commission_min=self.commission_min,
            max_volume_participation=self.max_volume_participation,
        )
        simulator = PaperSimulator(warehouse, lambda s: market.bars([s]), config)
        simulator.advance_to(session)
        return simulator


class AlpacaBrokerResource(BrokerResource):
    """Alpaca through alpaca-py; paper or live endpoint by TRADING_ENV."""

    venue: ClassVar[str] = "alpaca"

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"api_key_id", "api_secret_key"})

    api_key_id: str  # EnvVar("APCA_API_KEY_ID")
    api_secret_key: str  # EnvVar("APCA_API_SECRET_KEY")
    paper: bool = True
    base_url: str | None = None  # APCA_API_BASE_URL, optional override

    def open(self, warehouse: Warehouse, market, session: date) -> Broker:
        from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig

        return AlpacaBroker(AlpacaConfig.from_values(
            self.api_key_id, self.api_secret_key, paper=self.paper, base_url=self.base_url))


class IbkrBrokerResource(BrokerResource):
    """Interactive Brokers through ib_insync, talking to TWS or IB Gateway."""

    venue: ClassVar[str] = "ibkr"

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"account"})

    trading_env: str
    host: str | None = None
    port: str | None = None
    client_id: str | None = None
    gateway: str | None = None
    account: str | None = None  # EnvVar("IBKR_ACCOUNT") when set: kept out of the UI

    def open(self, warehouse: Warehouse, market, session: date) -> Broker:
        from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig

        return IbkrBroker(IbkrConfig.from_values(
            trading_env=self.trading_env, host=self.host, port=self.port,
            client_id=self.client_id, account=self.account, gateway=self.gateway))


class RobinhoodBrokerResource(BrokerResource):
    """Robinhood through robin_stocks (live only), logging in with a TOTP code from pyotp."""

    venue: ClassVar[str] = "robinhood"

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"username", "password", "totp_secret"})

    username: str  # EnvVar("ROBINHOOD_USERNAME")
    password: str  # EnvVar("ROBINHOOD_PASSWORD")
    totp_secret: str  # EnvVar("ROBINHOOD_TOTP_SECRET")
    session_dir: str  # the token pickle and order map live here (mode 600), never in ~

    def open(self, warehouse: Warehouse, market, session: date) -> Broker:
        from trading_pipeline.brokers.robinhood import RobinhoodBroker, RobinhoodConfig

        return RobinhoodBroker(RobinhoodConfig.from_values(
            self.username, self.password, self.totp_secret, self.session_dir))
