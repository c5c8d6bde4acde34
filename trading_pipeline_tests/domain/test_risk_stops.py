"""The protective-stop planner: one GTC sell stop per long position, replaced when the position
changes, cancelled when it closes or before a rebalance sell. Prices worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderPurpose,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
    make_client_order_id,
)
from trading_pipeline.domain.risk import (
    StopPolicy,
    WorkingStop,
    plan_stops,
    stop_client_order_id,
    unconfirmed_cancels,
    working_stops_from,
)

D1, D2 = date(2024, 3, 4), date(2024, 3, 5)
STRATEGY = "momentum"


def report(cid, symbol, quantity, status=OrderStatus.NEW, order_type=OrderType.STOP,
           side=Side.SELL, filled=0.0) -> OrderStatusReport:
    return OrderStatusReport(client_order_id=cid, symbol=symbol, side=side, quantity=quantity,
                             status=status, order_type=order_type, filled_quantity=filled)


def test_a_new_long_gets_one_gtc_sell_stop_five_percent_below_entry_rounded_to_cents():
    plan = plan_stops(D1, STRATEGY, {"AAA": 100}, {"AAA": 123.457}, [])

    assert plan.cancel == []
    (stop,) = plan.place
    assert stop.symbol == "AAA" and stop.side is Side.SELL and stop.quantity == 100
    assert stop.order_type is OrderType.STOP and stop.time_in_force is TimeInForce.GTC
    assert stop.stop_price == 117.28  # 123.457 x 0.95 = 117.28415
    assert stop.purpose is OrderPurpose.STOP_LOSS
    assert (stop.session, stop.strategy) == (D1, STRATEGY)
    assert stop.client_order_id == make_client_order_id(STRATEGY, D1, "AAA", Side.SELL,
                                                        OrderPurpose.STOP_LOSS)
    assert "new protective stop for 100 shares" in plan.notes[0]


def test_a_stop_under_one_dollar_keeps_four_decimals():
    (stop,) = plan_stops(D1, STRATEGY, {"PENNY": 1000}, {"PENNY": 0.8123}, []).place
    assert stop.stop_price == 0.7717  # 0.8123 x 0.95 = 0.771685


def test_a_stop_that_fits_is_kept_so_a_rerun_changes_nothing():
    first = plan_stops(D1, STRATEGY, {"AAA": 100}, {"AAA": 50.0}, [])
    working = [WorkingStop.from_intent(first.place[0])]

    again = plan_stops(D1, STRATEGY, {"AAA": 100}, {"AAA": 50.0}, working)
    later = plan_stops(D2, STRATEGY, {"AAA": 100}, {"AAA": 50.0},
                       [report(first.place[0].client_order_id, "AAA", 100)])

    assert (again.place, again.cancel) == ([], [])
    assert (later.place, later.cancel) == ([], [])


def test_a_resized_position_cancels_the_old_stop_and_places_one_for_the_new_quantity():
    old_id = stop_client_order_id(STRATEGY, D1, "AAA")

    plan = plan_stops(D2, STRATEGY, {"AAA": 150}, {"AAA": 60.0}, [report(old_id, "AAA", 100)])

    assert plan.cancel == [old_id]
    (stop,) = plan.place
    assert (stop.quantity, stop.stop_price) == (150, 57.0)
    assert stop.client_order_id == stop_client_order_id(STRATEGY, D2, "AAA")
    assert stop.client_order_id != old_id
    assert "replace" in plan.notes[0]


def test_a_second_replacement_in_the_same_session_gets_a_new_deterministic_id():
    first_id = stop_client_order_id(STRATEGY, D2, "AAA")

    plan = plan_stops(D2, STRATEGY, {"AAA": 80}, {"AAA": 60.0}, [report(first_id, "AAA", 150)])
    # the first replacement has ended (filled in part, say): the ledger still knows its id
    after_ledger = plan_stops(D2, STRATEGY, {"AAA": 80}, {"AAA": 60.0}, [],
                              used_client_order_ids={first_id})

    (stop,) = plan.place
    assert plan.cancel == [first_id]
    assert stop.client_order_id == stop_client_order_id(STRATEGY, D2, "AAA", replacement=2)
    assert stop.client_order_id != first_id
    assert after_ledger.place[0].client_order_id == stop.client_order_id


def test_a_closed_position_cancels_its_stop():
    plan = plan_stops(D2, STRATEGY, {"AAA": 0}, {}, [report("stop-aaa", "AAA", 100)])
    assert (plan.place, plan.cancel) == ([], ["stop-aaa"])
    assert "position closed" in plan.notes[0]


def test_an_orphan_stop_for_a_symbol_not_held_is_cancelled():
    plan = plan_stops(D2, STRATEGY, {"AAA": 100}, {"AAA": 10.0},
                      [report("stop-aaa", "AAA", 100), report("stop-zzz", "ZZZ", 40)],
                      policy=StopPolicy())
    assert plan.cancel == ["stop-zzz"]
    assert plan.place == []  # AAA's stop fits (its stop price is not known, quantity matches)


def test_duplicate_stops_leave_exactly_one():
    plan = plan_stops(D2, STRATEGY, {"AAA": 100}, {"AAA": 10.0},
                      [report("a1", "AAA", 40), report("a2", "AAA", 100), report("a3", "AAA", 100)])
    assert plan.cancel == ["a1", "a3"] and plan.place == []


def test_finished_stops_are_ignored_and_a_partly_filled_one_counts_what_is_left():
    plan = plan_stops(D2, STRATEGY, {"AAA": 60, "BBB": 10}, {"AAA": 10.0, "BBB": 20.0}, [
        report("aaa-part", "AAA", 100, status=OrderStatus.PARTIALLY_FILLED, filled=40),
        report("bbb-old", "BBB", 10, status=OrderStatus.CANCELED),
    ])
    assert plan.cancel == []
    assert [(o.symbol, o.quantity) for o in plan.place] == [("BBB", 10)]


def test_a_changed_stop_price_replaces_a_stop_whose_price_is_known():
    policy = StopPolicy(stop_percent=0.10)
    working = WorkingStop("old", "AAA", 100, OrderType.STOP, stop_price=95.0)

    plan = plan_stops(D2, STRATEGY, {"AAA": 100}, {"AAA": 100.0}, [working], policy)

    assert plan.cancel == ["old"] and plan.place[0].stop_price == 90.0


def test_the_trailing_option_places_a_trailing_stop_with_trail_percent():
    plan = plan_stops(D1, STRATEGY, {"AAA": 100}, {}, [],
                      StopPolicy(trailing=True, trail_percent=0.08))
    (stop,) = plan.place
    assert stop.order_type is OrderType.TRAILING_STOP
    assert stop.trail_percent == 8.0 and stop.stop_price is None  # OrderIntent: 8.0 means 8 %
    assert stop.time_in_force is TimeInForce.GTC

    default_trail = plan_stops(D1, STRATEGY, {"AAA": 100}, {}, [], StopPolicy(trailing=True))
    assert default_trail.place[0].trail_percent == 5.0  # falls back to stop_percent


def test_switching_from_fixed_to_trailing_replaces_the_stop():
    plan = plan_stops(D2, STRATEGY, {"AAA": 100}, {}, [report("fixed", "AAA", 100)],
                      StopPolicy(trailing=True))
    assert plan.cancel == ["fixed"]
    assert plan.place[0].order_type is OrderType.TRAILING_STOP


def test_a_rebalance_sell_cancels_the_stop_and_only_the_rest_is_protected():
    def sell(symbol, quantity):
        return OrderIntent(client_order_id=f"rebalance-{symbol}", symbol=symbol, side=Side.SELL,
                           quantity=quantity, session=D2, strategy=STRATEGY)

    buy = OrderIntent(client_order_id="rebalance-CCC", symbol="CCC", side=Side.BUY, quantity=50)
    plan = plan_stops(D2, STRATEGY, {"AAA": 100, "BBB": 100, "CCC": 10},
                      {"AAA": 10.0, "BBB": 20.0, "CCC": 30.0},
                      [report("stop-aaa", "AAA", 100), report("stop-bbb", "BBB", 100),
                       report("stop-ccc", "CCC", 10)],
                      rebalance_orders=[sell("AAA", 100), sell("BBB", 40), buy])

    assert plan.cancel == ["stop-aaa", "stop-bbb"]  # CCC's bought shares are not held yet
    assert [(o.symbol, o.quantity, o.stop_price) for o in plan.place] == [("BBB", 60, 19.0)]
    assert any("cancel the stop before the rebalance sell of 100" in n for n in plan.notes)


def test_shorts_get_no_stop_and_lose_a_sell_stop_they_had():
    plan = plan_stops(D2, STRATEGY, {"SHRT": -50}, {"SHRT": 10.0}, [report("s", "SHRT", 50)])
    assert (plan.place, plan.cancel) == ([], ["s"])
    assert "short 50" in plan.notes[0]


def test_unconfirmed_cancels_name_symbols_whose_stop_did_not_end_cancelled():
    reports = [report("a", "AAA", 100, status=OrderStatus.CANCELED),
               report("b", "BBB", 100, status=OrderStatus.FILLED, filled=100),
               report("c", "CCC", 100, status=OrderStatus.NEW)]
    assert unconfirmed_cancels(reports) == {"BBB", "CCC"}


def test_working_stops_from_picks_open_sell_stops_only():
    orders = [report("stop", "AAA", 1),
              report("trail", "AAA", 1, order_type=OrderType.TRAILING_STOP),
              report("mkt", "AAA", 1, order_type=OrderType.MARKET),
              report("buy-stop", "AAA", 1, side=Side.BUY),
              report("done", "AAA", 1, status=OrderStatus.FILLED, filled=1)]
    assert [o.client_order_id for o in working_stops_from(orders)] == ["stop", "trail"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"stop_percent": 5}, "stop_percent is a fraction in (0, 1)"),
    ({"stop_percent": 0.0}, "stop_percent is a fraction in (0, 1)"),
    ({"trailing": True, "trail_percent": 8.0}, "trail_percent is a fraction"),
    ({"trail_percent": 0.08}, "trailing is off"),
])
def test_bad_policies_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StopPolicy(**kwargs)


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="no usable entry price for the long AAA"):
        plan_stops(D1, STRATEGY, {"AAA": 100}, {}, [])
    with pytest.raises(ValueError, match="is not a protective sell stop"):
        plan_stops(D1, STRATEGY, {"AAA": 100}, {"AAA": 1.0},
                   [report("mkt", "AAA", 100, order_type=OrderType.MARKET)])
    with pytest.raises(ValueError, match="position in AAA is nan"):
        plan_stops(D1, STRATEGY, {"AAA": float("nan")}, {"AAA": 1.0}, [])
    with pytest.raises(ValueError, match="strategy is empty"):
        plan_stops(D1, "", {"AAA": 1}, {"AAA": 1.0}, [])


positions = st.dictionaries(st.sampled_from(["AAA", "BBB", "CCC", "DDD"]),
                            st.integers(min_value=-50, max_value=500), max_size=4)
stops = st.lists(st.tuples(st.sampled_from(["AAA", "BBB", "CCC", "EEE"]),
                           st.integers(min_value=1, max_value=500)), max_size=6)


@given(positions, stops)
def test_after_the_plan_each_long_has_one_stop_for_its_size_and_nothing_else(held, working):
    reports = [report(f"w{i}", symbol, qty) for i, (symbol, qty) in enumerate(working)]
    plan = plan_stops(D2, STRATEGY, held, {s: 25.0 for s in held}, reports)

    remaining = [(r.symbol, r.quantity) for r in reports if r.client_order_id not in plan.cancel]
    remaining += [(o.symbol, o.quantity) for o in plan.place]
    assert sorted(remaining) == sorted((s, q) for s, q in held.items() if q > 0)
    ids = [o.client_order_id for o in plan.place]
    assert len(set(ids)) == len(ids) and not set(ids) & {r.client_order_id for r in reports}
