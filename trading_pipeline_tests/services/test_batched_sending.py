"""Orders sent in batches (`services.trading._LedgerVenue` with the paper simulator's
`submit_many`): a batch is marked `submitting` in one commit, taken by the venue in one
transaction and answered in one commit. What must hold: a process killed between a batch's
marking and its answers sends nothing twice and loses nothing on the re-run; the kill switch is
still read before every order; the venue's books take a batch whole or not at all, and take each
order exactly as one-at-a-time submits would."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.domain.execution import Position, WorkingBook, accept_order
from trading_pipeline.domain.execution.config import ExecutionConfig
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from trading_pipeline.services import trading
from trading_pipeline.storage.ledger import SUBMITTING, Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.benchmarks.bench_order_path import SESSION, order_path_account
from trading_pipeline_tests.brokers.sim_market import TableMarket

ORDERS = 60  # 30 entries with their stops: several batches when SEND_BATCH is 16


class Crash(BaseException):
    """The process dies here: nothing in the loop catches it, open transactions roll back."""


class CrashingVenue:
    """The simulator, killed once around its `submit_many` call number `at`: before the venue
    takes the batch ("before") or after it took it, before anyone hears the answer ("after")."""

    def __init__(self, simulator: PaperSimulator, at: int, when: str):
        self._simulator, self._at, self._when = simulator, at, when
        self.name, self.calls = simulator.name, 0

    def __getattr__(self, attribute):
        return getattr(self._simulator, attribute)

    def submit_many(self, intents, attached_to=None):
        self.calls += 1
        if self.calls == self._at and self._when == "before":
            raise Crash("killed after the batch was marked, before the venue took it")
        reports = self._simulator.submit_many(intents, attached_to)
        if self.calls == self._at and self._when == "after":
            raise Crash("killed after the venue took the batch, before its answers were recorded")
        return reports


def _account(tmp_path, name: str):
    warehouse = Warehouse(tmp_path / name / "warehouse.duckdb")
    simulator, ledger, strategy = order_path_account(warehouse, ORDERS)
    simulator.advance_to(SESSION)
    trading.decide_session(ledger, simulator.name, SESSION, strategy, trading.already_open(simulator))
    return warehouse, simulator, ledger, strategy


def _send(ledger, broker, strategy):
    return trading.send_session(ledger, broker.name, SESSION, strategy, trading.already_open(broker))


def _books(warehouse: Warehouse) -> dict[str, list]:
    return {
        "ledger": warehouse.query(
            """select client_order_id, symbol, side, quantity, order_type, stop_price, status,
                      broker_order_id, reason from ledger_orders order by client_order_id""").rows(),
        "venue": warehouse.query(
            """select client_order_id, broker_order_id, seq, symbol, side, quantity, status,
                      parent_client_order_id, waiting_for_parent from sim_orders order by seq""").rows(),
        "venue_account": warehouse.query("select cash, order_count from sim_accounts").rows(),
    }


@pytest.fixture(scope="module")
def calm(tmp_path_factory):
    """The same plan sent without a crash (with SEND_BATCH as in the tests)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(trading, "SEND_BATCH", 16)
    try:
        warehouse, simulator, ledger, strategy = _account(tmp_path_factory.mktemp("calm"), "calm")
        _send(ledger, simulator, strategy)
        return _books(warehouse)
    finally:
        patch.undo()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("batch", [1, 3])
def test_killed_between_a_batchs_marking_and_its_answers_the_rerun_sends_nothing_twice(
        tmp_path, monkeypatch, calm, batch, when):
    monkeypatch.setattr(trading, "SEND_BATCH", 16)
    warehouse, simulator, ledger, strategy = _account(tmp_path, "crashed")
    with pytest.raises(Crash):
        _send(ledger, CrashingVenue(simulator, batch, when), strategy)

    rows = ledger.planned_orders(simulator.name, strategy.strategy, SESSION)
    submitting = rows.filter(pl.col("status") == SUBMITTING)
    assert 0 < submitting.height <= 16  # the killed batch, and only it, is in doubt
    at_venue = set(warehouse.query("select client_order_id from sim_orders")["client_order_id"].to_list())
    in_doubt = set(submitting["client_order_id"].to_list())
    assert (in_doubt <= at_venue) if when == "after" else not (in_doubt & at_venue)
    answered = rows.filter(pl.col("status") == "new").height
    assert answered == 16 * (batch - 1)  # the batches before it are answered

    _send(ledger, simulator, strategy)  # the re-run, a new process with the same warehouse
    after = _books(warehouse)
    assert after == calm  # every order at the venue once, with the same numbers and answers
    assert len(after["venue"]) == ORDERS == after["venue_account"][0][1]


def test_a_batch_costs_three_commits_whatever_its_size(tmp_path, monkeypatch):
    """Marked in one commit, answered in one: 60 orders in batches of 16 are 4 markings and 4
    answers (one order at a time was 60 of each)."""
    monkeypatch.setattr(trading, "SEND_BATCH", 16)
    warehouse, simulator, ledger, strategy = _account(tmp_path, "count")
    calls: dict[str, list[int]] = {"mark_submitting": [], "record_status": []}
    for name, sizes in calls.items():
        method = getattr(ledger, name)
        monkeypatch.setattr(ledger, name, lambda *items, _m=method, _s=sizes: (_s.append(len(items)), _m(*items))[1])
    _send(ledger, simulator, strategy)
    assert calls["mark_submitting"] == [16, 16, 16, 12]
    assert calls["record_status"] == [16, 16, 16, 12]
    assert set(ledger.planned_orders(simulator.name, strategy.strategy, SESSION)["status"].to_list()) == {"new"}


