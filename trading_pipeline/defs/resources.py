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

from trading_pipeline import settings
from trading_pipeline.alerts import Alert, AlertDispatcher, DeliveryReport, EmailChannel, WebhookChannel
from trading_pipeline.brokers.base import Broker, account_key
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
    """Where bars come from: the synthetic market (default), a folder of files, or a broker's
    market data (alpaca, ibkr) for a chosen universe. A broker's credentials are `EnvVar`s,
    the same ones its broker resource reads: resolved at launch, hidden in the UI and reprs."""

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"alpaca_key_id", "alpaca_secret_key"})

    source: str = "synthetic"
    seed: int = 7
    universe_size: int = 50
    regime_shift_date: str | None = None
    data_path: str | None = None
    history_start: str = "2020-01-02"
    symbol_pattern: str = r"^[A-Z][A-Z0-9.\-]{0,14}$"
    # where the file source keeps validated bars between runs (None: read the folder each run)
    warehouse_path: str | None = None
    # broker sources: TRADING_UNIVERSE (a comma list or @path), the feed and the endpoints
    universe: str | None = None
    alpaca_feed: str = "iex"
    alpaca_data_url: str | None = None  # APCA_API_DATA_URL: a proxy or a local fake
    alpaca_key_id: str | None = None  # EnvVar("APCA_API_KEY_ID")
    alpaca_secret_key: str | None = None  # EnvVar("APCA_API_SECRET_KEY")
    ibkr_trading_env: str = "paper"
    ibkr_host: str | None = None
    ibkr_port: str | None = None
    ibkr_client_id: str | None = None  # the data connection uses the next id (the orders' stays free)
    ibkr_gateway: str | None = None

    _market = PrivateAttr(default=None)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self._SECRET_FIELDS and value else value)

    @property
    def from_broker(self) -> bool:
        return self.source in ("alpaca", "ibkr")

    def chosen_universe(self):
        """TRADING_UNIVERSE, parsed and checked (UniverseError names each bad symbol)."""
        from trading_pipeline.domain.market.universe import UniverseError, parse_universe

        if not self.universe:
            raise UniverseError(f"TRADING_DATA_SOURCE={self.source} needs TRADING_UNIVERSE: the symbols to trade, "
                                "a comma list (AAPL,MSFT,SPY) or @path to a file of symbols")
        return parse_universe(self.universe, self.symbol_pattern)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.from_broker:
            self.chosen_universe()  # a bad universe fails the run before any step

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        close = getattr(self._market, "close", None)
        if self.from_broker and close is not None:
            close()

    def _broker_source(self):
        symbols = self.chosen_universe().symbols
        if self.source == "alpaca":
            from trading_pipeline.brokers.alpaca.market_data import AlpacaBarSource, AlpacaDataConfig

            return AlpacaBarSource(AlpacaDataConfig(
                self.alpaca_key_id or "", self.alpaca_secret_key or "", feed=self.alpaca_feed,
                url_override=self.alpaca_data_url), symbols)
        from trading_pipeline.brokers.ibkr.market_data import IbkrBarSource, IbkrDataConfig

        # bars only: a local run reads them from a paper login's ports unless IBKR_PORT says otherwise
        data_env = self.ibkr_trading_env if self.ibkr_trading_env in ("paper", "live") else "paper"
        return IbkrBarSource(IbkrDataConfig.from_values(
            trading_env=data_env, host=self.ibkr_host, port=self.ibkr_port,
            client_id=self.ibkr_client_id, gateway=self.ibkr_gateway), symbols)

    def market(self):
        from trading_pipeline.domain.market import FileBarSource, SyntheticMarket

        if self._market is None:
            if self.from_broker:
                self._market = self._broker_source()
            elif self.source == "files":
                if not self.data_path:
                    raise ValueError("TRADING_DATA_SOURCE=files needs TRADING_DATA_PATH")
                from trading_pipeline.storage.market_store import WarehouseBarFileStore

                store = WarehouseBarFileStore(Warehouse(self.warehouse_path)) if self.warehouse_path else None
                self._market = FileBarSource(Path(self.data_path), symbol_pattern=self.symbol_pattern, store=store)
            else:
                shift = date.fromisoformat(self.regime_shift_date) if self.regime_shift_date else None
                self._market = SyntheticMarket(
                    seed=self.seed, universe_size=self.universe_size, regime_shift_date=shift
                )
        return self._market

    @property
    def first_session(self) -> date:
        return date.fromisoformat(self.history_start)


