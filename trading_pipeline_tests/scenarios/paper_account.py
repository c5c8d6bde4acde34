"""A paper account traded for N sessions against a venue's fakes on 127.0.0.1: the judged
scenario of "trade the real market from a real account".

The account is not flat when it starts: a person holds 5 long positions and $50,000 in cash.
Everything runs as a user runs it, by environment variables only (TRADING_ENV=paper, the
venue's broker and market data, a fresh TRADING_HOME and DAGSTER_HOME): the history is loaded
(`market_bars`), a first model is trained (`training_job`), the daily run refuses the account
until `adoption_job` adopts it, then `daily_trading_job` runs session after session. Between
sessions the fakes' market moves to the next session's bars (the same bars the data fake
serves): working orders fill at the open, stops trigger at the low. On `split_day` one held
symbol splits 2-for-1 before the open; the venue then does what brokers do: the position's
quantity is multiplied by the ratio and its cost divided, and the open orders in that symbol
are cancelled (the loop places new ones).

    python -m trading_pipeline_tests.scenarios.paper_account --venue alpaca --sessions 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time as clock_time
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import next_session, previous_session, sessions_between
from trading_pipeline.domain.market import SyntheticMarket

VENUES = ("alpaca", "ibkr")
HISTORY_START = date(2023, 1, 3)
FIRST_SESSION = date(2024, 4, 1)  # the first session the account trades
STARTING_CASH = 50_000.0
HELD = 5  # positions the person holds before the pipeline sees the account
POSITION_VALUE = 9_000.0  # dollars in each of them
SPLIT_RATIO = 2.0
KEY_ID, SECRET_KEY = "PAPER-SCENARIO-KEY", "PAPER-SCENARIO-SECRET"  # the fakes' own, not credentials
# IB's pacing windows (600 s, 15 s, 2 s) scaled down on both sides, the fake's and the client's:
# the scenario measures the requests a session needs, not IB's waiting (README: about N/6 minutes).
IB_PACING_SCALE = 1 / 1000
# Dagster's console shows warnings and alerts only: the figures are the scenario's output
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ADOPT = {**QUIET, "ops": {"adopt_existing_account": {"config": {
    "operator": "Ada", "reason": "paper account traded by hand before this pipeline"}}}}


@dataclass(frozen=True)
class SessionFigures:
    session: date
    succeeded: bool
    breaks: int
    data_requests: int
    buy_entries: int  # whole-share buys that open or add to a long
    entries_with_stop: int  # ... sent with their stop attached at the venue (OTO leg / child STP)
    orders: int
    unprotected: int  # longs at the venue with no working sell order (its stop, or its exit) after the run
    wall_seconds: float
    unprotected_symbols: tuple[str, ...] = ()
    # longs added to this session whose working stop the venue adapter cancelled to send the add,
    # or whose stop it refused beside the add (Alpaca: a buy and a sell of one symbol may not
    # both be open, "potential wash trade")
    stop_moved_for_add: tuple[str, ...] = ()


@dataclass
class PaperAccountReport:
    venue: str
    account: str
    refusal: str  # what the daily run said before adoption
    adoption: dict  # who, why, what was imported
    sessions: list[SessionFigures] = field(default_factory=list)
    split: dict = field(default_factory=dict)
    training_seconds: float = 0.0
    history_requests: int = 0

    def table(self) -> str:
        lines = [f"paper account on {self.venue} ({self.account}): {len(self.sessions)} sessions",
                 f"refused before adoption: {self.refusal[:160]}",
                 "adopted by {operator} ({reason}): {positions} positions, cash {cash:,.2f}, "
                 "{orders} open orders, {stops} stops placed".format(**self.adoption),
                 f"history load: {self.history_requests} data requests; training_job: {self.training_seconds:.1f} s",
                 f"{'session':<11}{'ok':>4}{'breaks':>8}{'requests':>10}{'buys':>6}{'with stop':>11}"
                 f"{'orders':>8}{'unprot':>8}{'wall s':>8}  unprotected (stop moved or refused beside an add)"]
        for s in self.sessions:
            lines.append(f"{s.session.isoformat():<11}{'yes' if s.succeeded else 'NO':>4}{s.breaks:>8}"
                         f"{s.data_requests:>10}{s.buy_entries:>6}{s.entries_with_stop:>11}{s.orders:>8}"
                         f"{s.unprotected:>8}{s.wall_seconds:>8.1f}  {', '.join(s.unprotected_symbols)}"
                         + (f" ({', '.join(s.stop_moved_for_add)})" if s.stop_moved_for_add else ""))
        walls = sorted(s.wall_seconds for s in self.sessions)
        requests = [s.data_requests for s in self.sessions]
        lines.append(f"totals: breaks {sum(s.breaks for s in self.sessions)}, buy entries "
                     f"{sum(s.buy_entries for s in self.sessions)} of which with a stop attached "
                     f"{sum(s.entries_with_stop for s in self.sessions)}, unprotected longs after a run "
                     f"{sum(s.unprotected for s in self.sessions)}, data requests {sum(requests)} "
                     f"(max {max(requests, default=0)} a session), wall median {walls[len(walls) // 2] if walls else 0:.1f} s "
                     f"max {max(walls, default=0):.1f} s")
        if self.split:
            lines.append("split: {symbol} {ratio:g}:1 on {session}; adjustment_events {events} (ratio {recorded_ratio}); "
                         "broker {broker_before:g} -> {broker_after:g}, ledger {ledger_before:g} -> {ledger_after:g}; "
                         "breaks that session {breaks}".format(**self.split))
        return "\n".join(lines)


# -- the venues' fakes ---------------------------------------------------------------------------


class AlpacaVenue:
    """Alpaca's trading fake and its market data fake, sharing the keys as the real ones do."""

    name = "alpaca"
    account = "alpaca-paper"

    def __init__(self, stack: ExitStack, bars: pl.DataFrame, opening: dict[str, float]):
        from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer
        from trading_pipeline_tests.brokers.fakes.alpaca_data import FakeAlpacaDataServer, FakeAlpacaData, load_frame

        self.trading = FakeAlpaca(KEY_ID, SECRET_KEY, prices=dict(opening), cash=STARTING_CASH)
        self.data = FakeAlpacaData(key_id=KEY_ID, secret_key=SECRET_KEY)
        load_frame(self.data, bars)
        self._trading_url = stack.enter_context(FakeAlpacaServer(self.trading)).url
        self._data_server = stack.enter_context(FakeAlpacaDataServer(self.data))

    def environment(self, universe: str) -> dict[str, str]:
        from trading_pipeline_tests.brokers.fakes.alpaca_data import data_environment

        return {**data_environment(self._data_server, universe.split(",")), "TRADING_BROKER": "alpaca",
                "APCA_API_BASE_URL": self._trading_url}

    def hold(self, symbol: str, quantity: float, price: float) -> None:
        self.trading.set_position(symbol, quantity, price)

    def data_requests(self) -> int:
        return len(self.data.bar_requests())

    def trade_session(self, session: date, bars: dict[str, tuple[float, float, float, float]]) -> None:
        """The market of `session`: working orders fill at the open, stops trigger at the low."""
        for step in (0, 2):  # open, then low; the close is left as the price
            for symbol, prices in bars.items():
                self.trading.set_price(symbol, prices[step])
            self.trading.settle()
        for symbol, prices in bars.items():
            self.trading.set_price(symbol, prices[3])

    def split(self, symbol: str, session: date, ratio: float) -> None:
        self.data.split(symbol, session, ratio)
        fake = self.trading
        with fake._lock:  # the venue's own bookkeeping at the split
            quantity, cost = fake.positions[symbol]
            fake.positions[symbol] = [quantity * ratio, cost / ratio]
            for order in fake._open_orders(symbol):
                if order.parent_id is None:
                    fake._cancel(order)
            for order in fake._open_orders(symbol):  # a leg whose entry filled works alone
                order.status, order.canceled_at = "canceled", order.updated_at

    def position(self, symbol: str) -> float:
        return self.trading.positions.get(symbol, [0.0])[0]

    def unprotected(self) -> list[str]:
        stopped = {o.symbol for o in self.trading.orders
                   if o.is_open and o.side == "sell" and o.status != "held"}
        return sorted(s for s, (q, _) in self.trading.positions.items() if q > 0 and s not in stopped)

    def stop_attached(self, entry_id: str) -> bool:
        """The entry went to Alpaca as an OTO order with its stop leg."""
        orders = [o for o in self.trading.orders if o.client_order_id == entry_id]
        return bool(orders) and orders[0].order_class == "oto" and len(orders[0].legs) == 1 \
            and orders[0].legs[0].type == "stop"


