"""The simulated venue's pure fill rules (shared by the paper simulator and the backtest),
checked by hand, and the session engine's invariants (in memory, so hypothesis can try many
markets quickly)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from trading_pipeline.brokers.simulator import CommissionModel, SimulatorConfig
from trading_pipeline.domain.execution.fills import (
    Bar,
    Match,
    WorkingOrder,
    commission,
    limit_match,
    market_match,
    step,
    stop_limit_step,
    stop_match,
    tradable_quantity,
    trailing_stop_step,
)
from trading_pipeline.domain.execution.session import apply_fill, process_session
from trading_pipeline.domain.execution.venue import Position, SimOrder
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.orders import OrderStatus, OrderType, Side, TimeInForce

BAR = Bar(open=100.0, high=104.0, low=97.0, close=101.0, volume=1_000.0)


def test_market_orders_trade_on_the_open_with_slippage_against_us():
    assert market_match(Side.BUY, BAR, 5) == Match(pytest.approx(100.05), True)
    assert market_match(Side.SELL, BAR, 5) == Match(pytest.approx(99.95), True)


@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        (Side.BUY, 96.0, None),  # low 97 never reaches it
        (Side.BUY, 98.0, Match(98.0, False)),  # traded down to it during the day
        (Side.BUY, 102.0, Match(100.0, True)),  # already below the limit at the open
        (Side.SELL, 105.0, None),  # high 104 never reaches it
        (Side.SELL, 103.0, Match(103.0, False)),
        (Side.SELL, 99.0, Match(100.0, True)),  # the open is better than the limit
    ],
)
def test_limit_orders_trade_at_the_better_of_open_and_limit(side, limit, expected):
    assert limit_match(side, limit, BAR) == expected


@pytest.mark.parametrize(
    ("side", "stop", "expected"),
    [
        (Side.SELL, 96.0, None),
        (Side.SELL, 98.0, Match(98.0 * 0.9995, False)),
        (Side.SELL, 101.0, Match(100.0 * 0.9995, True)),  # opened below the stop: the open
        (Side.BUY, 105.0, None),
        (Side.BUY, 103.0, Match(103.0 * 1.0005, False)),
        (Side.BUY, 99.0, Match(100.0 * 1.0005, True)),  # opened above the stop: the open
    ],
)
def test_stop_orders_trade_at_the_stop_or_at_the_open_after_a_gap(side, stop, expected):
    match = stop_match(side, stop, BAR, 5)
    if expected is None:
        assert match is None
    else:
        assert (match.price, match.at_open) == (pytest.approx(expected.price), expected.at_open)


@pytest.mark.parametrize(
    ("side", "stop", "limit", "expected"),
    [
        (Side.SELL, 96.0, 95.0, (False, None)),  # not triggered
        (Side.SELL, 98.0, 97.5, (True, Match(98.0, False))),  # trigger at 98, within the limit
        (Side.SELL, 98.0, 99.0, (True, None)),  # trigger at 98 is below the 99 limit, no gap
        (Side.SELL, 101.0, 100.5, (True, Match(100.5, False))),  # gap to 100, back up to 100.5
        (Side.SELL, 101.0, 104.5, (True, None)),  # gap, but the high 104 misses the limit
        (Side.BUY, 103.0, 103.5, (True, Match(103.0, False))),
        (Side.BUY, 99.0, 98.0, (True, Match(98.0, False))),  # gap up to 100, back down to 98
    ],
)
def test_stop_limit_triggers_like_a_stop_then_acts_as_a_limit(side, stop, limit, expected):
    assert stop_limit_step(side, stop, limit, BAR) == expected


def test_triggered_stop_limit_keeps_working_as_a_plain_limit():
    order = WorkingOrder(Side.SELL, OrderType.STOP_LIMIT, limit_price=103.0, stop_price=98.0,
                         triggered=True)
    assert step(order, BAR, 5).match == Match(103.0, False)


def test_trailing_stop_checks_the_carried_stop_before_ratcheting():
    order = WorkingOrder(Side.SELL, OrderType.TRAILING_STOP, trail_amount=5.0, trail_reference=100.0)
    # the stop stands at 95 going in; low 97 keeps above it; the reference moves to the high
    first = trailing_stop_step(order, BAR, 5)
    assert first.match is None and first.order.trail_reference == 104.0
    # next bar: stop 99, a low of 98.5 trades through it
    second = trailing_stop_step(first.order, Bar(100.0, 100.5, 98.5, 99.0, 1_000.0), 5)
    assert second.match == Match(pytest.approx(99.0 * 0.9995), False)
    assert second.order.triggered


def test_buy_trailing_stop_follows_the_lows():
    order = WorkingOrder(Side.BUY, OrderType.TRAILING_STOP, trail_percent=10.0,
                         trail_reference=100.0)
    first = trailing_stop_step(order, BAR, 0)  # stop 110: the high 104 stays below
    assert first.match is None and first.order.trail_reference == 97.0
    second = trailing_stop_step(first.order, Bar(105.0, 108.0, 104.0, 107.0, 1_000.0), 0)
    # stop 97 x 1.1 = 106.70: opened below it at 105, traded up through it
    assert second.match == Match(pytest.approx(106.7), False)


def test_triggered_trailing_stop_remainder_trades_at_the_next_open():
    order = WorkingOrder(Side.SELL, OrderType.TRAILING_STOP, trail_percent=5.0,
                         trail_reference=100.0, triggered=True)
    assert step(order, BAR, 5).match == Match(pytest.approx(99.95), True)  # open x 0.9995


@pytest.mark.parametrize(
    ("remaining", "budget", "fractional", "expected"),
    [(250, 100, False, 100), (50, 100, False, 50), (10, 9.7, False, 9), (10, 9.7, True, 9.7),
     (10, 0.4, False, 0)],
)
def test_tradable_quantity_respects_the_volume_budget(remaining, budget, fractional, expected):
    assert tradable_quantity(remaining, budget, fractional) == pytest.approx(expected)


def test_commission_per_share_has_a_minimum_and_percent_has_none():
    per_share = SimulatorConfig()
    assert commission(per_share, 100, 50.0) == 1.0
    assert commission(per_share, 1_000, 50.0) == 5.0
    percent = SimulatorConfig(commission_model=CommissionModel.PERCENT_OF_NOTIONAL,
                              commission_percent=0.1)
    assert commission(percent, 10, 50.0) == pytest.approx(0.5)


def test_config_refuses_nonsense_with_the_field_named():
    with pytest.raises(ValueError, match="max_volume_participation must be in"):
        SimulatorConfig(max_volume_participation=0)
    with pytest.raises(ValueError, match="slippage_bps must be zero or positive"):
        SimulatorConfig(slippage_bps=-1)
    with pytest.raises(ValueError, match="not a valid CommissionModel"):
        SimulatorConfig(commission_model="flat")


@pytest.mark.parametrize(
    ("start", "signed", "price", "expected"),
    [
        (None, 10, 20.0, Position(10, 20.0)),
        (Position(10, 20.0), 10, 30.0, Position(20, 25.0)),  # grows: average moves
        (Position(10, 20.0), -4, 30.0, Position(6, 20.0)),  # shrinks: average stays
        (Position(10, 20.0), -10, 30.0, Position(0, 0.0)),
        (Position(10, 20.0), -15, 30.0, Position(-5, 30.0)),  # crosses zero: the new price
    ],
)
def test_apply_fill_keeps_the_average_entry_price(start, signed, price, expected):
    assert apply_fill(start, signed, price) == expected


# -- the session engine, in memory ---------------------------------------------------

SESSIONS = sessions_between(date(2024, 5, 1), date(2024, 5, 10))
FIRST_SUBMIT = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)

bars = st.builds(
    lambda o, up, down, close_frac, volume: Bar(o, o * up, o * down,
                                                o * down + (o * up - o * down) * close_frac, volume),
    st.floats(10, 500), st.floats(1.0, 1.08), st.floats(0.92, 1.0), st.floats(0, 1),
    st.sampled_from([0.0, 30.0, 1_000.0, 1e6]),
)


@st.composite
def sim_orders(draw, seq):
    kind = draw(st.sampled_from(list(OrderType)))
    price = lambda: draw(st.floats(9, 550))  # noqa: E731
    return SimOrder(
        client_order_id=f"o{seq}", broker_order_id=f"b{seq}", seq=seq,
        symbol=draw(st.sampled_from(["AAA", "BBB"])), side=draw(st.sampled_from(list(Side))),
        quantity=float(draw(st.integers(1, 500))), order_type=kind,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        limit_price=price() if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=price() if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        trail_percent=draw(st.floats(0.5, 20)) if kind is OrderType.TRAILING_STOP else None,
        trail_amount=None, status=OrderStatus.NEW, filled_quantity=0.0, avg_fill_price=None,
        reason=None, created_session=draw(st.sampled_from(SESSIONS[:4])), triggered=False,
        trail_reference=price() if kind is OrderType.TRAILING_STOP else None,
        submitted_at=FIRST_SUBMIT, updated_at=FIRST_SUBMIT,
    )


@settings(max_examples=150, deadline=None)
@given(
    orders=st.lists(st.integers(), max_size=12).flatmap(
        lambda xs: st.tuples(*(sim_orders(seq=i + 1) for i in range(len(xs))))),
    market=st.lists(st.fixed_dictionaries({"AAA": bars, "BBB": bars}),
                    min_size=len(SESSIONS), max_size=len(SESSIONS)),
    start=st.fixed_dictionaries({"AAA": st.integers(0, 300), "BBB": st.integers(0, 300)}),
)
def test_session_engine_conserves_cash_and_never_sells_what_is_not_held(orders, market, start):
    config = SimulatorConfig()
    cash = 1_000_000.0
    positions = {s: Position(float(q), 50.0) for s, q in start.items() if q}
    working = list(orders)
    expected_cash, expected_held = cash, {s: float(q) for s, q in start.items()}
    fill_count = 0
    for session, session_bars in zip(SESSIONS, market):
        outcome = process_session(session, session_bars, working, cash, positions, config)
        traded: dict[str, float] = {}
        fill_count += len(outcome.fills)
        for fill in outcome.fills:
            order = next(o for o in working if o.client_order_id == fill.client_order_id)
            assert session > order.created_session  # never on the bars it was decided after
            expected_cash -= fill.signed_quantity * fill.price + fill.commission
            expected_held[fill.symbol] += fill.signed_quantity
            traded[fill.symbol] = traded.get(fill.symbol, 0.0) + fill.quantity
        for symbol, quantity in traded.items():
            assert quantity <= 0.1 * session_bars[symbol].volume + 1e-9
        cash = outcome.cash
        positions = {**positions, **outcome.positions}
        changed = {o.client_order_id: o for o in outcome.orders}
        working = [changed.get(o.client_order_id, o) for o in working]
        working = [o for o in working if o.status.is_open]
        assert cash == pytest.approx(expected_cash)
        for symbol, quantity in expected_held.items():
            held = positions.get(symbol, Position(0.0, 0.0)).quantity
            assert held == pytest.approx(quantity) and held >= 0
        # DAY orders never outlive the first session they could trade in
        assert not [o for o in working
                    if o.time_in_force is TimeInForce.DAY and o.created_session < session]
    event("with fills" if fill_count else "without fills")  # shown by --hypothesis-show-statistics