class AccountLockResource(dg.ConfigurableResource):
    """Held for the whole run by every job that trades an account: a second run of the same
    account waits up to `wait_seconds`, then fails naming the run that holds it. Once held, a
    partitioned run is checked before any step writes anything: its session must have closed,
    and the account must not have moved past it unless the session is on record (then the run
    only reports what was recorded)."""

    lock_dir: str
    account: str
    wait_seconds: float = 300.0
    warehouse_path: str | None = None
    strategy: str | None = None

    _lock = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from trading_pipeline.storage.account_lock import AccountLock

        run = context.dagster_run
        lock = AccountLock(self.lock_dir, self.account)
        lock.acquire(self.wait_seconds, holder=f"run {run.run_id}" if run else "")
        self._lock = lock
        partition = run.tags.get("dagster/partition") if run else None
        if partition and self.warehouse_path and self.strategy:
            try:
                self._check_session(date.fromisoformat(partition))
            except BaseException:
                self.teardown_after_execution(context)
                raise

    def _check_session(self, session: date) -> None:
        from trading_pipeline.domain.calendar import require_closed
        from trading_pipeline.services.trading import check_session_allowed

        require_closed(session)
        check_session_allowed(Ledger(Warehouse(self.warehouse_path)), self.account, self.strategy, session)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class ModelStoreResource(dg.ConfigurableResource):
    """The MLflow tracking store and registry."""

    tracking_uri: str
    model_name: str
    artifact_root: str

    def registry(self):
        from trading_pipeline.domain.model import ModelRegistry

        return ModelRegistry(self.tracking_uri, self.model_name, Path(self.artifact_root))


# The strategy's setting groups as Dagster config: the fields, defaults, bounds and meanings are
# the declaration in settings.py; these only make each group a Config the launchpad shows.
class ModelConfig(settings.ModelSettings, dg.Config):
    """Features, labels, training, champion and challenger."""


class PortfolioConfig(settings.PortfolioSettings, dg.Config):
    """Portfolio construction."""


class RiskConfig(settings.RiskSettings, dg.Config):
    """Risk limits."""


class StopConfig(settings.StopSettings, dg.Config):
    """Protective stops."""


class KillSwitchConfig(settings.KillSwitchSettings, dg.Config):
    """The kill switch's automatic triggers."""


class CostConfig(settings.CostSettings, dg.Config):
    """The simulated account's starting cash and execution costs."""


class DriftConfig(settings.DriftSettings, dg.Config):
    """Drift report thresholds."""


class DecayConfig(settings.DecaySettings, dg.Config):
    """Performance decay."""


class PromotionConfig(settings.PromotionSettings, dg.Config):
    """Promotion gates."""


class MonitorConfig(settings.MonitorSettings, dg.Config):
    """Live-vs-backtest monitor thresholds."""