class IbkrVenue:
    """A fake TWS: orders and historical data on one login (bars on the next client id)."""

    name = "ibkr"
    account = "ibkr-paper"

    def __init__(self, stack: ExitStack, bars: pl.DataFrame, opening: dict[str, float]):
        from trading_pipeline_tests.brokers.fakes.tws import FakeTws
        from trading_pipeline_tests.brokers.fakes.tws.historical import load_market

        self.tws = stack.enter_context(FakeTws(cash=STARTING_CASH, prices=dict(opening)))
        self.history = load_market(self.tws, bars=bars, window_seconds=600 * IB_PACING_SCALE,
                                   identical_seconds=15 * IB_PACING_SCALE, same_contract_seconds=2 * IB_PACING_SCALE)
        stack.enter_context(_scaled_client_pacing())

    def environment(self, universe: str) -> dict[str, str]:
        from trading_pipeline_tests.brokers.fakes.tws.historical import data_environment

        return {**data_environment(self.tws, universe.split(",")), "TRADING_BROKER": "ibkr"}

    def hold(self, symbol: str, quantity: float, price: float) -> None:
        self.tws.set_position(symbol, quantity, price)

    def data_requests(self) -> int:
        return len(self.history.requests)

    def at(self, session: date, hour: int) -> None:
        self.tws.state.clock = datetime.combine(session, clock_time(hour), UTC)

    def trade_session(self, session: date, bars: dict[str, tuple[float, float, float, float]]) -> None:
        self.at(session, 14)  # the open (UTC)
        for step in (0, 2):
            for symbol, prices in bars.items():
                self.tws.set_price(symbol, prices[step])
            self.tws.fill_working_orders()
        for symbol, prices in bars.items():
            self.tws.set_price(symbol, prices[3])
        self.at(session, 22)  # after the close: the run for `session` sees it closed

    def split(self, symbol: str, session: date, ratio: float) -> None:
        self.history.split(symbol, session, ratio)
        state = self.tws.state
        with self.tws._lock:
            holding = state.holdings[self.tws.account][symbol]
            holding.quantity, holding.avg_cost = holding.quantity * ratio, holding.avg_cost / ratio
            for order in state.orders:
                if order.instrument.symbol == symbol and order.is_open:
                    order.status = "Cancelled"

    def position(self, symbol: str) -> float:
        return self.tws.position(symbol)

    def unprotected(self) -> list[str]:
        state = self.tws.state
        stopped = {o.instrument.symbol for o in state.orders
                   if o.is_open and not o.is_buy}
        return sorted(s for s, h in state.holdings[self.tws.account].items() if h.quantity > 0 and s not in stopped)

    def stop_attached(self, entry_id: str) -> bool:
        """The entry went to TWS with a child STP (parentId) transmitted with it."""
        entries = self.tws.orders_with_ref(entry_id)
        stops = self.tws.orders_with_ref(f"{entry_id}-stop")
        return len(entries) == 1 and len(stops) == 1 and stops[0].parent_id == entries[0].order_id \
            and stops[0].order_type == "STP"


