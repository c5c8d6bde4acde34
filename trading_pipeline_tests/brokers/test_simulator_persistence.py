"""The paper simulator's state lives in the warehouse: it survives restarts, its clock only
moves forward, processing a session twice changes nothing, and its books always balance."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_pipeline.brokers.base import BrokerUnavailable
from trading_pipeline.brokers.simulator import (
    BarDataError,
    PaperSimulator,
    SimulatorClockError,
    SimulatorConfig,
)
from trading_pipeline.brokers.simulator.store import TABLES
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.sim_market import TableMarket, frame

D0, D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6), date(2024, 3, 7)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BARS = {
    D0: {"AAA": (100, 101, 99, 100, 1e6), "BBB": (50, 51, 49, 50, 1e6)},
    D1: {"AAA": (102, 103, 101, 102, 1e6), "BBB": (50, 51, 48, 49, 1e6)},
    D2: {"AAA": (103, 104, 96, 97, 1e6), "BBB": (49, 50, 47, 48, 1e6)},
    D3: {"AAA": (98, 99, 95, 96, 1e6), "BBB": (48, 49, 46, 47, 1e6)},
}


def buy(cid, symbol="AAA", quantity=10, **kw):
    return OrderIntent(client_order_id=cid, symbol=symbol, side=Side.BUY, quantity=quantity, **kw)


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every row of every simulator table (created_at of the account aside), sorted."""
    tables = {}
    for table in TABLES:
        rows = warehouse.query(f"select * from {table}")
        if table == "sim_accounts":
            rows = rows.drop("created_at")
        tables[table] = sorted(rows.rows(), key=repr)
    return tables


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"


def test_a_new_simulator_on_the_same_file_sees_the_same_state(path):
    first = PaperSimulator(Warehouse(path), TableMarket(BARS))
    first.advance_to(D0)
    first.submit(buy("filled"))
    first.submit(buy("working", "BBB", order_type=OrderType.LIMIT, limit_price=47.5,
                     time_in_force=TimeInForce.GTC))
    first.advance_to(D1)
    before = (first.clock, first.order_status("filled"), first.open_orders(), first.positions(),
              first.account(), first.fills(since=EPOCH))
    first.close()

    # a different initial cash only seeds new accounts: this one keeps its own books
    second = PaperSimulator(Warehouse(path), TableMarket(BARS), SimulatorConfig(initial_cash=5.0))
    after = (second.clock, second.order_status("filled"), second.open_orders(), second.positions(),
             second.account(), second.fills(since=EPOCH))
    assert after == before
    assert second.clock == D1 and second.account().cash == pytest.approx(100_000 - 10 * 102.051 - 1)

    second.advance_to(D2)  # BBB trades down to 47: the order the first instance placed fills
    (fill,) = [f for f in second.fills(since=EPOCH) if f.client_order_id == "working"]
    assert fill.price == 47.5


def test_accounts_on_one_file_keep_separate_books(path):
    warehouse = Warehouse(path)
    alice = PaperSimulator(warehouse, TableMarket(BARS), account="alice")
    bob = PaperSimulator(warehouse, TableMarket(BARS), SimulatorConfig(initial_cash=1_000),
                         account="bob")
    alice.advance_to(D0)
    alice.submit(buy("same-id"))
    assert bob.clock is None and bob.order_status("same-id") is None
    bob.advance_to(D0)
    assert bob.submit(buy("same-id", quantity=1)).status is OrderStatus.NEW
    alice.advance_to(D1)
    assert alice.positions()[0].quantity == 10 and bob.positions() == []
    assert bob.account().cash == 1_000


def test_advance_to_the_same_session_twice_changes_nothing(path):
    warehouse = Warehouse(path)
    sim = PaperSimulator(warehouse, TableMarket(BARS))
    sim.advance_to(D0)
    sim.submit(buy("a"))
    sim.submit(OrderIntent(client_order_id="trail", symbol="BBB", side=Side.SELL, quantity=1,
                           order_type=OrderType.TRAILING_STOP, trail_percent=3.0,
                           time_in_force=TimeInForce.GTC))  # rejected: nothing held
    sim.submit(buy("gtc", "BBB", order_type=OrderType.LIMIT, limit_price=40.0,
                   time_in_force=TimeInForce.GTC))
    assert sim.advance_to(D2) == [D1, D2]
    once = snapshot(warehouse)
    assert sim.advance_to(D2) == []
    assert sim.advance_to(D1) == []  # backwards: also nothing
    assert PaperSimulator(warehouse, TableMarket(BARS)).advance_to(D2) == []
    assert snapshot(warehouse) == once


