"""The daily trading steps after predictions, on one account's timeline.

An account at a broker is one present that moves forward: each session is decided, sent,
reconciled and scored once. `decide_session` plans the session whole and records the plan
before anything is sent; `send_session` works through the recorded plan and, after a crash,
sends exactly what was not yet acknowledged; `reconcile_session` and `performance_through`
write the session's account facts once. A session the account has moved past is a read-only
report of what was recorded; a session earlier than the account's latest that it never traded
is refused (`TimelineError`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.brokers.base import Broker, OrderStateUnknown
from trading_pipeline.domain import performance as perf
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from trading_pipeline.domain.risk import LimitCheck, evaluate_kill_switch, working_stops_from
from trading_pipeline.domain.safety import SubmissionDecision, SubmissionKeys, may_submit
from trading_pipeline.domain.session_plan import (
    PlannedOrder,
    PlanPolicy,
    SessionPlan,
    SessionState,
    Step,
    execute_plan,
    order_id_key,
    plan_session,
    relink_attached,
)
from trading_pipeline.services.adoption import require_adopted
from trading_pipeline.services.approval import live_approval
from trading_pipeline.services.data_quality import (
    clean_returns_history,
    last_good_closes,
    quarantined_symbols,
)
from trading_pipeline.services.reconcile import Reconciliation, reconcile
from trading_pipeline.storage.ledger import NOT_SENT, PLANNED, SUBMITTING, UNKNOWN, Ledger
from trading_pipeline.storage.warehouse import Warehouse

TARGETS = "target_portfolio"
TARGET_VAR = "target_var"
RISK_CHECKS = "risk_checks"
ORDERS = "submitted_orders"
BREAKS = "reconciliation_breaks"
PERFORMANCE = "performance"


BrokerOpener = Callable[[], AbstractContextManager[Broker]]  # opens the account's broker, closes it after


def already_open(broker: Broker) -> BrokerOpener:
    """A broker the caller opened and will close (replays, tests)."""
    return lambda: nullcontext(broker)


class TimelineError(RuntimeError):
    """A session this account cannot trade now: it has moved past it, or it never closed."""


def checks_frame(session: date, checks: list[LimitCheck] | tuple[LimitCheck, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        {"session": [session] * len(checks), "check": [c.name for c in checks],
         "limit": [float(c.limit) for c in checks], "actual": [float(c.actual) for c in checks],
         "passed": [c.passed for c in checks], "detail": [c.detail for c in checks]},
        schema={"session": pl.Date, "check": pl.String, "limit": pl.Float64, "actual": pl.Float64,
                "passed": pl.Boolean, "detail": pl.String},
    )


def read_account_table(warehouse: Warehouse, table: str, account: str, session: date) -> pl.DataFrame:
    """One account's rows of a per-session trading table."""
    if not warehouse.table_exists(table):
        return pl.DataFrame()
    return warehouse.query(f"select * from {table} where account = ? and session = ?", [account, session])


def _write_account_table(warehouse: Warehouse, table: str, account: str, session: date,
                         frame: pl.DataFrame) -> None:
    frame = frame.with_columns(pl.lit(session).cast(pl.Date).alias("session"), pl.lit(account).alias("account"))
    warehouse.replace_where(table, {"account": account, "session": session}, frame)


# -- the timeline ------------------------------------------------------------------------


def _moved_on(ledger: Ledger, account: str, strategy: str, session: date) -> date | None:
    """The account's latest planned session when it is after `session`, else None."""
    latest = ledger.latest_planned_session(account, strategy)
    return latest if latest is not None and latest > session else None


def check_session_allowed(ledger: Ledger, account: str, strategy: str, session: date) -> None:
    """Raise `TimelineError` for a session the account has moved past without trading it."""
    if ledger.session_plan(account, strategy, session) is None:
        latest = _moved_on(ledger, account, strategy, session)
        if latest is not None:
            raise _never_traded(account, session, latest)