class StrategyResource(dg.ConfigurableResource):
    """The strategy's policy: the safety keys, and one nested config per group of settings
    (construction, risk limits, horizons, thresholds). Fixed when a run starts, so no limit can
    change during a run. The methods build the domain's config objects."""

    strategy: str = "daily_ml"
    trading_env: str = "local"
    live_enabled: bool = False
    dry_run: bool = False
    auto_rollback: bool = True
    reports_dir: str = "dagster_home/reports"
    model: ModelConfig = ModelConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    risk: RiskConfig = RiskConfig()
    stops: StopConfig = StopConfig()
    kill_switch: KillSwitchConfig = KillSwitchConfig()
    costs: CostConfig = CostConfig()
    drift: DriftConfig = DriftConfig()
    decay: DecayConfig = DecayConfig()
    promotion: PromotionConfig = PromotionConfig()
    monitor: MonitorConfig = MonitorConfig()

    def __init__(self, **values):
        misplaced = {name: settings.grouped_fields()[name] for name in values
                     if name not in type(self).model_fields and name in settings.grouped_fields()}
        if misplaced:
            where = ", ".join(f"{name} is {group}.{field}" for name, (group, field) in misplaced.items())
            raise TypeError(f"StrategyResource takes settings in their groups: {where} "
                            "(e.g. StrategyResource(portfolio=PortfolioConfig(top_k=4)))")
        super().__init__(**values)

    @classmethod
    def groups_from(cls, values: "settings.TradingSettings") -> dict[str, dg.Config]:
        """Each of this resource's groups, filled from the same group of `values`."""
        return {name: field.annotation.model_validate(getattr(values, name).model_dump())
                for name, field in cls.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, settings.SettingsGroup)}

    @property
    def reports_path(self) -> Path:
        return Path(self.reports_dir)

    def decay_policy(self):
        return self.decay.policy()

    def risk_limits(self):
        return self.risk.limits()

    def construction(self):
        return self.portfolio.construction(self.risk.limits())

    def monitor_thresholds(self):
        return self.monitor.thresholds()

    def execution(self):
        """The cost model backtests assume: the paper simulator's rules with these costs."""
        return self.costs.execution(self.portfolio)

    def selection_rules(self):
        return self.model.selection_rules()

    def training_options(self):
        return self.model.training_options()

    def stop_policy(self):
        return self.stops.policy()

    def kill_switch_rules(self):
        return self.kill_switch.rules()

    def promotion_gates(self):
        return self.promotion.gates()


class BrokerResource(dg.ConfigurableResource):
    """A venue. Assets ask for this type; the environment decides which subclass."""

    # Fields holding credentials: masked wherever the resource is printed.
    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self._SECRET_FIELDS and value else value)

    @property
    def venue(self) -> str:
        """The adapter's `name`, which keys the account's rows in the ledger (`account_key`)."""
        raise NotImplementedError

    def open(self, warehouse: Warehouse, market, session: date | None) -> Broker:
        """A broker client whose view of the market reaches `session`; None: the account as it
        is now, without moving the paper simulator's clock (an emergency stop, an adoption)."""
        raise NotImplementedError

    @contextmanager
    def connected(self, warehouse: Warehouse, market, session: date | None) -> Iterator[Broker]:
        """`open`, and close the client (sockets, threads, sessions) whatever happens."""
        client = self.open(warehouse, market, session)
        try:
            yield client
        finally:
            client.close()


class SimulatorBrokerResource(BrokerResource):
    """The built-in paper simulator: fills on the bars after each order, state in the warehouse."""

    @property
    def venue(self) -> str:
        return account_key("simulator")  # one local account

    initial_cash: float = 100_000.0
    slippage_bps: float = 5.0
    commission_per_share: float = 0.005
    commission_min: float = 1.0
    max_volume_participation: float = 0.1

    def open(self, warehouse: Warehouse, market, session: date | None) -> Broker:
        from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig

        config = SimulatorConfig(
            initial_cash=self.initial_cash,
            slippage_bps=self.slippage_bps,
            commission_per_share=self.commission_per_share,
            commission_min=self.commission_min,
            max_volume_participation=self.max_volume_participation,
        )
        from trading_pipeline.services.data_quality import tradable_bars

        # The stored, checked bars without the session's quarantined symbols: a bad bar never
        # fills an order or values the book (a dropped symbol keeps its last good mark).
        simulator = PaperSimulator(warehouse, lambda s: tradable_bars(warehouse, s, lambda d: market.bars([d])),
                                   config)
        if session is not None:
            simulator.advance_to(session)
        return simulator


