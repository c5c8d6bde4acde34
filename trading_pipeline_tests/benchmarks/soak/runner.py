"""The venue-independent part of the fault soak: rounds of intents sent through the project's
own order path with one randomised fault each, re-runs after failures as the daily loop would,
reconciliation, and a comparison of the ledger with what the fake venue really holds.

A venue plugs in with a `VenueHarness` (one per `soak_<venue>.py` module, each exposing
`open_harness(rng) -> ContextManager[VenueHarness]`). The harness owns the fake server and
its fault injectors; this module owns the loop, the counting and the table.

One round (one session, one fault):
  1. the venue's day rolls over (`end_of_day`), the venue trades what is open (`settle`),
     and the runner reconciles (order statuses, fills); then late events (corrections, late
     commission reports) arrive (`late_events`) and the runner reconciles again;
  2. a few new intents for the venue's new day are built and one fault is armed (`arm`), or the runner's own
     crash-between-send-and-ledger-write is planned;
  3. `submit_intents` runs; after any failure the runner calls `after_failure` and re-runs
     (a crash also drops the adapter and opens a new one, as a new process would), up to
     `max_attempts` times.
The figures are computed once at the end against `truth()`.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from trading_pipeline.brokers.base import Broker, BrokerError, OrderStateUnknown
from trading_pipeline.domain.orders import (
    FillReport,
    OrderIntent,
    OrderPurpose,
    OrderStatusReport,
    OrderType,
    Side,
    make_client_order_id,
)
from trading_pipeline.domain.safety import SubmissionDecision
from trading_pipeline.services.submission import submit_intents
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

# Faults the runner itself injects, for every venue: the process dies after the broker
# answered and before the ledger recorded it; optionally the re-run comes one or two venue days
# later (the case where a venue has forgotten the days' completed orders).
CRASH_AFTER_SEND = "crash_after_send"
CRASH_AFTER_SEND_NEXT_DAY = "crash_after_send_next_day"
RUNNER_FAULTS = (CRASH_AFTER_SEND, CRASH_AFTER_SEND_NEXT_DAY)

STRATEGY = "soak"
FIRST_SESSION = date(2031, 1, 6)
_SEND_ALL = SubmissionDecision(True, ())
_RECONCILE_ATTEMPTS = 4


class SimulatedCrash(Exception):
    """The process died between the broker's answer and the ledger write."""


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order the venue holds (or held), from the fake's own permanent record."""

    client_order_id: str
    broker_order_id: str
    status: str  # "open", "filled", "canceled" or "rejected"
    filled_quantity: float = 0.0


@dataclass(frozen=True, slots=True)
class VenueExecution:
    """One execution as the venue finally reports it (the latest correction, the final
    commission). `fill_id` is the identity the adapter is expected to report for it."""

    fill_id: str
    client_order_id: str
    quantity: float
    price: float
    commission: float


@dataclass(frozen=True, slots=True)
class VenueTruth:
    orders: Sequence[VenueOrder]
    executions: Sequence[VenueExecution]


class VenueHarness(Protocol):
    """What a venue's soak module provides around its fake server."""

    venue: str  # the column heading in the table, e.g. "ibkr"
    symbols: Sequence[str]  # symbols the fake quotes; intents are built from these
    fault_kinds: Sequence[str]  # the venue's own faults (the runner adds RUNNER_FAULTS)

    def open_broker(self) -> Broker:
        """A new adapter pointed at the fake, as a freshly started run would build it."""

    def arm(self, fault: str, rng: random.Random) -> None:
        """Arm one of `fault_kinds` (or note a runner fault) before a round's first attempt."""

    def after_failure(self, fault: str, error: BaseException, rng: random.Random) -> None:
        """An attempt failed: disarm what must not fire again, restore connectivity, etc."""

    def settle(self, rng: random.Random) -> None:
        """The venue trades: open orders fill (fully or partly) at the next open."""

    def late_events(self, rng: random.Random) -> None:
        """Events that arrive after the first reconcile: corrections, late commissions."""

    def end_of_day(self, today: date) -> None:
        """The venue's day rolls over to `today` (it may forget the earlier days' orders and
        executions). Intents sent afterwards carry `today` as their session."""

    def truth(self) -> VenueTruth:
        """Every order and execution the venue ever held, whatever its API still shows."""