def test_orders_placed_at_d_never_fill_on_ds_bars(path):
    market = TableMarket({
        D0: {"AAA": (100, 101, 90, 100, 1e6)},  # would fill a 95 limit, but the order is later
        D1: {"AAA": (100, 101, 99, 100, 1e6)},
    })
    sim = PaperSimulator(Warehouse(path), market)
    sim.advance_to(D0)
    sim.submit(buy("after-close", order_type=OrderType.LIMIT, limit_price=95.0,
                   time_in_force=TimeInForce.GTC, session=D0))
    sim.submit(buy("market", session=D0))
    for _ in range(2):
        assert sim.advance_to(D0) == []
    assert market.requested == [D0]  # D0's bars were read once, before the orders existed
    assert sim.fills(since=EPOCH) == []
    sim.advance_to(D1)
    assert sim.order_status("after-close").status is OrderStatus.NEW  # D1's low is 99
    (fill,) = sim.fills(since=EPOCH)
    assert fill.client_order_id == "market" and fill.filled_at.date() == D1


def test_an_order_decided_after_a_close_the_clock_has_not_reached_is_refused(path):
    sim = PaperSimulator(Warehouse(path), TableMarket(BARS))
    with pytest.raises(SimulatorClockError, match=r"advance_to\(session\) first"):
        sim.submit(buy("too-early"))
    sim.advance_to(D0)
    with pytest.raises(SimulatorClockError, match=r"advance_to\(2024-03-05\) first"):
        sim.submit(buy("from-the-future", session=D1))
    assert sim.order_status("from-the-future") is None  # nothing recorded: it can be sent later
    sim.advance_to(D1)
    assert sim.submit(buy("from-the-future", session=D1)).status is OrderStatus.NEW


def test_a_day_without_bars_stops_the_clock_before_it_and_keeps_what_was_done(path):
    market = TableMarket({D0: BARS[D0], D1: BARS[D1], D3: BARS[D3]})  # D2 is missing
    sim = PaperSimulator(Warehouse(path), market)
    sim.advance_to(D0)
    sim.submit(buy("a"))
    with pytest.raises(BarDataError, match="no bars for session 2024-03-06"):
        sim.advance_to(D3)
    assert sim.clock == D1
    assert sim.order_status("a").status is OrderStatus.FILLED


def test_bars_without_the_needed_columns_get_a_clear_error(path):
    sim = PaperSimulator(Warehouse(path), lambda s: frame(BARS[D0]).drop("volume"))
    with pytest.raises(BarDataError, match=r"lack the columns \['volume'\]"):
        sim.advance_to(D0)
    assert sim.clock is None


def test_a_weekend_date_moves_the_clock_to_the_friday_before(path):
    friday, saturday = date(2024, 3, 8), date(2024, 3, 9)
    market = TableMarket({d: BARS[D0] for d in sessions_between(D0, friday)})
    sim = PaperSimulator(Warehouse(path), market)
    assert sim.advance_to(saturday) == [friday]
    assert sim.clock == friday


def test_a_warehouse_locked_by_another_process_is_an_unavailable_broker(path):
    sim = PaperSimulator(Warehouse(path, lock_wait_seconds=0.5), TableMarket(BARS))
    sim.advance_to(D0)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BrokerUnavailable, match="locked by another process"):
            sim.submit(buy("while-locked"))
    finally:
        holder.communicate("", timeout=30)
    assert sim.order_status("while-locked") is None


# -- properties ----------------------------------------------------------------------

SYMBOLS = ("AAA", "BBB")
SESSIONS = sessions_between(date(2024, 4, 1), date(2024, 4, 5))  # 5 sessions


@st.composite
def markets(draw):
    table = {}
    closes = {s: draw(st.floats(20, 200)) for s in SYMBOLS}
    for session in SESSIONS:
        rows = {}
        for symbol in SYMBOLS:
            open_ = closes[symbol] * draw(st.floats(0.9, 1.1))
            close = open_ * draw(st.floats(0.9, 1.1))
            high = max(open_, close) * draw(st.floats(1.0, 1.05))
            low = min(open_, close) * draw(st.floats(0.95, 1.0))
            rows[symbol] = (open_, high, low, close, draw(st.sampled_from([50.0, 400.0, 1e5])))
            closes[symbol] = close
        table[session] = rows
    return table