def _never_traded(account: str, session: date, latest: date) -> TimelineError:
    return TimelineError(
        f"account {account!r} has moved on to session {latest}; session {session} was never "
        f"traded by it and cannot be now: an account moves forward only. To trade history, "
        "use an account of its own (a fresh TRADING_HOME, see the README's 'History and replays')")


# -- decide: the whole plan, recorded before anything is sent -------------------------------


@dataclass(frozen=True)
class DecidedSession:
    plan: dict  # the recorded session_plans row
    target: pl.DataFrame
    var_positions: pl.DataFrame
    checks: pl.DataFrame
    recorded_earlier: bool  # True: this run decided nothing, it reports the recorded plan


def decide_session(ledger: Ledger, account: str, session: date, strategy, open_broker: BrokerOpener, *,
                   run_id: str | None = None) -> DecidedSession:
    """Plan the session after D's close and record the plan whole, once per account. The
    broker is opened only when there is something to decide."""
    warehouse = ledger.warehouse
    recorded = ledger.session_plan(account, strategy.strategy, session)
    if recorded is None:
        check_session_allowed(ledger, account, strategy.strategy, session)
        with open_broker() as broker:
            _plan_and_record(ledger, broker, session, strategy, run_id)
    return DecidedSession(
        plan=ledger.session_plan(account, strategy.strategy, session),
        target=read_account_table(warehouse, TARGETS, account, session),
        var_positions=read_account_table(warehouse, TARGET_VAR, account, session),
        checks=read_account_table(warehouse, RISK_CHECKS, account, session),
        recorded_earlier=recorded is not None,
    )


def _plan_and_record(ledger: Ledger, broker: Broker, session: date, strategy,
                     run_id: str | None) -> SessionPlan:
    warehouse, account = ledger.warehouse, broker.name
    from trading_pipeline.services.modeling import read_predictions, unscored  # the account's own scores

    scores = read_predictions(warehouse, account, session)
    nothing = unscored(warehouse, session, account) if scores.is_empty() else None
    if scores.is_empty() and nothing is None:
        raise RuntimeError(f"no predictions stored for {session}: materialise predictions first")
    versions = scores["model_version"].unique().to_list() if "model_version" in scores.columns else []
    positions = broker.positions()
    open_orders = broker.open_orders()
    require_adopted(ledger, account, positions, open_orders)  # holdings the ledger never saw: adopt first
    snapshot = broker.account()
    engaged, _ = ledger.kill_switch_engaged(account)
    state = SessionState(
        equity=snapshot.equity, buying_power=snapshot.buying_power,
        held={p.symbol: p.quantity for p in positions},
        entry_prices={p.symbol: p.avg_entry_price for p in positions},
        working_stops=working_stops_from(open_orders),
        kill_switch_engaged=engaged,
        frozen=quarantined_symbols(warehouse, session))  # suspect bars: hold as is, no new order
    policy = PlanPolicy(strategy=strategy.strategy, construction=strategy.construction(),
                        stop_policy=strategy.stop_policy(),
                        flatten_on_kill_switch=strategy.kill_switch.flatten_on_kill_switch,
                        # where the venue can hold a stop until its entry fills, the entry carries it
                        attach_stops=bool(getattr(broker, "attaches_stops", False)),
                        id_key=order_id_key(strategy.strategy, account))  # paper and live ids differ
    # Suspect bars are not believed: a quarantined symbol is priced at its last good close and
    # its bad move stays out of the VaR window (services/data_quality).
    prices = last_good_closes(warehouse, session)
    if prices.is_empty():
        raise RuntimeError(f"no bars stored for {session}: materialise market_bars for {session} first")
    plan = plan_session(session, scores.select("symbol", "score") if nothing is None else scores, prices,
                        clean_returns_history(warehouse, session, strategy.risk.var_lookback), state, policy,
                        hold_cash=None if nothing is None else nothing.reason)  # no model: the target is cash
    # The target's tables first: if the process dies before the plan is recorded, a re-run
    # plans again and replaces them; once the plan is recorded they are never written again.
    _write_account_table(warehouse, TARGETS, account, session, plan.target.frame)
    _write_account_table(warehouse, TARGET_VAR, account, session, plan.target.var_figures.positions)
    _write_account_table(warehouse, RISK_CHECKS, account, session, checks_frame(session, plan.target.checks))
    ledger.record_plan(account, plan, strategy=strategy.strategy,
                       model_version=versions[0] if len(versions) == 1 else None,
                       equity=snapshot.equity, buying_power=snapshot.buying_power, run_id=run_id)
    return plan