@dataclass
class SoakFigures:
    venue: str
    seed: int
    faults: int = 0
    intended: int = 0
    sent: int = 0
    duplicated: int = 0  # extra venue orders for one intent
    lost: int = 0  # intents the venue never got and no break explains
    misrecorded: int = 0  # the ledger's final status contradicts the venue's
    fills_lost: float = 0.0  # shares executed at the venue the ledger lacks
    fills_double_counted: float = 0.0  # shares in the ledger beyond the venue's executions
    fill_figures_stale: int = 0  # executions whose ledger price or commission is not the final one
    breaks_raised: int = 0
    breaks_explained: int = 0
    breaks_without_order: int = 0  # explained breaks where the venue had no order after all
    attempts: int = 0
    seconds: float = 0.0
    faults_by_kind: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # one line per unexplained problem (first few)

    @property
    def clean(self) -> bool:
        return (self.duplicated == 0 and self.lost == 0 and self.misrecorded == 0
                and self.fills_lost == 0 and self.fills_double_counted == 0
                and self.breaks_raised == self.breaks_explained)


class _CrashAfterSend:
    """Wraps a broker: the `nth` submit reaches the venue, then the process 'dies'."""

    def __init__(self, broker: Broker, nth: int):
        self._broker, self._left = broker, nth

    def __getattr__(self, name):
        return getattr(self._broker, name)

    def submit(self, intent: OrderIntent) -> OrderStatusReport:
        report = self._broker.submit(intent)
        self._left -= 1
        if self._left == 0:
            raise SimulatedCrash(f"crashed after sending {intent.client_order_id}")
        return report


def make_intents(session: date, symbols: Sequence[str], rng: random.Random) -> list[OrderIntent]:
    """One to four market orders for distinct symbols, buys and sells."""
    chosen = rng.sample(list(symbols), k=min(len(symbols), rng.randint(1, 4)))
    intents = []
    for symbol in chosen:
        side = rng.choice((Side.BUY, Side.BUY, Side.SELL))
        intents.append(OrderIntent(
            client_order_id=make_client_order_id(STRATEGY, session, symbol, side,
                                                 OrderPurpose.REBALANCE),
            symbol=symbol, side=side, quantity=float(rng.randint(1, 50)),
            order_type=OrderType.MARKET, session=session, strategy=STRATEGY,
        ))
    return intents


def run_soak(harness: VenueHarness, *, faults: int, seed: int, max_attempts: int = 6,
             warehouse_dir: Path | None = None,
             progress: Callable[[int], None] | None = None) -> SoakFigures:
    """Run `faults` rounds (one fault each) against `harness` and count what went wrong."""
    rng = random.Random(seed)
    figures = SoakFigures(venue=harness.venue, seed=seed)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        folder = warehouse_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        warehouse = Warehouse(folder / f"soak_{harness.venue}_{seed}.duckdb")
        ledger = Ledger(warehouse)
        stack.enter_context(warehouse.held())  # one connection for the whole soak
        loop = _Loop(harness, ledger, rng, figures, max_attempts)
        stack.callback(loop.close)
        kinds = list(harness.fault_kinds) + list(RUNNER_FAULTS)
        for round_no in range(faults):
            loop.new_day()
            fault = rng.choice(kinds)
            figures.faults += 1
            figures.faults_by_kind[fault] += 1
            loop.submit_round(make_intents(loop.today, harness.symbols, rng), fault)
            if progress is not None:
                progress(round_no + 1)
        loop.new_day()
        _score(harness.truth(), ledger, loop, figures)
    figures.seconds = time.perf_counter() - started
    return figures