class AlpacaBrokerResource(BrokerResource):
    """Alpaca through alpaca-py; paper or live endpoint by TRADING_ENV."""

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"api_key_id", "api_secret_key"})

    api_key_id: str  # EnvVar("APCA_API_KEY_ID")
    api_secret_key: str  # EnvVar("APCA_API_SECRET_KEY")
    paper: bool = True
    base_url: str | None = None  # APCA_API_BASE_URL, optional override

    @property
    def venue(self) -> str:
        return account_key("alpaca", "paper" if self.paper else "live")

    def open(self, warehouse: Warehouse, market, session: date | None) -> Broker:
        from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig

        return AlpacaBroker(AlpacaConfig.from_values(
            self.api_key_id, self.api_secret_key, paper=self.paper, base_url=self.base_url))


class IbkrBrokerResource(BrokerResource):
    """Interactive Brokers through ib_insync, talking to TWS or IB Gateway."""

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"account"})

    trading_env: str
    host: str | None = None
    port: str | None = None
    client_id: str | None = None
    gateway: str | None = None
    account: str | None = None  # EnvVar("IBKR_ACCOUNT") when set: kept out of the UI

    @property
    def venue(self) -> str:
        return account_key("ibkr", self.trading_env)

    def open(self, warehouse: Warehouse, market, session: date | None) -> Broker:
        from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig

        return IbkrBroker(IbkrConfig.from_values(
            trading_env=self.trading_env, host=self.host, port=self.port,
            client_id=self.client_id, account=self.account, gateway=self.gateway))


class RobinhoodBrokerResource(BrokerResource):
    """Robinhood through robin_stocks (live only), logging in with a TOTP code from pyotp."""

    @property
    def venue(self) -> str:
        return account_key("robinhood")  # live only: one account

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"username", "password", "totp_secret"})

    username: str  # EnvVar("ROBINHOOD_USERNAME")
    password: str  # EnvVar("ROBINHOOD_PASSWORD")
    totp_secret: str  # EnvVar("ROBINHOOD_TOTP_SECRET")
    session_dir: str  # the token pickle and order map live here (mode 600), never in ~

    def open(self, warehouse: Warehouse, market, session: date | None) -> Broker:
        from trading_pipeline.brokers.robinhood import RobinhoodBroker, RobinhoodConfig

        return RobinhoodBroker(RobinhoodConfig.from_values(
            self.username, self.password, self.totp_secret, self.session_dir))


class AlertsResource(dg.ConfigurableResource):
    """Alert delivery: the caller's log always; a webhook and SMTP e-mail when configured.

    `send` never raises: a channel that fails is logged as an error and shown in the returned
    report. Settings that cannot work (no recipients, a URL that is not http(s)) fail at launch.
    """

    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"webhook_url", "smtp_password"})

    webhook_url: str | None = None  # EnvVar("TRADING_ALERT_WEBHOOK_URL"): the URL holds a token
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: str | None = None  # EnvVar("TRADING_ALERT_SMTP_PASSWORD")
    email_from: str | None = None
    email_to: list[str] = []
    min_severity: str = "warning"  # for the webhook and e-mail; the log gets every alert
    timeout_seconds: float = 10.0
    strategy: str | None = None  # stamped on alerts that name none
    trading_env: str | None = None

    _channels: list | None = PrivateAttr(default=None)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self._SECRET_FIELDS and value else value)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.channels()  # a configuration that cannot work fails here, before any step

    def channels(self) -> list:
        if self._channels is None:
            built = []
            if self.webhook_url:
                built.append(WebhookChannel(self.webhook_url, timeout=self.timeout_seconds))
            if self.smtp_host:
                built.append(EmailChannel(
                    self.smtp_host, port=self.smtp_port, starttls=self.smtp_starttls,
                    username=self.smtp_user, password=self.smtp_password, sender=self.email_from or "",
                    recipients=self.email_to, timeout=self.timeout_seconds))
            self._channels = built
        return self._channels

    def send(self, alert: Alert, log=None) -> DeliveryReport:
        """Deliver `alert`; `log` is where the log channel writes (e.g. `context.log`)."""
        dispatcher = AlertDispatcher(self.channels(), min_severity=self.min_severity, logger=log)
        return dispatcher.deliver(alert.with_context(strategy=self.strategy, environment=self.trading_env))