# -- send: work through the recorded plan -------------------------------------------------


@dataclass(frozen=True)
class SubmissionSummary:
    outcomes: pl.DataFrame
    entries: SubmissionDecision  # what held back (or let through) orders that add exposure
    stops_placed: int
    stops_canceled: int
    risk_failures: tuple[str, ...]
    notes: tuple[str, ...]
    read_only: bool = False


def send_session(ledger: Ledger, account: str, session: date, strategy,
                 open_broker: BrokerOpener) -> SubmissionSummary:
    """Send what the recorded plan has not yet sent, in the plan's order; nothing twice."""
    recorded = ledger.session_plan(account, strategy.strategy, session)
    if recorded is None:
        latest = _moved_on(ledger, account, strategy.strategy, session)
        if latest is not None:
            raise _never_traded(account, session, latest)
        raise RuntimeError(f"no plan is recorded for {session} at account {account!r}: "
                           "materialise target_portfolio for that session first")
    failures = tuple(recorded["failures"])
    latest = _moved_on(ledger, account, strategy.strategy, session)
    if latest is not None:
        return _recorded_summary(ledger, account, session, strategy, recorded,
                                 f"read-only: account {account!r} has moved on to {latest}; "
                                 f"this is what was sent for {session}, nothing was sent now")
    plan, seqs, rows = _recorded_plan(ledger, account, strategy.strategy, session, recorded)

    def keys() -> SubmissionKeys:  # asked before every order: the kill switch may be engaged mid-plan
        return _keys(ledger, account, strategy, recorded["model_version"], failures)

    with open_broker() as broker:
        venue = _LedgerVenue(ledger, broker, account, strategy.strategy, session, seqs, rows)

        def decide(order: PlannedOrder) -> SubmissionDecision:
            if order.intent.symbol in venue.stalled:
                return SubmissionDecision(False, (f"an order in {order.intent.symbol} is in an unknown "
                                                  "state at the venue: nothing more is sent in it until "
                                                  "a person has checked the account",))
            return may_submit(keys(), reduces_exposure=order.reduces_exposure)

        execute_plan(plan, venue, decide, may_cancel=may_submit(keys(), reduces_exposure=True).send)
        venue.flush()  # the last batch
    return _recorded_summary(ledger, account, session, strategy, recorded, None,
                             canceled=venue.canceled)


def _recorded_summary(ledger: Ledger, account: str, session: date, strategy, recorded: dict,
                      read_only_note: str | None, canceled: int | None = None) -> SubmissionSummary:
    failures = tuple(recorded["failures"])
    rows = ledger.planned_orders(account, strategy.strategy, session)
    outcomes = pl.DataFrame({
        "client_order_id": rows["client_order_id"], "symbol": rows["symbol"], "side": rows["side"],
        "quantity": rows["quantity"], "status": rows["status"],
        "sent_now": pl.Series([False] * rows.height, dtype=pl.Boolean), "reason": rows["reason"],
    }, schema={"client_order_id": pl.String, "symbol": pl.String, "side": pl.String,
               "quantity": pl.Float64, "status": pl.String, "sent_now": pl.Boolean, "reason": pl.String})
    if read_only_note is None:
        _write_account_table(ledger.warehouse, ORDERS, account, session, outcomes)
    cancels = ledger.plan_cancels(account, strategy.strategy, session)
    entries = may_submit(_keys(ledger, account, strategy, recorded["model_version"], failures))
    stops = rows.filter(pl.col("purpose") == str(OrderPurpose.STOP_LOSS)).height
    notes = (read_only_note,) if read_only_note else ()
    return SubmissionSummary(outcomes, entries, stops,
                             canceled if canceled is not None else int(cancels["status"].is_not_null().sum()),
                             failures, notes, read_only=read_only_note is not None)