class _Loop:
    """The daily loop's order and reconcile steps, with the runner's crash injection."""

    def __init__(self, harness: VenueHarness, ledger: Ledger, rng: random.Random,
                 figures: SoakFigures, max_attempts: int):
        self.harness, self.ledger, self.rng = harness, ledger, rng
        self.figures, self.max_attempts = figures, max_attempts
        self.broker: Broker | None = None
        self.intents: dict[str, OrderIntent] = {}
        self.unknown: dict[str, str] = {}  # client order id -> the venue's explanation
        self.unresolved: dict[str, str] = {}  # client order id -> last error, attempts used up
        self.since = datetime(2000, 1, 1, tzinfo=UTC)
        self.today = FIRST_SESSION - timedelta(days=1)  # the venue's day; sessions follow it

    def close(self) -> None:
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.close()
            self.broker = None

    def _broker(self) -> Broker:
        if self.broker is None:
            self.broker = self.harness.open_broker()
        return self.broker

    def new_day(self) -> None:
        self.close()  # each day's run is a new process with a new adapter
        self.today += timedelta(days=1)
        self.harness.end_of_day(self.today)
        self.harness.settle(self.rng)
        self.reconcile()
        self.harness.late_events(self.rng)
        self.reconcile()

    def submit_round(self, intents: list[OrderIntent], fault: str) -> None:
        for intent in intents:
            self.intents[intent.client_order_id] = intent
        # what a failed run left unsent is sent by the next run, as the daily loop would
        intents = [self.intents[cid] for cid in self.unresolved] + intents
        self.unresolved = {}
        crash_at = None
        if fault in RUNNER_FAULTS:
            crash_at = self.rng.randint(1, len(intents))
        else:
            self.harness.arm(fault, self.rng)
        pending = list(intents)
        for attempt in range(1, self.max_attempts + 1):
            self.figures.attempts += 1
            broker = self._broker()
            if crash_at is not None and attempt == 1:
                broker = _CrashAfterSend(broker, crash_at)
            try:
                submit_intents(pending, broker, self.ledger, lambda _i: _SEND_ALL)
                self._note_unknown_outcomes(pending)
                return
            except OrderStateUnknown as exc:
                # the order path of today lets it propagate; the daily loop's answer is the
                # same as the new one: that intent is not sent again, a person decides
                cid = self._intent_in_flight(pending)
                self.unknown[cid] = str(exc)
                pending = [i for i in pending if i.client_order_id != cid]
                error: BaseException = exc
            except SimulatedCrash as exc:
                self.close()  # a new process: a new adapter
                if fault == CRASH_AFTER_SEND_NEXT_DAY:
                    for _ in range(self.rng.choice((1, 2))):
                        self.new_day()
                error = exc
            except (BrokerError, ConnectionError, TimeoutError, OSError) as exc:
                error = exc
            self.harness.after_failure(fault, error, self.rng)
            if not pending:
                return
        for intent in pending:
            row = self.ledger.order(intent.client_order_id)
            if row is None or row["status"] in ("submitting", "not_sent"):
                self.unresolved[intent.client_order_id] = f"{type(error).__name__}: {error}"

    def _intent_in_flight(self, pending: list[OrderIntent]) -> str:
        """The intent whose send raised: the first one the ledger still shows as submitting."""
        for intent in pending:
            row = self.ledger.order(intent.client_order_id)
            if row is not None and row["status"] == "submitting":
                return intent.client_order_id
        return pending[0].client_order_id

    def _note_unknown_outcomes(self, intents: list[OrderIntent]) -> None:
        for intent in intents:  # the new order path records the intent as unknown itself
            row = self.ledger.order(intent.client_order_id)
            if row is not None and row["status"] == "unknown":
                self.unknown.setdefault(intent.client_order_id, row["reason"] or "unknown")

    def reconcile(self) -> None:
        """Order statuses of acknowledged orders, then fills: as the reconcile step does."""
        for attempt in range(_RECONCILE_ATTEMPTS):
            try:
                broker = self._broker()
                open_rows = self.ledger.open_orders(broker.name)
                for row in open_rows.iter_rows(named=True):
                    if row["status"] == "submitting":
                        continue  # that is the order path's to resolve, on its re-run
                    report = broker.order_status(row["client_order_id"])
                    if report is not None:
                        self.ledger.record_status(report)
                fills: list[FillReport] = broker.fills(self.since)
                self.ledger.record_fills(fills, broker.name, self.today)
                return
            except (BrokerError, ConnectionError, TimeoutError, OSError):
                self.harness.after_failure("reconcile", RuntimeError("reconcile"), self.rng)
                if attempt == _RECONCILE_ATTEMPTS - 1:
                    self.figures.notes.append("reconcile failed after every attempt")


_TERMINAL = {"filled": "filled", "canceled": "canceled", "rejected": "rejected",
             "expired": "canceled"}