@st.composite
def order_plans(draw):
    """For each session after the first: a few intents, prices relative to the last close."""
    plans = []
    for day in range(len(SESSIONS) - 1):
        intents = []
        for n in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(list(OrderType)))
            kw = {}
            if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                kw["limit_price"] = draw(st.floats(0.85, 1.15))
            if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
                kw["stop_price"] = draw(st.floats(0.85, 1.15))
            if kind is OrderType.TRAILING_STOP:
                kw["trail_percent"] = draw(st.floats(0.5, 10))
            intents.append(dict(
                cid=f"d{day}-{n}", symbol=draw(st.sampled_from(SYMBOLS)),
                side=draw(st.sampled_from(list(Side))), quantity=draw(st.integers(1, 300)),
                order_type=kind, tif=draw(st.sampled_from(list(TimeInForce))), relative=kw,
            ))
        plans.append(intents)
    return plans


@pytest.fixture(scope="module")
def shared_warehouse(tmp_path_factory) -> Warehouse:
    """One file for every example (each gets its own account): creating files is the slow part."""
    return Warehouse(tmp_path_factory.mktemp("property") / "warehouse.duckdb")


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(table=markets(), plans=order_plans())
def test_books_balance_and_no_fill_breaks_the_rules(shared_warehouse, table, plans):
    account = f"property-{uuid.uuid4().hex[:12]}"
    sim = PaperSimulator(shared_warehouse, TableMarket(table), SimulatorConfig(initial_cash=50_000),
                         account=account)
    sim.advance_to(SESSIONS[0])
    for session, intents in zip(SESSIONS[1:], plans):
        closes = sim.last_prices()
        for plan in intents:
            prices = {k: v if k == "trail_percent" else round(v * closes[plan["symbol"]], 2)
                      for k, v in plan["relative"].items()}
            sim.submit(OrderIntent(client_order_id=plan["cid"], symbol=plan["symbol"],
                                   side=plan["side"], quantity=plan["quantity"],
                                   order_type=plan["order_type"], time_in_force=plan["tif"],
                                   **prices))
        sim.advance_to(session)
    _check_books(sim, shared_warehouse, account, table, initial_cash=50_000)


def _check_books(sim: PaperSimulator, warehouse: Warehouse, account: str, table,
                 initial_cash: float):
    fills = warehouse.query(
        "select f.*, o.created_session from sim_fills f join sim_orders o "
        "using (account, client_order_id) where account = ?", [account])
    held: dict[str, float] = {}
    cash = initial_cash
    for row in fills.iter_rows(named=True):
        signed = row["quantity"] if row["side"] == "buy" else -row["quantity"]
        held[row["symbol"]] = held.get(row["symbol"], 0.0) + signed
        cash -= signed * row["price"] + row["commission"]
        # never on the bars of the session the order was decided in, or earlier
        assert row["session"] > row["created_session"]
        _, high, low, _, _ = table[row["session"]][row["symbol"]]
        assert low * (1 - 5e-4) - 1e-9 <= row["price"] <= high * (1 + 5e-4) + 1e-9
        assert row["quantity"] == int(row["quantity"]) and row["quantity"] >= 1
    per_bar = fills.group_by("session", "symbol").agg(pl.col("quantity").sum()).rows()
    for session, symbol, quantity in per_bar:
        assert quantity <= 0.1 * table[session][symbol][4] + 1e-9  # volume participation
    overfilled = warehouse.scalar(
        "select count(*) from sim_orders where account = ? and filled_quantity > quantity",
        [account])
    assert overfilled == 0

    snapshot_ = sim.account()
    positions = {p.symbol: p.quantity for p in sim.positions()}
    assert snapshot_.cash == pytest.approx(cash, abs=1e-6)
    assert positions == pytest.approx({s: q for s, q in held.items() if q != 0})
    assert all(q > 0 for q in positions.values())  # shorting is off: never below zero
    marks = sim.last_prices()
    assert snapshot_.equity == pytest.approx(cash + sum(q * marks[s] for s, q in positions.items()))