def _recorded_plan(ledger: Ledger, account: str, strategy: str, session: date,
                   recorded: dict) -> tuple[SessionPlan, dict[str, int], dict[str, dict]]:
    """The plan as recorded, its cancels' sequence numbers, and its orders' rows by id (read
    once: this run is the account's only writer, so a row changes only when it sends it)."""
    rows = list(ledger.planned_orders(account, strategy, session).iter_rows(named=True))
    orders = relink_attached(tuple(  # a stop sent with its entry goes with it again
        PlannedOrder(_intent(row), Step.STOP if row["purpose"] == str(OrderPurpose.STOP_LOSS) else Step.REBALANCE,
                     bool(row["reduces_exposure"]))
        for row in rows))
    cancels = ledger.plan_cancels(account, strategy, session)
    plan = SessionPlan(session=session, target=None, cancels=tuple(cancels["client_order_id"].to_list()),
                       orders=orders, failures=tuple(recorded["failures"]), notes=tuple(recorded["notes"]))
    return (plan, dict(zip(cancels["client_order_id"].to_list(), cancels["seq"].to_list())),
            {row["client_order_id"]: row for row in rows})


def _intent(row: dict) -> OrderIntent:
    return OrderIntent(
        client_order_id=row["client_order_id"], symbol=row["symbol"], side=Side(row["side"]),
        quantity=row["quantity"], order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]), limit_price=row["limit_price"],
        stop_price=row["stop_price"], trail_percent=row["trail_percent"], trail_amount=row["trail_amount"],
        session=row["session"], strategy=row["strategy"], purpose=OrderPurpose(row["purpose"]))


# The most orders sent as one batch: it bounds how long an order waits between the kill
# switch's reading for it and its sending (about a third of a millisecond an order).
SEND_BATCH = 100