def _score(truth: VenueTruth, ledger: Ledger, loop: _Loop, figures: SoakFigures) -> None:
    venue_orders: dict[str, list[VenueOrder]] = {}
    for order in truth.orders:
        venue_orders.setdefault(order.client_order_id, []).append(order)
    figures.intended = len(loop.intents)
    for cid in loop.intents:
        held = venue_orders.get(cid, [])
        row = ledger.order(cid)
        status = None if row is None else row["status"]
        if held:
            figures.sent += 1
        if len(held) > 1:
            figures.duplicated += len(held) - 1
            figures.notes.append(f"duplicated {cid}: {len(held)} orders at the venue")
        explained = cid in loop.unknown or status == "unknown"
        if explained:
            figures.breaks_raised += 1
            figures.breaks_explained += 1
            figures.breaks_without_order += 0 if held else 1
        elif cid in loop.unresolved:  # the last run failed on it and no later run came
            figures.breaks_raised += 1
            figures.notes.append(f"unexplained: {cid} left {status}: {loop.unresolved[cid]}")
        if not held and not explained:
            figures.lost += 1
            figures.notes.append(f"lost {cid}: ledger {status}, nothing at the venue")
        if held and status in _TERMINAL and _TERMINAL[status] != held[0].status:
            figures.misrecorded += 1
            figures.notes.append(
                f"misrecorded {cid}: ledger {status}, venue {held[0].status}")
    # shares per order, so a venue's own fill ids need not match the fake's
    ledger_rows = ledger.fills(loop._broker().name).to_dicts()
    recorded: Counter = Counter()
    for row in ledger_rows:
        recorded[row["client_order_id"]] += row["quantity"]
    executed: Counter = Counter()
    for execution in truth.executions:
        executed[execution.client_order_id] += execution.quantity
    for cid in set(recorded) | set(executed):
        gap = executed[cid] - recorded[cid]
        if gap > 1e-9:
            figures.fills_lost += gap
            figures.notes.append(f"fills lost for {cid}: {recorded[cid]:g} of {executed[cid]:g}")
        elif gap < -1e-9:
            figures.fills_double_counted += -gap
            figures.notes.append(f"fills double-counted for {cid}: {recorded[cid]:g} for "
                                 f"{executed[cid]:g}")
    # the figures of each execution the ledger holds under the venue's fill id
    latest_row = {row["fill_id"]: row for row in ledger_rows}
    for execution in truth.executions:
        row = latest_row.get(execution.fill_id)
        if row is not None and (abs(row["price"] - execution.price) > 1e-9
                                or abs(row["commission"] - execution.commission) > 1e-9):
            figures.fill_figures_stale += 1


# -- the table and the command line ------------------------------------------------------

COLUMNS = (
    ("venue", "venue", "{}"), ("seed", "seed", "{}"), ("faults", "faults", "{}"),
    ("intended", "intended", "{}"), ("sent", "sent", "{}"), ("duplicated", "dup", "{}"),
    ("lost", "lost", "{}"), ("misrecorded", "misrec", "{}"), ("fills_lost", "fills lost", "{:g}"),
    ("fills_double_counted", "fills 2x", "{:g}"), ("fill_figures_stale", "fig stale", "{}"),
    ("breaks_raised", "breaks", "{}"), ("breaks_explained", "explained", "{}"),
    ("breaks_without_order", "no order", "{}"),
    ("attempts", "attempts", "{}"), ("seconds", "seconds", "{:.1f}"),
)


def format_table(rows: Sequence[SoakFigures]) -> str:
    """The per-venue table the soak prints."""
    cells = [[heading for _, heading, _ in COLUMNS]]
    cells += [[fmt.format(getattr(r, name)) for name, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.faults_by_kind.items()))
        lines.append(f"{r.venue} seed {r.seed} faults: {kinds}")
        lines.extend(f"  {note}" for note in r.notes[:10])
        if len(r.notes) > 10:
            lines.append(f"  ... and {len(r.notes) - 10} more")
    return "\n".join(lines)


def open_venue_harness(venue: str, rng: random.Random) -> AbstractContextManager[VenueHarness]:
    """The harness of `venue`, from module `soak_<venue>` beside this one."""
    module = importlib.import_module(f"{__package__}.soak_{venue}")
    return module.open_harness(rng)


def soak_venues(venues: Sequence[str], *, faults: int, seed: int) -> Iterator[SoakFigures]:
    for venue in venues:
        rng = random.Random(seed)
        with open_venue_harness(venue, rng) as harness:
            yield run_soak(harness, faults=faults, seed=seed)
