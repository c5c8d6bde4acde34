"""Backtest of the daily loop's strategy on stored scores and bars: pure, in memory.

What it reproduces. Each session D is decided exactly as the daily loop decides it after D's
close (`services/trading.py`), by calling the same functions with the same inputs:
`risk.build_target` (D's scores and closes, the `var_lookback` adjusted-close returns to D,
the account's equity, the held shares), `rebalance_orders` (D's closes, `min_order_value`,
the account's buying power), the order-path `check_orders`, and `plan_stops` (cancel stale
stops, send the rebalance, place the new stops). The orders then meet D+1's bars through the
simulated venue's own code (`domain/execution`: acceptance, slippage, volume cap,
commission, stop triggers), the very code the paper simulator runs. So a replay of the daily
loop through the paper simulator gives the same positions and the same equity (see
`trading_pipeline_tests/defs/test_backtest_parity.py`).

How it runs. A loop over sessions, because the decision of D needs the holdings D's bars
left: it cannot be vectorised across time. Within a session the work is the daily loop's own
per-session code (Python, a few orders per session). The data work across symbols is done
once: bars and returns laid out as (sessions x symbols) arrays, each session's VaR window a
slice of them with its finite-return counts, the kill switch fed only the equity it reads.
About 3.5 ms of CPU a session at 50 symbols, 5.4 at 500 and 7 at 3,000 (3,000 x 20 years:
35 s; `trading_pipeline_tests/benchmarks/bench_backtest.py`): a fixed part (the VaR figures of
the few candidates, the venue's orders) and a part that grows with the scored symbols
(reading their scores and closes, the history check).

What the daily loop does that the backtest models, and what it refuses:
- The kill switch is modelled: after each session the equity history is checked with
  `evaluate_kill_switch`; once engaged it stays engaged (clearing it needs a person), entries
  are held back from the next session on, and with `flatten_on_kill_switch` the target is
  emptied. An emergency stop engaged by hand is not modelled.
- The order-path re-check: `check_orders` is run again; the target re-check is not, because it
  is `build_target`'s own final check on the same inputs, which passed. A failed check holds
  back orders that add exposure, as in the daily loop.
- Orders are always sent: dry-run and the live keys do not apply to a backtest.
- A session where the daily loop would fail (no scores, no bars, no target within the limits)
  stops the backtest with an error naming the session: there is no honest way to guess what
  the loop would have held.
- Configs the simulated venue cannot trade are refused: fractional targets on a whole-share
  venue, or a long-short book where short selling is off (every such order would be rejected).
- The decisions of the last session are not made: their orders would fill after the window.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.calendar import sessions_back, sessions_between
from trading_pipeline.domain.execution import (
    AccountFigures,
    Bar,
    ExecutionConfig,
    Position,
    SimOrder,
    accept_order,
    account_figures,
    cancel_order,
    process_session,
)
from trading_pipeline.domain.market.bars import BAR_SCHEMA
from trading_pipeline.domain.orders import FillReport, OrderIntent, OrderPurpose, OrderStatus
from trading_pipeline.domain.risk import (
    ConstructionConfig,
    KillSwitchRules,
    Mode,
    PortfolioInputError,
    RiskLimitBreach,
    StopPolicy,
    evaluate_kill_switch,
    working_stops_from,
)
from trading_pipeline.domain.risk.var import ReturnMatrix
from trading_pipeline.domain.safety import SubmissionKeys, may_submit
from trading_pipeline.domain.session_plan import (
    STOP_FILLED_FIRST,
    PlanPolicy,
    SessionState,
    execute_plan,
    plan_session,
)

SESSIONS_PER_YEAR = 252
ACCOUNT = "backtest"  # names the venue's order ids, as the simulator's account name does

DAILY_SCHEMA = {
    "session": pl.Date,
    "equity": pl.Float64,
    "cash": pl.Float64,
    "market_value": pl.Float64,
    "gross_exposure": pl.Float64,  # sum of |position value| / equity
    "positions": pl.Int64,
    "traded_value": pl.Float64,  # buys + sells filled on the session
    "turnover": pl.Float64,  # traded_value / the previous session's equity
    "commission": pl.Float64,
    "fills": pl.Int64,
    "stop_fills": pl.Int64,
    "orders_sent": pl.Int64,  # decided after this session's close
    "orders_rejected": pl.Int64,
    "orders_held_back": pl.Int64,
    "kill_switch_engaged": pl.Boolean,  # as of this session's close
}
POSITIONS_SCHEMA = {
    "session": pl.Date,
    "symbol": pl.String,
    "quantity": pl.Float64,
    "avg_entry_price": pl.Float64,
    "market_price": pl.Float64,
}
FILLS_SCHEMA = {
    "session": pl.Date,
    "client_order_id": pl.String,
    "symbol": pl.String,
    "side": pl.String,
    "purpose": pl.String,
    "quantity": pl.Float64,
    "price": pl.Float64,
    "commission": pl.Float64,
}


class BacktestError(ValueError):
    """Inputs or a config the backtest cannot reproduce the daily loop from."""


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """The strategy as the daily loop runs it, plus the venue's execution rules.

    `min_order_value` and `var_lookback` are the construction limits' own, as in the daily
    loop (`StrategyResource` feeds both from one setting). `strategy` names the client order
    ids, which the stop planner compares; it changes no figure.
    """

    strategy: str = "daily_ml"
    construction: ConstructionConfig = field(default_factory=ConstructionConfig)
    stop_policy: StopPolicy = field(default_factory=StopPolicy)
    kill_switch: KillSwitchRules = field(default_factory=KillSwitchRules)
    flatten_on_kill_switch: bool = False
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    initial_cash: float = 100_000.0
    # each entry carries its stop, active from its fill, as the simulator and the venues that
    # can hold one do (the daily loop asks its broker); off: stops from the next session only
    attach_stops: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.strategy, str) or not self.strategy:
            problems.append("strategy must be a non-empty name (it keys the order ids)")
        if isinstance(self.initial_cash, bool) or not isinstance(self.initial_cash, (int, float)) \
                or not math.isfinite(self.initial_cash) or self.initial_cash <= 0:
            problems.append(f"initial_cash must be a positive amount, got {self.initial_cash!r}")
        if self.construction.allow_fractional and not self.execution.allow_fractional:
            problems.append("construction.allow_fractional is on but the venue trades whole shares "
                            "only (execution.allow_fractional is off): every fractional order "
                            "would be rejected; turn both on or both off")
        if self.construction.mode is Mode.LONG_SHORT and not self.execution.allow_short:
            problems.append("a long_short book needs execution.allow_short: the venue would "
                            "reject every short sale")
        if problems:
            raise BacktestError("invalid BacktestConfig: " + "; ".join(problems))

    @property
    def var_lookback(self) -> int:
        return self.construction.limits.var_lookback


@dataclass(frozen=True)
class BacktestResult:
    daily: pl.DataFrame  # DAILY_SCHEMA plus daily_pnl, daily_return, peak_equity, drawdown
    positions: pl.DataFrame  # POSITIONS_SCHEMA: holdings at each session's close
    fills: pl.DataFrame  # FILLS_SCHEMA
    summary: dict[str, float]
    first_session: date
    last_session: date
    notes: tuple[str, ...]


def run_backtest(scores: pl.DataFrame, bars: pl.DataFrame,
                 config: BacktestConfig = BacktestConfig()) -> BacktestResult:
    """Trade `scores` (session, symbol, score; decided at each session's close) on `bars`
    (BAR_SCHEMA) as the daily loop would, from the first to the last scored session.

    The scored sessions must be consecutive XNYS sessions, each with bars, and the bars must
    reach `var_lookback` sessions before the first one (the daily loop's VaR window).
    """
    scores, bars = _checked_inputs(scores, bars, config)
    sessions = scores["session"].unique().sort().to_list()
    layout = _Layout.of(bars)
    prices = _Prices(bars, sessions, layout)
    scores_by_session = {key[0]: frame.select("symbol", "score") for key, frame in
                         scores.partition_by("session", as_dict=True, maintain_order=True).items()}
    returns = _Returns(bars, layout)

    venue = _Venue(config.execution, config.initial_cash, prices)
    venue.start(0)
    daily: list[dict] = []
    position_rows: list[dict] = []
    fill_rows: list[dict] = []
    notes: list[str] = []
    track = _EquityTrack()
    engaged = False
    for index, session in enumerate(sessions):
        fills: list[FillReport] = []
        if index:
            fills = venue.advance(index)
        figures = venue.account()
        previous_equity = track.last[1] if track.last else figures.equity
        track.add(session, figures.equity)
        decided = _Decided()
        if index < len(sessions) - 1:
            decided = _decide(session, venue, figures, scores_by_session[session],
                              prices.closes(index),
                              returns.matrix_window(session, config.var_lookback),
                              config, engaged)
            notes.extend(decided.notes)
        breach = evaluate_kill_switch(track.frame(), config.kill_switch)
        if breach.engage and not engaged:
            engaged = True
            notes.append(f"{session}: kill switch engaged: {'; '.join(breach.reasons)}")
        fill_rows += [_fill_row(session, fill, venue.purposes) for fill in fills]
        position_rows += venue.position_rows(session)
        daily.append(_daily_row(session, figures, fills, previous_equity, venue, decided, engaged))
    daily_frame = _with_curve(pl.DataFrame(daily, schema=DAILY_SCHEMA),
                              config.initial_cash)
    return BacktestResult(
        daily=daily_frame,
        positions=pl.DataFrame(position_rows, schema=POSITIONS_SCHEMA),
        fills=pl.DataFrame(fill_rows, schema=FILLS_SCHEMA),
        summary=summarise(daily_frame),
        first_session=sessions[0],
        last_session=sessions[-1],
        notes=tuple(notes),
    )


def summarise(daily: pl.DataFrame) -> dict[str, float]:
    """Annualised figures from a daily frame with equity, daily_return, drawdown, turnover and
    commission. The first session is the starting point (nothing has traded yet), so the
    return and turnover statistics use the sessions after it."""
    after_start = daily.slice(1)
    returns = after_start["daily_return"]
    mean = float(returns.mean()) if returns.len() else 0.0
    std = float(returns.std()) if returns.len() > 1 else 0.0
    initial = float(daily["equity"][0]) if daily.height else math.nan
    final = float(daily["equity"][-1]) if daily.height else math.nan
    return {
        "sessions": float(daily.height),
        "daily_return_mean": mean,
        "daily_return_std": std,
        "annualised_return": mean * SESSIONS_PER_YEAR,
        "annualised_volatility": std * math.sqrt(SESSIONS_PER_YEAR),
        "sharpe": mean / std * math.sqrt(SESSIONS_PER_YEAR) if std > 0 else 0.0,
        "max_drawdown": float(daily["drawdown"].min()) if daily.height else 0.0,  # <= 0
        "total_return": final / initial - 1.0 if initial > 0 else math.nan,
        "final_equity": final,
        "annualised_turnover": (float(after_start["turnover"].mean()) * SESSIONS_PER_YEAR
                                if after_start.height else 0.0),
        "total_commission": float(daily["commission"].sum()),
        "stop_fills": float(daily["stop_fills"].sum()),
        "kill_switch_sessions": float(daily["kill_switch_engaged"].sum()),
    }


class _EquityTrack:
    """The sessions of the equity history the kill switch reads: the first at the highest
    equity, the previous one and the last one. `evaluate_kill_switch` reads nothing else (the
    last session's loss against the previous one, the drawdown from the first high), so these
    rows give the same decision as the whole history, at a cost that does not grow with the
    years (the whole history made 20 years quadratic)."""

    def __init__(self) -> None:
        self.high: tuple[date, float] | None = None
        self.previous: tuple[date, float] | None = None
        self.last: tuple[date, float] | None = None

    def add(self, session: date, equity: float) -> None:
        self.previous, self.last = self.last, (session, equity)
        if self.high is None or equity > self.high[1]:  # strictly: the first high stays
            self.high = (session, equity)

    def frame(self) -> pl.DataFrame:
        rows = sorted({row for row in (self.high, self.previous, self.last) if row is not None})
        return pl.DataFrame(rows, schema={"session": pl.Date, "equity": pl.Float64}, orient="row")


# -- one session's decisions, as services/trading.py makes them ---------------------------


@dataclass
class _Decided:
    sent: int = 0
    rejected: int = 0
    held_back: int = 0
    notes: list[str] = field(default_factory=list)


def _decide(session: date, venue: _Venue, figures: AccountFigures, scores: pl.DataFrame,
            closes: pl.DataFrame, returns: ReturnMatrix, config: BacktestConfig,
            engaged: bool) -> _Decided:
    """The daily loop's own plan for the session (`plan_session`), carried out through the
    simulated venue by the daily loop's own order of steps (`execute_plan`)."""
    state = SessionState(equity=figures.equity, buying_power=figures.buying_power, held=venue.held(),
                         entry_prices=venue.entry_prices(),
                         working_stops=working_stops_from(venue.open_reports()),
                         kill_switch_engaged=engaged)
    policy = PlanPolicy(strategy=config.strategy, construction=config.construction,
                        stop_policy=config.stop_policy, flatten_on_kill_switch=config.flatten_on_kill_switch,
                        attach_stops=config.attach_stops)
    try:
        plan = plan_session(session, scores, closes, returns, state, policy)
    except (PortfolioInputError, RiskLimitBreach) as error:
        raise BacktestError(f"session {session}: the daily loop could not build a target, so "
                            f"the backtest cannot say what it would hold: {error}") from error
    decided = _Decided(notes=[f"{session}: order-path check failed: {f}" for f in plan.failures])
    # Orders are always sent in a backtest: only the kill switch and failed checks hold back.
    keys = SubmissionKeys(trading_env="local", live_enabled=False, promotion_approved=False,
                          kill_switch_engaged=engaged, dry_run=False, risk_failures=plan.failures)
    outcomes = execute_plan(plan, _PlanVenue(venue),
                            lambda order: may_submit(keys, reduces_exposure=order.reduces_exposure))
    for outcome in outcomes:
        if outcome.report is None:
            decided.held_back += outcome.reason != STOP_FILLED_FIRST
            continue
        decided.sent += 1
        decided.rejected += outcome.report.status is OrderStatus.REJECTED
    return decided


class _PlanVenue:
    """The in-memory venue as `execute_plan` sees it."""

    def __init__(self, venue: _Venue):
        self.venue = venue

    def cancel(self, client_order_id: str):
        return self.venue.cancel(client_order_id)

    def submit(self, intent: OrderIntent):
        return self.venue.submit(intent).report()

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent):
        placed = self.venue.submit(entry)
        return placed.report(), self.venue.submit(stop, parent=placed).report()

    def hold(self, intent: OrderIntent, reason: str) -> None:
        """Nothing to record: the count is kept by `_decide`."""


# -- the simulated venue, in memory ------------------------------------------------------


class _Venue:
    """The paper simulator's state (cash, positions, orders, last closes, clock) kept in memory
    and changed only by the shared venue rules, as `PaperSimulator` changes its tables."""

    def __init__(self, execution: ExecutionConfig, initial_cash: float, prices: _Prices):
        self.execution = execution
        self.prices = prices
        self.row = -1  # the last session processed, a row of `prices`
        self.cash = float(initial_cash)
        self.positions: dict[str, Position] = {}
        self.open_orders: dict[str, SimOrder] = {}  # by client order id, in submission order
        self.known_ids: set[str] = set()
        self.purposes: dict[str, str] = {}
        self.clock: date | None = None
        self.order_count = 0

    def start(self, row: int) -> None:
        self._mark(row)

    def advance(self, row: int) -> list[FillReport]:
        session = self.prices.sessions[row]
        outcome = process_session(session, self.prices.bars(row), list(self.open_orders.values()), self.cash,
                                  dict(sorted(self.positions.items())), self.execution)
        for order in outcome.orders:
            if order.status.is_open:
                self.open_orders[order.client_order_id] = order
            else:
                self.open_orders.pop(order.client_order_id, None)
        for symbol, position in outcome.positions.items():
            if position.quantity == 0:
                self.positions.pop(symbol, None)
            else:
                self.positions[symbol] = position
        self.cash = outcome.cash
        self._mark(row)
        return outcome.fills

    def _mark(self, row: int) -> None:
        """The session's bars become every traded symbol's last known close (`marks`)."""
        self.row = row
        self.clock = self.prices.sessions[row]

    def account(self) -> AccountFigures:
        return account_figures(self.cash, self.positions, self.closes(),
                               list(self.open_orders.values()), self.execution)

    def closes(self) -> dict[str, float]:
        """The last close of every symbol held or in a working order: all that valuing the
        account reads (every symbol's would cost a 3,000-entry dict per call)."""
        return {symbol: close for symbol, (_, close) in self._marks_of(()).items()}

    def _marks_of(self, extra: tuple[str, ...]) -> dict[str, tuple[date, float]]:
        symbols = {*self.positions, *(o.symbol for o in self.open_orders.values()), *extra}
        marks = ((s, self.prices.mark(s, self.row)) for s in sorted(symbols))
        return {s: mark for s, mark in marks if mark is not None}

    def held(self) -> dict[str, float]:
        return {s: p.quantity for s, p in sorted(self.positions.items()) if p.quantity != 0}

    def entry_prices(self) -> dict[str, float]:
        return {s: p.avg_entry_price for s, p in sorted(self.positions.items()) if p.quantity != 0}

    def open_reports(self):
        return [order.report() for order in self.open_orders.values()]

    def submit(self, intent: OrderIntent, parent: SimOrder | None = None) -> SimOrder:
        """`parent`: the entry `intent` is a contingent stop of (see `accept_order`)."""
        if intent.client_order_id in self.known_ids:
            raise BacktestError(f"order id {intent.client_order_id} used twice: the daily loop "
                                "would not send it again, and the backtest cannot tell which won")
        self.order_count += 1
        # the marks acceptance reads: the order's symbol and those of working orders
        order = accept_order(intent, number=self.order_count, account=ACCOUNT, clock=self.clock,
                             marks=self._marks_of((intent.symbol,)), cash=self.cash, positions=self.positions,
                             open_orders=list(self.open_orders.values()), config=self.execution,
                             parent=parent)
        self.known_ids.add(intent.client_order_id)
        self.purposes[intent.client_order_id] = str(intent.purpose)
        if order.status.is_open:
            self.open_orders[order.client_order_id] = order
        return order

    def cancel(self, client_order_id: str):
        order = cancel_order(self.open_orders.pop(client_order_id), self.clock)
        return order.report()

    def position_rows(self, session: date) -> list[dict]:
        closes = self.closes()
        return [{"session": session, "symbol": s, "quantity": p.quantity,
                 "avg_entry_price": p.avg_entry_price, "market_price": closes.get(s)}
                for s, p in sorted(self.positions.items()) if p.quantity != 0]


# -- inputs and outputs ------------------------------------------------------------------


def _checked_inputs(scores: pl.DataFrame, bars: pl.DataFrame,
                    config: BacktestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    missing = [c for c in ("session", "symbol", "score") if c not in scores.columns]
    if missing:
        hint = " (rename `prediction` to `score`)" if "prediction" in scores.columns else ""
        raise BacktestError(f"scores lack the columns {missing}{hint}: pass session, symbol, score")
    if scores.is_empty():
        raise BacktestError("scores are empty: nothing to backtest")
    missing = [c for c in BAR_SCHEMA if c not in bars.columns]
    if missing:
        raise BacktestError(f"bars lack the columns {missing}: pass the BAR_SCHEMA frame "
                            f"({', '.join(BAR_SCHEMA)})")
    scores = scores.select(pl.col("session").cast(pl.Date), pl.col("symbol").cast(pl.String),
                           pl.col("score").cast(pl.Float64)).sort("session", "symbol")
    # bars are laid out by (session, symbol), never read in row order: no sort (4 s at 3,000 x 20 y)
    bars = bars.select(pl.col(c).cast(t) for c, t in BAR_SCHEMA.items())
    sessions = scores["session"].unique().sort().to_list()
    gaps = sorted(set(sessions_between(sessions[0], sessions[-1])) - set(sessions))
    if gaps:
        shown = ", ".join(str(s) for s in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
        raise BacktestError(f"scores skip {len(gaps)} sessions between {sessions[0]} and "
                            f"{sessions[-1]} ({shown}): the daily loop cannot run a session "
                            "without predictions; pass scores for every session of the window")
    unpriced = sorted(set(sessions) - set(bars["session"].unique().to_list()))
    if unpriced:
        raise BacktestError(f"no bars for the scored sessions {[str(s) for s in unpriced[:5]]}: "
                            "load the bars of every session of the window")
    window_start = sessions_back(sessions[0], config.var_lookback + 1)[0]
    if bars["session"].min() > window_start:
        raise BacktestError(
            f"bars start on {bars['session'].min()}, but the first scored session "
            f"{sessions[0]} needs bars from {window_start} ({config.var_lookback} sessions of "
            "returns for VaR, as in the daily loop): load more history or start the scores later")
    used = bars.filter(pl.col("session").is_in(sessions))
    prices = ("open", "high", "low", "close")
    bad = used.filter(pl.any_horizontal(
        *(pl.col(c).is_null() | ~pl.col(c).is_finite() | (pl.col(c) <= 0) for c in prices),
        pl.col("volume").is_null() | ~pl.col("volume").is_finite() | (pl.col("volume") < 0)))
    if bad.height:
        first = bad.sort("session", "symbol").row(0, named=True)
        raise BacktestError(f"{bad.height} bars of the window are unusable, e.g. {first['symbol']} "
                            f"on {first['session']}: prices must be positive and volume zero or more")
    return scores, bars


class _Prices:
    """The scored sessions' bars as (sessions x symbols) arrays, NaN where a symbol has no bar.

    A session's bars are a mapping built on lookup (`bars`): the venue reads the bars of the
    symbols it has orders in, a few of thousands. A symbol's mark (its last close and the session
    it is from, as the paper simulator keeps them) is read through the row of its latest bar."""

    def __init__(self, bars: pl.DataFrame, sessions: list[date], layout: _Layout):
        """`sessions`: the scored ones, each among the layout's. A symbol of the layout without a
        bar in them has a column of NaN: it is never traded, and has no mark."""
        self.sessions: list[date] = list(sessions)
        self.symbols: list[str] = layout.symbols
        self.column = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._symbol_series = pl.Series("symbol", self.symbols, dtype=pl.String)
        # every bar laid out, then the scored sessions' rows read: a view where they are one run
        # of the layout's rows (as consecutive sessions are), else a copy of those rows
        rows = np.searchsorted(_day_numbers(layout.sessions), _day_numbers(self.sessions))
        scored = slice(int(rows[0]), int(rows[-1]) + 1) if rows[-1] - rows[0] + 1 == len(rows) else rows
        self.fields = {name: _scatter(bars, name, layout.sessions, layout.symbols,
                                      (layout.rows, layout.columns))[scored]
                       for name in ("open", "high", "low", "close", "volume")}
        has_bar = ~np.isnan(self.fields["close"])
        row_numbers = np.where(has_bar, np.arange(len(self.sessions))[:, None], -1)
        self.latest_row = np.maximum.accumulate(row_numbers, axis=0).astype(np.int32)

    def bars(self, row: int) -> _SessionBars:
        return _SessionBars(self, row)

    def closes(self, row: int) -> pl.DataFrame:
        """symbol, close of the session's bars, in symbol order."""
        close = self.fields["close"][row]
        traded = ~np.isnan(close)
        return pl.DataFrame({"symbol": self._symbol_series.filter(traded), "close": close[traded]})

    def mark(self, symbol: str, row: int) -> tuple[date, float] | None:
        column = self.column.get(symbol)
        if column is None or row < 0:
            return None
        latest = int(self.latest_row[row, column])
        return None if latest < 0 else (self.sessions[latest], float(self.fields["close"][latest, column]))


class _SessionBars(Mapping):
    """One session's bars by symbol, each `Bar` made when it is read."""

    def __init__(self, prices: _Prices, row: int):
        self.prices, self.row = prices, row

    def __getitem__(self, symbol: str) -> Bar:
        column = self.prices.column.get(symbol)
        fields = self.prices.fields
        if column is None or np.isnan(fields["close"][self.row, column]):
            raise KeyError(symbol)
        return Bar(*(float(fields[name][self.row, column])
                     for name in ("open", "high", "low", "close", "volume")))

    def __iter__(self):
        traded = ~np.isnan(self.prices.fields["close"][self.row])
        return (symbol for symbol, has in zip(self.prices.symbols, traded) if has)

    def __len__(self) -> int:
        return int((~np.isnan(self.prices.fields["close"][self.row])).sum())


@dataclass(frozen=True)
class _Layout:
    """Every bar's place in one (sessions x symbols) array: the bars' sessions and symbols,
    sorted, and each bar's (row, column). Laid out once for the prices and the returns (naming
    16 M bars' symbols costs a second at 3,000 x 20 years)."""

    sessions: list[date]
    symbols: list[str]
    rows: np.ndarray
    columns: np.ndarray
    present: np.ndarray  # (sessions x symbols): a bar is there

    @classmethod
    def of(cls, bars: pl.DataFrame) -> _Layout:
        sessions = bars["session"].unique().sort().to_list()
        symbols = bars["symbol"].unique().sort().to_list()
        rows, columns = _grid(bars, sessions, symbols)
        present = np.zeros((len(sessions), len(symbols)), dtype=bool)
        present[rows, columns] = True
        if int(present.sum()) < bars.height:
            twice = bars.group_by("session", "symbol").len().filter(pl.col("len") > 1).sort("session", "symbol")
            first = twice.row(0, named=True)
            raise BacktestError(f"bars hold {twice.height} (session, symbol) pairs more than once, e.g. "
                                f"{first['symbol']} on {first['session']} ({first['len']} bars): keep one "
                                "bar per symbol and session (the backtest cannot tell which one traded)")
        return cls(sessions, symbols, rows, columns, present)


def _day_numbers(sessions: list[date]) -> np.ndarray:
    return pl.Series(sessions, dtype=pl.Date).to_physical().to_numpy()


def _grid(long: pl.DataFrame, sessions: list[date], symbols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (session, symbol) as (row, column) of a (sessions x symbols) array; both lists
    sorted and holding every session and symbol of `long`."""
    keys = _day_numbers(sessions)
    days = long["session"].cast(pl.Date).to_physical().to_numpy()
    rows = np.minimum(np.searchsorted(keys, days), max(len(keys) - 1, 0))
    if days.size and not np.array_equal(keys[rows], days):
        raise BacktestError("a bar's session is not among the sessions being laid out")
    columns = long["symbol"].cast(pl.Enum(symbols)).to_physical().to_numpy()
    return rows, columns


def _scatter(long: pl.DataFrame, value: str, sessions: list[date], symbols: list[str],
             grid: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A long frame's `value` as a (sessions x symbols) array, NaN where there is no row: what
    a pivot gives, without polars' pivot cost at thousands of columns (40 s for 3,000)."""
    rows, columns = grid if grid is not None else _grid(long, sessions, symbols)
    matrix = np.full((len(sessions), len(symbols)), np.nan)
    matrix[rows, columns] = long[value].cast(pl.Float64).to_numpy()
    return matrix


class _Returns:
    """Adjusted-close returns for every session's VaR window, computed once.

    `window(D)` holds exactly what `services.data_quality.clean_returns_history` reads from the warehouse
    for D (the returns of the `lookback` sessions to D, each on the symbol's previous bar
    within the window, null when that bar is older), but wide: one column a symbol, the form
    `build_target` also accepts. `matrix_window(D)` is the same as a `ReturnMatrix`: a slice of
    one (sessions x symbols) array, which is what makes 3,000 symbols affordable (a polars
    filter of a 3,000-column frame costs more than the rest of a session's decision).
    """

    def __init__(self, bars: pl.DataFrame, layout: _Layout | None = None):
        layout = layout or _Layout.of(bars)
        self.sessions: list[date] = layout.sessions
        self._ordinals = [s.toordinal() for s in self.sessions]
        self.symbols = symbols = tuple(layout.symbols)
        adj_close = _scatter(bars, "adj_close", self.sessions, symbols, (layout.rows, layout.columns))
        present = layout.present
        # each bar's return on the symbol's previous bar, however far back (as a shift over the
        # symbol's bars gives it): the row of the latest bar strictly before each row
        row_numbers = np.arange(len(self.sessions), dtype=np.int32)[:, None]
        latest = np.maximum.accumulate(np.where(present, row_numbers, np.int32(-1)), axis=0)
        previous_row = np.vstack([np.full((1, len(symbols)), -1, dtype=np.int32), latest[:-1]])
        del latest
        measured = present & (previous_row >= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            previous_close = np.take_along_axis(adj_close, np.maximum(previous_row, 0), axis=0)
            self.values = np.where(measured, adj_close / previous_close - 1, np.nan)
        del adj_close, previous_close
        self._column = {symbol: i for i, symbol in enumerate(symbols)}
        # finite returns of each symbol up to each row: a window's counts are one subtraction
        finite = np.isfinite(self.values)
        self._finite_to = np.zeros((len(self.sessions) + 1, len(symbols)), dtype=np.int32)
        np.cumsum(finite, axis=0, dtype=np.int32, out=self._finite_to[1:])
        del finite
        # Returns measured across a gap in a symbol's bars (its previous bar is older than the
        # calendar's previous session): the only ones a window may have to blank. Few rows.
        calendar = sessions_between(self.sessions[0], self.sessions[-1])
        self._calendar = calendar
        self._calendar_row = {session: row for row, session in enumerate(calendar)}
        calendar_previous = dict(zip(calendar[1:], calendar[:-1]))
        never = date.max.toordinal()  # not a calendar session: always a candidate
        before = np.array([calendar_previous[s].toordinal() if s in calendar_previous else never
                           for s in self.sessions], dtype=np.int64)
        ordinals = np.array(self._ordinals, dtype=np.int64)
        previous_ordinal = ordinals[np.maximum(previous_row, 0)]
        gap_rows, gap_columns = np.nonzero(measured & (previous_ordinal < before[:, None]))
        self._gaps = list(zip(gap_rows.tolist(), gap_columns.tolist(),
                              previous_ordinal[gap_rows, gap_columns].tolist()))
        self._gap_rows = gap_rows.tolist()

    def matrix_window(self, session: date, lookback: int) -> ReturnMatrix:
        start = self._window_start(session, lookback).toordinal()
        first = bisect.bisect_right(self._ordinals, start)
        end = bisect.bisect_right(self._ordinals, session.toordinal())
        values = self.values[first:end]
        finite_counts = self._finite_to[end] - self._finite_to[first]
        # a symbol's first bar in the window whose previous bar is older (a gap in its bars):
        # the daily loop's window has no bar to measure that return from
        in_window = self._gaps[bisect.bisect_left(self._gap_rows, first):bisect.bisect_left(self._gap_rows, end)]
        stale = [(row - first, column) for row, column, previous in in_window if previous < start]
        if stale:
            rows, columns = (list(axis) for axis in zip(*stale))
            np.subtract.at(finite_counts, columns, np.isfinite(values[rows, columns]).astype(np.int32))
            values = values.copy()
            values[rows, columns] = np.nan
        return ReturnMatrix(self.sessions[first:end], self.symbols, values, column=self._column,
                            finite_counts=finite_counts)

    def _window_start(self, session: date, lookback: int) -> date:
        """`sessions_back(session, lookback + 1)[0]`, read from the calendar laid out once (the
        calendar library's lookup took a millisecond a session)."""
        row = self._calendar_row.get(session)
        if row is not None and row >= lookback:
            return self._calendar[row - lookback]
        return sessions_back(session, lookback + 1)[0]

    def window(self, session: date, lookback: int) -> pl.DataFrame:
        return self.matrix_window(session, lookback).to_frame()


def _fill_row(session: date, fill: FillReport, purposes: Mapping[str, str]) -> dict:
    return {"session": session, "client_order_id": fill.client_order_id, "symbol": fill.symbol,
            "side": str(fill.side), "purpose": purposes.get(fill.client_order_id),
            "quantity": fill.quantity, "price": fill.price, "commission": fill.commission}


def _daily_row(session: date, figures: AccountFigures, fills: list[FillReport],
               previous_equity: float, venue: _Venue, decided: _Decided, engaged: bool) -> dict:
    closes = venue.closes()
    gross = sum(abs(p.quantity * closes.get(s, p.avg_entry_price)) for s, p in venue.positions.items())
    traded = sum(f.quantity * f.price for f in fills)
    return {
        "session": session, "equity": figures.equity, "cash": figures.cash,
        "market_value": figures.market_value,
        "gross_exposure": gross / figures.equity if figures.equity > 0 else math.nan,
        "positions": len(venue.held()), "traded_value": traded,
        "turnover": traded / previous_equity if previous_equity > 0 else math.nan,
        "commission": sum(f.commission for f in fills), "fills": len(fills),
        "stop_fills": sum(venue.purposes.get(f.client_order_id) == OrderPurpose.STOP_LOSS
                          for f in fills),
        "orders_sent": decided.sent, "orders_rejected": decided.rejected,
        "orders_held_back": decided.held_back, "kill_switch_engaged": engaged,
    }


def _with_curve(daily: pl.DataFrame, initial_cash: float) -> pl.DataFrame:
    """The daily frame with the performance asset's own P&L, return and drawdown columns."""
    curve = perf.equity_curve(daily.select("session", "equity"), initial_cash)
    return daily.join(curve.drop("equity"), on="session", how="left", maintain_order="left")


# -- the same signal without the path-dependent parts, vectorised ---------------------------

TOPK_SCHEMA = {"session": pl.Date, "gross_return": pl.Float64, "turnover": pl.Float64,
               "cost": pl.Float64, "net_return": pl.Float64, "equity": pl.Float64}


def run_topk_vectorised(scores: pl.DataFrame, bars: pl.DataFrame, *, top_k: int = 10,
                        cost_bps: float = 10.0, initial_cash: float = 100_000.0) -> pl.DataFrame:
    """A quick screen of a signal: every session, equal weights (1/k) in the `top_k` best scores
    (ties: the symbol first in name order), held from that session's close to the next one's
    (adjusted closes; a symbol without both closes earns nothing); costs of `cost_bps` on the
    turnover (sum of |weight change|). One row per scored session but the last (TOPK_SCHEMA).

    Nothing here is the daily loop: no VaR, limits, whole shares, stops, kill switch, open
    fills or volume caps (`run_backtest` has them). Because no decision depends on the
    holdings, it runs across all sessions at once: seconds for 3,000 symbols x 20 years."""
    if not isinstance(top_k, int) or top_k < 1:
        raise BacktestError(f"top_k must be a whole number >= 1, got {top_k!r}")
    if not math.isfinite(cost_bps) or cost_bps < 0:
        raise BacktestError(f"cost_bps must be zero or more, got {cost_bps!r}")
    for name, frame, needed in (("scores", scores, ("session", "symbol", "score")),
                                ("bars", bars, ("session", "symbol", "adj_close"))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise BacktestError(f"{name} lack the columns {missing}: pass {', '.join(needed)}")
    scores = scores.select(pl.col("session").cast(pl.Date), pl.col("symbol").cast(pl.String),
                           pl.col("score").cast(pl.Float64))
    sessions = scores["session"].unique().sort().to_list()
    if len(sessions) < 2:
        raise BacktestError("scores cover fewer than two sessions: nothing is held overnight")
    symbols = sorted(set(scores["symbol"].unique().to_list()))
    used = bars.filter(pl.col("session").is_in(sessions) & pl.col("symbol").is_in(symbols))
    score = _scatter(scores, "score", sessions, symbols)
    close = _scatter(used, "adj_close", sessions, symbols)
    returns = np.nan_to_num(close[1:] / close[:-1] - 1.0, nan=0.0, posinf=0.0, neginf=0.0)
    # best first; NaN scores last; a stable sort keeps name order among equal scores
    order = np.argsort(np.where(np.isnan(score), np.inf, -score), axis=1, kind="stable")[:, :top_k]
    weights = np.zeros_like(score)
    rows = np.arange(len(sessions))[:, None]
    picked = np.take_along_axis(~np.isnan(score), order, axis=1)
    weights[rows, order] = np.where(picked, 1.0 / top_k, 0.0)
    gross = (weights[:-1] * returns).sum(axis=1)
    turnover = np.abs(np.diff(weights, axis=0, prepend=0.0)).sum(axis=1)[:-1]
    cost = turnover * cost_bps / 1e4
    net = gross - cost
    return pl.DataFrame({"session": sessions[:-1], "gross_return": gross, "turnover": turnover,
                         "cost": cost, "net_return": net,
                         "equity": initial_cash * np.cumprod(1.0 + net)}, schema=TOPK_SCHEMA)