class _LedgerVenue:
    """The broker as `execute_plan` sees it, through the ledger: every step is recorded, and a
    step already recorded is answered from the ledger instead of being done again.

    A venue that takes several orders at once (`submit_many`, the paper simulator) gets them in
    batches: the consecutive orders `execute_plan` let through (each asked of the kill switch
    before it joined), up to `SEND_BATCH`, sent when the batch is full, before a hold or a
    cancel, and at the end (`flush`). Such a `submit` answers None; the ledger's rows are the
    outcome. A batch costs three commits, whatever its size:
      1. its orders marked `submitting` (one commit). A crash before it: they are `planned`,
         nothing was sent, and the re-run decides them again.
      2. the venue takes them (one transaction of its own books, all or nothing). A crash
         between 1 and 2, or inside 2: they are `submitting` and not at the venue; the re-run
         sends them again, and the venue takes each once.
      3. the answers recorded (one commit). A crash between 2 and 3: they are `submitting`
         and at the venue; the re-run sends them again and the venue, idempotent by client
         order id, answers each as it stands without taking it again.
    So, as with one order at a time, nothing is sent twice and nothing is lost. Any other
    venue gets one order at a time: marked, sent, answered.
    """

    def __init__(self, ledger: Ledger, broker: Broker, account: str, strategy: str, session: date,
                 cancel_seqs: dict[str, int], recorded_rows: dict[str, dict]):
        self.ledger, self.broker, self.account = ledger, broker, account
        self.strategy, self.session, self.cancel_seqs = strategy, session, cancel_seqs
        self._recorded_rows = recorded_rows  # each is used once, then dropped: a later look asks the ledger
        self.stalled: set[str] = set()
        self.canceled = 0
        self._cancels = {row["client_order_id"]: row for row in
                         ledger.plan_cancels(account, strategy, session).iter_rows(named=True)}
        self._batches = callable(getattr(broker, "submit_many", None))
        self._pending: list[tuple[OrderIntent, str | None, str | None]] = []  # intent, its entry, its status

    def cancel(self, client_order_id: str) -> OrderStatusReport:
        self.flush()
        done = self._cancels.get(client_order_id)
        if done is not None and done["status"] is not None:
            order = self.ledger.order(client_order_id)
            return OrderStatusReport(client_order_id, order["symbol"] if order else "", Side.SELL,
                                     order["quantity"] if order else 0.0, OrderStatus(done["status"]))
        report = self.broker.cancel(client_order_id)
        self.ledger.record_cancel(self.account, self.strategy, self.session,
                                  self.cancel_seqs[client_order_id], report)
        self.canceled += 1
        return report

    def _row(self, client_order_id: str) -> dict | None:
        row = self._recorded_rows.pop(client_order_id, None)
        return row if row is not None else self.ledger.order(client_order_id)

    def submit(self, intent: OrderIntent) -> OrderStatusReport | None:
        row = self._row(intent.client_order_id)
        status = row["status"] if row else None
        if status == UNKNOWN:
            self.stalled.add(intent.symbol)
            return None
        if status not in (PLANNED, NOT_SENT, SUBMITTING, None):
            return _report_from_row(row)  # acknowledged by an earlier run: never sent twice
        if self._batches:
            self._join_batch((intent, None, status))
            return None
        if status != SUBMITTING:
            self.ledger.mark_submitting(intent.client_order_id)
        # From here a crash leaves the row `submitting`: the next run asks the venue, whose
        # `submit` is idempotent by client order id, or raises OrderStateUnknown.
        try:
            report = self.broker.submit(intent)
        except OrderStateUnknown as unknown:
            self._unknown((intent,), unknown)
            return None
        self.ledger.record_status(report)
        return report

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent):
        """The entry and its attached stop in one venue call, recorded as `submit` records one
        order: answered from the ledger once both are acknowledged, never sent twice."""
        rows = [self._row(entry.client_order_id), self._row(stop.client_order_id)]
        statuses = [row["status"] if row else None for row in rows]
        if UNKNOWN in statuses:
            self.stalled.add(entry.symbol)
            return None, None
        unsent = (PLANNED, NOT_SENT, SUBMITTING, None)
        if not any(status in unsent for status in statuses):
            return _report_from_row(rows[0]), _report_from_row(rows[1])
        if self._batches:  # both go, the acknowledged one too: the venue answers it from its record
            self._join_batch((entry, None, statuses[0]), (stop, entry.client_order_id, statuses[1]))
            return None, None
        self.ledger.mark_submitting(*(intent.client_order_id for intent, status in zip((entry, stop), statuses)
                                      if status != SUBMITTING))
        try:
            reports = self.broker.submit_with_stop(entry, stop)  # idempotent by both ids
        except OrderStateUnknown as unknown:
            self._unknown((entry, stop), unknown)
            return None, None
        self.ledger.record_status(*reports)
        return reports

    def hold(self, intent: OrderIntent, reason: str) -> None:
        self.flush()  # what was let through before this order goes first, in the plan's order
        row = self._row(intent.client_order_id)
        # Only what was never sent is held; a `submitting` order may be at the venue already
        # (reconciliation asks about it), and an answered one stays as answered.
        if row is not None and row["status"] in (PLANNED, NOT_SENT):
            self.ledger.hold(intent.client_order_id, reason)

    def _join_batch(self, *orders: tuple[OrderIntent, str | None, str | None]) -> None:
        self._pending.extend(orders)
        if len(self._pending) >= SEND_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send the batch waiting: marked in one commit, taken by the venue in one call, its
        answers recorded in one commit (see the class's docstring for why each crash is safe)."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.ledger.mark_submitting(*(intent.client_order_id for intent, _, status in batch
                                      if status != SUBMITTING))
        intents = [intent for intent, _, _ in batch]
        try:
            reports = self.broker.submit_many(
                intents, {intent.client_order_id: entry for intent, entry, _ in batch if entry is not None})
        except OrderStateUnknown as unknown:  # the venue cannot say which of them it has
            self._unknown(intents, unknown)
            return
        self.ledger.record_status(*reports)

    def _unknown(self, intents, unknown: OrderStateUnknown) -> None:
        for intent in intents:
            self.ledger.mark_unknown(intent.client_order_id, str(unknown))
        for symbol in dict.fromkeys(intent.symbol for intent in intents):
            self.ledger.record_risk_event(self.session, "order_state_unknown", str(unknown), symbol=symbol)
            self.stalled.add(symbol)