@contextmanager
def _scaled_client_pacing() -> Iterator[None]:
    from trading_pipeline.brokers.ibkr import market_data

    real = market_data.IbkrPacing
    scaled = replace(real(), window_seconds=600 * IB_PACING_SCALE, identical_seconds=15 * IB_PACING_SCALE,
                     same_contract_seconds=2 * IB_PACING_SCALE, violation_wait=15 * IB_PACING_SCALE)
    market_data.IbkrPacing = lambda: scaled  # type: ignore[assignment]  # what from_values builds by default
    try:
        yield
    finally:
        market_data.IbkrPacing = real


# -- the run ------------------------------------------------------------------------------------


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _failure(result) -> str:
    """Each failed step's innermost error (what a person reads first on the run's page)."""
    messages = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            messages.append(error.message.strip())
    return " ".join(messages)


def run_paper_account(venue: str, sessions: int = 30, split_day: int = 12, symbols: int = 20,
                      workdir: Path | None = None) -> PaperAccountReport:
    """Run the scenario (see the module) and return its figures. `split_day` counts the traded
    sessions from 1; `workdir` holds the homes (a temporary folder when None)."""
    if venue not in VENUES:
        raise ValueError(f"venue must be one of {', '.join(VENUES)}, not {venue!r}")
    if not 1 <= split_day <= sessions:
        raise ValueError(f"split_day must be a session of the run (1..{sessions}), not {split_day}")
    if symbols < HELD + 3:
        raise ValueError(f"symbols must be at least {HELD + 3} (the account holds {HELD}), not {symbols}")
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="paper-account-")))
        return _run(stack, venue, sessions, split_day, symbols, Path(workdir))


