"""Adopting an account that already holds positions, on the paper simulator and the real
services the daily assets call: refused to trade before, recorded once, 0 breaks after."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.brokers.simulator import PaperSimulator, SimulatorConfig
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.orders import OrderIntent, OrderType, Side, TimeInForce
from trading_pipeline.domain.risk.stops import StopPolicy, working_stops_from
from trading_pipeline.domain.safety import SubmissionKeys
from trading_pipeline.defs.resources import StrategyResource
from trading_pipeline.services import trading
from trading_pipeline.services.adoption import AccountNotAdopted, AdoptionRefused, adopt_account
from trading_pipeline.storage import adoption_store, market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

BOUGHT = date(2024, 3, 20)  # bought by hand after this close, filled at the next open
ADOPTED = date(2024, 3, 22)
AFTER = sessions_between(ADOPTED, date(2024, 4, 3))
PAPER = SubmissionKeys("paper", live_enabled=False, promotion_approved=False, kill_switch_engaged=False,
                       dry_run=False)


def predictions_for(warehouse: Warehouse, session: date) -> None:
    symbols = market_store.read_bars(warehouse, [session])["symbol"].sort()
    warehouse.replace_partition("predictions", session, pl.DataFrame({
        "session": [session] * len(symbols), "symbol": symbols,
        "score": [float((i * 7 + session.day) % len(symbols)) for i in range(len(symbols))],
        "model_version": ["1"] * len(symbols)}))


@pytest.fixture
def held_by_hand(tmp_path):
    """A simulator account a person traded by hand: 5 longs (about $50,000 left in cash), a
    manual stop on the first, a resting limit buy; the clock at ADOPTED."""
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    market = SyntheticMarket(seed=7, universe_size=10)
    market_store.append_history(warehouse, market.bars(sessions_between(date(2023, 1, 3), AFTER[-1])))
    for session in AFTER:
        predictions_for(warehouse, session)
    broker = PaperSimulator(warehouse, lambda s: market.bars([s]), SimulatorConfig(initial_cash=100_000.0))
    broker.advance_to(BOUGHT)
    closes = dict(market_store.read_bars(warehouse, [BOUGHT]).select("symbol", "close").iter_rows())
    symbols = sorted(closes)[:5]
    for symbol in symbols:
        broker.submit(OrderIntent(f"by-hand-{symbol}", symbol, Side.BUY, float(int(9_900 / closes[symbol])),
                                  session=BOUGHT, strategy="by hand"))
    broker.advance_to(ADOPTED)
    first = broker.positions()[0]
    broker.submit(OrderIntent("by-hand-stop", first.symbol, Side.SELL, first.quantity, OrderType.STOP,
                              TimeInForce.GTC, stop_price=round(first.avg_entry_price * 0.8, 2),
                              session=ADOPTED, strategy="by hand"))
    broker.submit(OrderIntent("by-hand-limit", sorted(closes)[6], Side.BUY, 1.0, OrderType.LIMIT, TimeInForce.GTC,
                              limit_price=0.5, session=ADOPTED, strategy="by hand"))
    assert len(broker.positions()) == 5 and 49_000 < broker.account().cash < 51_500
    return ledger, broker, market


def adopt(ledger, broker, **overrides):
    values = dict(strategy="daily_ml", stop_policy=StopPolicy(), keys=PAPER, operator="Ada",
                  reason="first run on the account I traded by hand")
    return adopt_account(ledger, broker, **{**values, **overrides})


def run_session(ledger, broker, session):
    strategy = StrategyResource(trading_env="paper")
    broker.advance_to(session)
    opener = trading.already_open(broker)
    trading.decide_session(ledger, broker.name, session, strategy, opener)
    trading.send_session(ledger, broker.name, session, strategy, opener)
    return trading.reconcile_session(ledger.warehouse, ledger, broker.name, session, opener)


def test_the_daily_run_refuses_an_account_holding_positions_until_it_is_adopted(held_by_hand):
    ledger, broker, _ = held_by_hand
    strategy = StrategyResource(trading_env="paper")
    with pytest.raises(AccountNotAdopted, match="adoption_job") as refused:
        trading.decide_session(ledger, broker.name, ADOPTED, strategy, trading.already_open(broker))
    assert "5 positions" in str(refused.value) and "2 open orders" in str(refused.value)
    assert ledger.session_plan(broker.name, "daily_ml", ADOPTED) is None  # nothing decided, nothing sent


def test_adoption_is_recorded_and_protects_every_long_and_leaves_foreign_orders_alone(held_by_hand):
    ledger, broker, _ = held_by_hand
    cash_before = broker.account().cash
    result = adopt(ledger, broker)
    record = adoption_store.adoption(ledger.warehouse, broker.name)
    assert (record["operator"], record["reason"], record["session"]) == \
        ("Ada", "first run on the account I traded by hand", ADOPTED)
    assert record["cash"] == pytest.approx(cash_before)
    assert result.positions.height == 5
    assert sorted(result.orders["action"]) == ["left alone", "left alone"]
    # four new stops: the fifth long already had the person's stop working, which stays
    assert result.stops.height == 4 and set(result.stops["status"]) == {"new"}
    open_at_broker = {o.client_order_id: o for o in broker.open_orders()}
    assert {"by-hand-stop", "by-hand-limit"} <= set(open_at_broker)
    stopped = {o.symbol for o in working_stops_from(open_at_broker.values())}
    assert stopped == {p.symbol for p in broker.positions()}


def test_after_adoption_daily_sessions_reconcile_with_no_break(held_by_hand):
    ledger, broker, _ = held_by_hand
    adopt(ledger, broker)
    for session in AFTER:
        result = run_session(ledger, broker, session)
        assert result.break_count == 0, (session, result.breaks.to_dicts())
        held = {p.symbol for p in broker.positions() if p.quantity > 0}
        assert held <= {o.symbol for o in working_stops_from(broker.open_orders())}, session


def test_without_adoption_every_held_position_would_be_a_break(held_by_hand):
    """What adoption prevents: the same account reconciled as if the ledger had started it flat."""
    ledger, broker, _ = held_by_hand
    result = trading.reconcile_session(ledger.warehouse, ledger, broker.name, ADOPTED, trading.already_open(broker))
    # the hand-made fills are recent enough to be reported (older ones: position mismatches)
    kinds = result.breaks["kind"].to_list()
    assert kinds.count("foreign_fill") == 5 and kinds.count("foreign_order") == 2
    held = {p.symbol for p in broker.positions()}
    assert held <= set(result.breaks["symbol"])


def test_adoption_happens_once_and_never_explains_a_later_break_away(held_by_hand):
    ledger, broker, market = held_by_hand
    adopt(ledger, broker)
    with pytest.raises(AdoptionRefused, match="adopted already.*Ada"):
        adopt(ledger, broker, operator="Bob", reason="again")
    run_session(ledger, broker, AFTER[0])
    # a trade by hand after the adoption: a break, and it stays one
    symbol = sorted(market.bars([AFTER[0]])["symbol"])[8]
    broker.submit(OrderIntent("by-hand-later", symbol, Side.BUY, 3.0, session=AFTER[0], strategy="by hand"))
    result = run_session(ledger, broker, AFTER[1])
    assert "foreign_fill" in set(result.breaks["kind"])


def test_an_account_the_ledger_already_trades_cannot_be_adopted(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    ledger = Ledger(warehouse)
    market = SyntheticMarket(seed=7, universe_size=10)
    market_store.append_history(warehouse, market.bars(sessions_between(date(2023, 1, 3), ADOPTED)))
    predictions_for(warehouse, ADOPTED)
    broker = PaperSimulator(warehouse, lambda s: market.bars([s]), SimulatorConfig())
    run_session(ledger, broker, ADOPTED)  # starts flat: no adoption needed
    with pytest.raises(AdoptionRefused, match="already trades.*reconciliation break"):
        adopt(ledger, broker)


def test_adoption_needs_a_name_and_a_reason(held_by_hand):
    ledger, broker, _ = held_by_hand
    with pytest.raises(AdoptionRefused, match="operator and reason"):
        adopt(ledger, broker, operator=" ", reason="")
    assert not adoption_store.is_adopted(ledger.warehouse, broker.name)


def test_the_operator_may_cancel_the_orders_found_open(held_by_hand):
    ledger, broker, _ = held_by_hand
    result = adopt(ledger, broker, cancel_foreign_orders=True)
    assert set(result.orders["action"]) == {"canceled"} and set(result.orders["status"]) == {"canceled"}
    # the person's stop is gone, so all five longs get the strategy's stop
    assert result.stops.height == 5
    assert {"by-hand-stop", "by-hand-limit"}.isdisjoint(o.client_order_id for o in broker.open_orders())
    assert run_session(ledger, broker, AFTER[0]).break_count == 0