def _report_from_row(row: dict) -> OrderStatusReport:
    return OrderStatusReport(row["client_order_id"], row["symbol"], Side(row["side"]), row["quantity"],
                             OrderStatus(row["status"]), OrderType(row["order_type"]),
                             row["filled_quantity"] or 0.0, row["avg_fill_price"], row["broker_order_id"],
                             row["reason"])


def _keys(ledger: Ledger, account: str, strategy, model_version: str | None,
          failures: tuple[str, ...]) -> SubmissionKeys:
    engaged, _ = ledger.kill_switch_engaged(account)
    # Live only: the sensor's promotion and a person's approval, both for the very model version
    # that made the plan's scores (services/approval.py).
    promotion_approved, human_approved = (live_approval(ledger, strategy.strategy, model_version)
                                          if strategy.trading_env == "live" else (False, False))
    return SubmissionKeys(
        trading_env=strategy.trading_env,
        live_enabled=strategy.live_enabled,
        promotion_approved=promotion_approved,
        kill_switch_engaged=engaged,
        dry_run=strategy.dry_run,
        risk_failures=failures,
        human_approved=human_approved,
    )


# -- reconcile and score: the session's account facts, written once -------------------------


def reconcile_session(warehouse: Warehouse, ledger: Ledger, account: str, session: date,
                      open_broker: BrokerOpener) -> Reconciliation:
    recorded = ledger.account_snapshot(account, session)
    if recorded is not None:
        return Reconciliation(session, read_account_table(warehouse, BREAKS, account, session).drop(
            "account", "session", strict=False), ledger.positions_snapshot(account, session), recorded, 0,
            read_only=True)
    latest = ledger.latest_snapshot_session(account)
    if latest is not None and latest > session:
        raise TimelineError(
            f"account {account!r} was reconciled for {latest} already; {session} was never reconciled "
            "and cannot be now: what the broker shows today belongs to a later session")
    with open_broker() as broker:
        result = reconcile(broker, ledger, session)
    _write_account_table(warehouse, BREAKS, account, session, result.breaks)
    return result


@dataclass(frozen=True)
class PerformanceResult:
    curve: pl.DataFrame
    initial_equity: float
    kill_switch_engaged: bool
    kill_switch_reason: str | None
    kill_switch_newly_engaged: bool = False  # by this session's figures
    read_only: bool = False  # scored by an earlier run: nothing was written now


def performance_through(ledger: Ledger, broker_name: str, session: date,
                        strategy) -> PerformanceResult:
    """The equity curve to D; a daily-loss or drawdown breach engages the kill switch."""
    history = ledger.account_history(broker_name, session)
    if history.is_empty() or history["session"][-1] != session:
        raise RuntimeError(f"no account snapshot for {session} at {broker_name!r}: materialise "
                           "reconciled_positions for that session first")
    initial = float(history["equity"][0])
    curve = perf.equity_curve(history, initial)
    engaged, reason = ledger.kill_switch_engaged(broker_name)
    if not read_account_table(ledger.warehouse, PERFORMANCE, broker_name, session).is_empty() or \
            ledger.latest_snapshot_session(broker_name) != session:
        return PerformanceResult(curve, initial, engaged, reason, read_only=True)
    breach = evaluate_kill_switch(history.select("session", "equity"), strategy.kill_switch_rules())
    newly = breach.engage and not engaged
    if newly:  # before the row that marks the session scored: a crash here cannot lose it
        reason = "; ".join(breach.reasons)
        ledger.record_risk_event(session, "kill_switch", reason)
        ledger.set_kill_switch(broker_name, True, reason, actor="risk monitor")
        engaged = True
    _write_account_table(ledger.warehouse, PERFORMANCE, broker_name, session,
                         curve.filter(pl.col("session") == session))
    return PerformanceResult(curve, initial, engaged, reason, newly)