def _run(stack: ExitStack, venue_name: str, count: int, split_day: int, size: int, workdir: Path) -> PaperAccountReport:
    import dagster as dg

    from trading_pipeline.definitions import build_definitions
    from trading_pipeline.settings import TradingSettings
    from trading_pipeline.storage import adoption_store, market_store
    from trading_pipeline.storage.warehouse import Warehouse

    traded = [FIRST_SESSION]
    while len(traded) < count:
        traded.append(next_session(traded[-1]))
    loaded = previous_session(FIRST_SESSION)  # the history a user loads before the first run
    market = SyntheticMarket(seed=7, universe_size=size)
    bars = market.bars(sessions_between(HISTORY_START, traded[-1]))
    by_session = {s: {sym: (o, h, l, c) for sym, o, h, l, c in frame.select(
        "symbol", "open", "high", "low", "close").iter_rows()}
        for (s,), frame in bars.partition_by("session", as_dict=True).items()}
    opening = {sym: prices[3] for sym, prices in by_session[loaded].items()}
    universe = ",".join(sorted(opening))

    venue = (AlpacaVenue if venue_name == "alpaca" else IbkrVenue)(stack, bars, opening)
    if isinstance(venue, IbkrVenue):
        venue.at(loaded, 22)
    held = sorted(opening)[:HELD]
    for symbol in held:  # a person's trades, before the pipeline ever sees the account
        venue.hold(symbol, float(int(POSITION_VALUE / opening[symbol])), opening[symbol])

    (workdir / "dagster").mkdir(parents=True, exist_ok=True)
    stack.enter_context(_environment({
        "TRADING_ENV": "paper", "TRADING_DATA_SOURCE": venue_name, **venue.environment(universe),
        "TRADING_HOME": str(workdir / "home"), "DAGSTER_HOME": str(workdir / "dagster"),
        "TRADING_HISTORY_START": HISTORY_START.isoformat(), "TRADING_FIRST_SESSION": HISTORY_START.isoformat(),
        "TRADING_TRAIN_WINDOW_SESSIONS": "150", "TRADING_TOP_K": "4", "TRADING_DRIFT_WINDOW_SESSIONS": "10",
        # the scenario is the account's mechanics (adoption, stops, a split) on a universe of a
        # dozen synthetic symbols, too few for the signal gate to judge: its model is traded
        "TRADING_WITHOUT_SIGNAL": "trade",
    }))
    settings = TradingSettings(_env_file=None)
    defs = build_definitions(settings)
    daily = defs.resolve_job_def("daily_trading_job")
    instance = stack.enter_context(dg.instance_for_test(temp_dir=str(workdir / "dagster")))
    warehouse = Warehouse(settings.resolved_warehouse_path)

    history = daily.execute_in_process(partition_key=loaded.isoformat(), instance=instance, run_config=QUIET,
                                       asset_selection=[dg.AssetKey("market_bars")])
    if not history.success:
        raise RuntimeError(f"loading the history failed: {_failure(history)}")
    history_requests = venue.data_requests()
    started = time.perf_counter()
    trained = defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config=QUIET,
                                                                     raise_on_error=False)
    if not trained.success:
        raise RuntimeError(f"training_job failed: {_failure(trained)}")
    training_seconds = time.perf_counter() - started

    venue.trade_session(traded[0], by_session[traded[0]])
    refused = daily.execute_in_process(partition_key=traded[0].isoformat(), instance=instance, run_config=QUIET,
                                       raise_on_error=False)
    refusal = "it ran: nothing refused the account" if refused.success else _failure(refused)

    adopted = defs.resolve_job_def("adoption_job").execute_in_process(run_config=ADOPT, instance=instance,
                                                                      raise_on_error=False)
    if not adopted.success:
        raise RuntimeError(f"adoption_job failed: {_failure(adopted)}")
    account = venue.account
    record = adoption_store.adoption(warehouse, account) or {}
    stops = warehouse.query("select count(*) as n from ledger_orders where broker = ? and purpose = 'stop_loss'",
                            [account])["n"][0]
    report = PaperAccountReport(
        venue=venue_name, account=account, refusal=refusal, training_seconds=training_seconds,
        history_requests=history_requests,
        adoption={"operator": record.get("operator"), "reason": record.get("reason"),
                  "positions": adoption_store.adopted_positions(warehouse, account).height,
                  "cash": float(record.get("cash") or 0.0),
                  "orders": adoption_store.adopted_orders(warehouse, account).height, "stops": int(stops),
                  "symbols": ", ".join(adoption_store.adopted_positions(warehouse, account)["symbol"].to_list())})

    split_session = traded[split_day - 1]
    for number, session in enumerate(traded, start=1):
        split_before = None
        if session == split_session:  # the venue splits a symbol the account holds, before the open
            # an adopted holding where one is still held (the adopted quantity splits), else the largest
            holding = sorted((s in held, venue.position(s), s) for s in opening if venue.position(s) > 0)
            symbol = holding[-1][2]
            split_before = (symbol, venue.position(symbol), _ledger_quantity(warehouse, account, symbol))
            venue.split(symbol, session, SPLIT_RATIO)
            by_session = _split_prices(by_session, symbol, session, SPLIT_RATIO)
        if number > 1:
            venue.trade_session(session, by_session[session])
        requests_before = venue.data_requests()
        started = time.perf_counter()
        result = daily.execute_in_process(partition_key=session.isoformat(), instance=instance, run_config=QUIET,
                                          raise_on_error=False)
        wall = time.perf_counter() - started
        orders = warehouse.query("select client_order_id, symbol, side, purpose, quantity, status, reason from ledger_orders "
                                 "where broker = ? and session = ?", [account, session])
        entries = orders.filter((pl.col("side") == "buy") & (pl.col("purpose") == "rebalance")
                                & (pl.col("quantity") == pl.col("quantity").round(0))
                                & ~pl.col("status").is_in(["not_sent", "planned"]))
        breaks = warehouse.scalar("select count(*) from reconciliation_breaks where account = ? and session = ?",
                                  [account, session]) if warehouse.table_exists("reconciliation_breaks") else 0
        report.sessions.append(SessionFigures(
            session=session, succeeded=result.success, breaks=int(breaks or 0),
            data_requests=venue.data_requests() - requests_before, buy_entries=entries.height,
            entries_with_stop=sum(venue.stop_attached(cid) for cid in entries["client_order_id"]),
            orders=orders.height, unprotected=len(venue.unprotected()), wall_seconds=wall,
            unprotected_symbols=tuple(venue.unprotected()),
            stop_moved_for_add=tuple(sorted(set(entries.filter(pl.col("reason").str.contains("to make room"))["symbol"])
                                            | set(orders.filter((pl.col("side") == "sell")
                                                                & pl.col("reason").str.contains("wash trade"))["symbol"])))))
        if not result.success:
            report.sessions[-1] = replace(report.sessions[-1], breaks=-1)
            raise RuntimeError(f"daily_trading_job failed for {session}: {_failure(result)}\n{report.table()}")
        if split_before is not None:
            symbol, broker_before, ledger_before = split_before
            events = market_store.adjustment_events(warehouse).filter(pl.col("symbol") == symbol)
            report.split = {
                "symbol": symbol, "ratio": SPLIT_RATIO, "session": session, "events": events.height,
                "recorded_ratio": ", ".join(f"{r:.4g}" for r in events["ratio"]) or "none",
                "broker_before": broker_before, "broker_after": venue.position(symbol),
                "ledger_before": ledger_before, "ledger_after": _ledger_quantity(warehouse, account, symbol),
                "breaks": report.sessions[-1].breaks}
    return report


def _ledger_quantity(warehouse, account: str, symbol: str) -> float:
    """The quantity of `symbol` in the ledger's latest position snapshot of `account`."""
    rows = warehouse.query("""select quantity from ledger_positions where broker = ? and symbol = ? and session =
                              (select max(session) from ledger_positions where broker = ?)""", [account, symbol, account])
    return float(rows["quantity"][0]) if rows.height else 0.0


def _split_prices(by_session: dict, symbol: str, ex_date: date, ratio: float) -> dict:
    """Traded prices from `ex_date` on are the old ones divided by `ratio` (the data fakes do the same)."""
    return {s: {sym: tuple(p / ratio for p in prices) if sym == symbol and s >= ex_date else prices
                for sym, prices in day.items()} for s, day in by_session.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A paper account traded against a venue's fakes on 127.0.0.1.")
    parser.add_argument("--venue", choices=VENUES, default="alpaca")
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--split-day", type=int, default=12)
    parser.add_argument("--symbols", type=int, default=20)
    args = parser.parse_args(argv)
    report = run_paper_account(args.venue, args.sessions, args.split_day, args.symbols)
    print(report.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