def test_the_kill_switch_engaged_mid_plan_holds_every_order_after_it(tmp_path, monkeypatch):
    """The switch is read before each order joins a batch: the orders let through before it
    was engaged are sent, none after it reaches the venue."""
    monkeypatch.setattr(trading, "SEND_BATCH", 16)
    warehouse, simulator, ledger, strategy = _account(tmp_path, "kill")
    reads = {"count": 0}
    read = ledger.kill_switch_engaged

    def engaged_after_ten_entries(account):
        reads["count"] += 1
        if reads["count"] == 12:  # the cancels' read, then 10 entries' reads: the 11th entry's
            ledger.set_kill_switch(account, True, "drawdown breach", actor="risk monitor")
        return read(account)

    monkeypatch.setattr(ledger, "kill_switch_engaged", engaged_after_ten_entries)
    _send(ledger, simulator, strategy)
    rows = ledger.planned_orders(simulator.name, strategy.strategy, SESSION)
    sent = rows.filter(pl.col("status") == "new")
    held = rows.filter(pl.col("status") == "not_sent")
    assert sent.height == 20 and held.height == ORDERS - 20  # 10 entries and their stops
    at_venue = set(warehouse.query("select client_order_id from sim_orders")["client_order_id"].to_list())
    assert at_venue == set(sent["client_order_id"].to_list())


# -- the venue's side: a batch is taken whole, as one-at-a-time submits would take it ----------

D0 = date(2024, 3, 4)
MARKET = TableMarket({D0: {"AAA": (100, 101, 99, 100, 1e6), "BBB": (50, 51, 49, 50, 1e6)}})


def _intent(cid: str, symbol: str, side: Side = Side.BUY, quantity: float = 5, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol=symbol, side=side, quantity=quantity, session=D0,
                       strategy="daily_ml", **kw)


def _simulator(warehouse: Warehouse) -> PaperSimulator:
    simulator = PaperSimulator(warehouse, MARKET, SimulatorConfig(initial_cash=1_600.0))
    simulator.advance_to(D0)
    return simulator


def _batch() -> tuple[list[OrderIntent], dict[str, str]]:
    stop = _intent("a-stop", "AAA", Side.SELL, order_type=OrderType.STOP, stop_price=95.0,
                   time_in_force=TimeInForce.GTC)
    return ([_intent("a", "AAA"), stop, _intent("b", "BBB", quantity=12),
             _intent("c", "BBB", quantity=12), _intent("d", "AAA", Side.SELL)], {"a-stop": "a"})


def test_a_batch_is_taken_as_one_submit_after_another(tmp_path):
    intents, attached = _batch()
    one_by_one = _simulator(Warehouse(tmp_path / "one" / "w.duckdb"))
    expected = [one_by_one.submit(i, attached.get(i.client_order_id)) for i in intents]
    batched = _simulator(Warehouse(tmp_path / "batch" / "w.duckdb"))
    reports = batched.submit_many(intents, attached)
    assert reports == expected
    # the second buy of BBB overdraws, the sell has nothing to sell: refused with the same words
    assert [r.status for r in reports] == [OrderStatus.NEW, OrderStatus.NEW, OrderStatus.NEW,
                                           OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert batched.submit_many(intents, attached) == reports  # again: answered, nothing taken
    assert batched.warehouse.scalar("select order_count from sim_accounts") == len(intents)


def test_a_batch_that_fails_leaves_the_venues_books_as_they_were(tmp_path):
    simulator = _simulator(Warehouse(tmp_path / "w.duckdb"))
    intents, _ = _batch()
    with pytest.raises(LookupError, match="attached to order missing, which this account does not have"):
        simulator.submit_many(intents, {"a-stop": "missing"})
    assert simulator.warehouse.scalar("select count(*) from sim_orders") == 0
    assert simulator.warehouse.scalar("select order_count from sim_accounts") == 0
    assert [r.broker_order_id for r in simulator.submit_many(intents[:1])] == ["paper-000001"]


SYMBOLS = ("AAA", "BBB", "CCC")
INTENTS = st.lists(st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(list(Side)),
                             st.sampled_from([OrderType.MARKET, OrderType.LIMIT, OrderType.STOP]),
                             st.integers(1, 40), st.floats(5.0, 150.0)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(INTENTS, st.floats(500.0, 5_000.0), st.integers(0, 30))
def test_the_working_book_answers_as_accept_order_does(orders, cash, held):
    """Every figure and refusal the same, bit for bit, as `accept_order` given the working
    orders so far (its running totals add each order in the sums' own order)."""
    config = ExecutionConfig(slippage_bps=7.0)
    marks = {"AAA": (D0, 101.3), "BBB": (D0, 48.7), "CCC": (date(2024, 3, 1), 12.1)}
    positions = {"AAA": Position(float(held), 90.0)}
    book = WorkingBook(clock=D0, marks=marks, cash=cash, positions=positions, open_orders=[], config=config)
    working = []
    for number, (symbol, side, order_type, quantity, price) in enumerate(orders, start=1):
        intent = _intent(f"o{number}", symbol, side, quantity, order_type=order_type,
                         limit_price=price if order_type is OrderType.LIMIT else None,
                         stop_price=price if order_type is OrderType.STOP else None)
        expected = accept_order(intent, number=number, account="paper", clock=D0, marks=marks, cash=cash,
                                positions=positions, open_orders=list(working), config=config)
        assert book.accept(intent, number=number, account="paper") == expected
        if expected.status.is_open:
            working.append(expected)
