"""Paper simulator scenarios whose fills were computed by hand from the bars written here.

Sessions used: D0 = Mon 2024-03-04 ... D4 = Fri 2024-03-08, D5 = Mon 2024-03-11 (New York
is on EST until 2024-03-10: the open is 14:30 UTC, mid-session 17:45 UTC, the close 21:00 UTC;
from D5 on it is EDT, one hour earlier). Default costs: 5 bps slippage on market and stop
fills, $0.005 a share with a $1.00 minimum per fill.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trading_pipeline.brokers.simulator import CommissionModel, PaperSimulator, SimulatorConfig
from trading_pipeline.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.sim_market import TableMarket

D0, D1, D2, D3, D4, D5 = (date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11))
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FLAT = (100.0, 100.0, 100.0, 100.0, 1e6)


def utc(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def simulator(tmp_path):
    """make(table, **config) -> a simulator whose clock stands at D0."""

    def make(table, **config) -> PaperSimulator:
        sim = PaperSimulator(Warehouse(tmp_path / "warehouse.duckdb"), TableMarket(table),
                             SimulatorConfig(**config))
        assert sim.advance_to(D0) == [D0]
        return sim

    return make


def order(cid, symbol="AAA", side=Side.BUY, quantity=100, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol=symbol, side=side, quantity=quantity, **kw)


def fills_of(sim: PaperSimulator, cid: str):
    return [f for f in sim.fills(since=EPOCH) if f.client_order_id == cid]


def test_market_order_decided_at_d_fills_at_the_next_open_plus_slippage(simulator):
    sim = simulator({
        D0: {"AAA": (10.0, 10.5, 9.5, 10.0, 1e6)},
        D1: {"AAA": (12.0, 12.5, 11.5, 12.2, 1e6)},
    })
    report = sim.submit(order("mkt", session=D0))
    assert report.status is OrderStatus.NEW

    assert sim.advance_to(D0) == []  # D0's bars were already processed: nothing may fill on them
    assert sim.order_status("mkt").status is OrderStatus.NEW
    assert sim.fills(since=EPOCH) == []

    assert sim.advance_to(D1) == [D1]
    (fill,) = fills_of(sim, "mkt")
    assert fill.price == pytest.approx(12.006)  # 12.00 open * 1.0005
    assert fill.filled_at == utc(D1, 14, 30)  # D1's open
    assert fill.commission == pytest.approx(1.00)  # 100 x $0.005 = $0.50, below the minimum
    account = sim.account()
    assert account.cash == pytest.approx(100_000 - 1_200.60 - 1.00)
    assert account.equity == pytest.approx(98_798.40 + 100 * 12.2)
    (position,) = sim.positions()
    assert (position.quantity, position.avg_entry_price, position.market_price) == \
        pytest.approx((100, 12.006, 12.2))


def test_stop_gapped_through_fills_at_the_open_not_the_stop(simulator):
    both = lambda a, b: {"AAA": a, "BBB": b}  # noqa: E731
    sim = simulator({
        D0: both((50, 50.5, 49.5, 50, 1e6), (50, 50.5, 49.5, 50, 1e6)),
        D1: both((50, 51, 49, 50, 1e6), (50, 51, 49, 50, 1e6)),
        D2: both((47, 48, 46, 46.5, 1e6), (47, 48, 46, 46.5, 1e6)),  # lows above 45: no trigger
        D3: both((42, 43, 40, 41, 1e6), (47, 47.5, 44, 44.5, 1e6)),  # AAA gaps below 45
    })
    sim.submit(order("buy-a", "AAA"))
    sim.submit(order("buy-b", "BBB"))
    sim.advance_to(D1)
    for symbol in ("AAA", "BBB"):
        sim.submit(order(f"stop-{symbol}", symbol, Side.SELL, order_type=OrderType.STOP,
                         stop_price=45.0, time_in_force=TimeInForce.GTC))
    sim.advance_to(D2)
    assert sim.order_status("stop-AAA").status is OrderStatus.NEW

    sim.advance_to(D3)
    (gapped,) = fills_of(sim, "stop-AAA")
    assert gapped.price == pytest.approx(41.979)  # the 42.00 open * 0.9995, not 45 * 0.9995
    assert gapped.filled_at == utc(D3, 14, 30)
    (touched,) = fills_of(sim, "stop-BBB")
    assert touched.price == pytest.approx(44.9775)  # reached intraday: the 45.00 stop * 0.9995
    assert touched.filled_at == utc(D3, 17, 45)
    assert sim.positions() == []


def test_trailing_stop_ratchets_over_several_bars_then_triggers(simulator):
    sim = simulator({
        D0: {"AAA": (100, 100.5, 99.5, 100, 1e6)},
        D1: {"AAA": (100, 100.6, 99.6, 100, 1e6)},
        D2: {"AAA": (101, 105, 99, 104, 1e6)},  # stop 90.00; reference rises to 105
        D3: {"AAA": (104, 112, 100, 110, 1e6)},  # stop 94.50; raising it to 100.80 first would trigger
        D4: {"AAA": (110, 111, 101.5, 102, 1e6)},  # stop 100.80; low 101.50 stays above
        D5: {"AAA": (101, 101.5, 95, 96, 1e6)},  # opens above 100.80, trades through it
    })
    sim.submit(order("buy", quantity=50))
    sim.advance_to(D1)
    sim.submit(order("trail", side=Side.SELL, quantity=50, order_type=OrderType.TRAILING_STOP,
                     trail_percent=10.0, time_in_force=TimeInForce.GTC))

    sim.advance_to(D4)
    assert sim.order_status("trail").status is OrderStatus.NEW
    assert fills_of(sim, "trail") == []

    sim.advance_to(D5)
    (fill,) = fills_of(sim, "trail")
    assert fill.quantity == 50
    assert fill.price == pytest.approx(100.7496)  # (112 * 0.9) * 0.9995
    assert fill.filled_at == utc(D5, 16, 45)  # mid-session, EDT
    assert sim.order_status("trail").status is OrderStatus.FILLED
    assert sim.positions() == []


def test_volume_limits_spread_a_fill_over_three_bars(simulator):
    sim = simulator({
        D0: {"AAA": (20, 20, 20, 20, 1000), "BBB": (20, 20, 20, 20, 1000)},
        D1: {"AAA": (20, 20.5, 19.5, 20.2, 1000), "BBB": (20, 20.5, 19.5, 20.2, 1000)},
        D2: {"AAA": (21, 21.5, 20.5, 21.2, 1000), "BBB": (21, 21.5, 20.5, 21.2, 1000)},
        D3: {"AAA": (22, 22.5, 21.5, 22.2, 1000), "BBB": (22, 22.5, 21.5, 22.2, 1000)},
    })
    sim.submit(order("gtc", "AAA", quantity=250, time_in_force=TimeInForce.GTC))
    sim.submit(order("day", "BBB", quantity=250))  # DAY: what the first bar cannot fill expires

    sim.advance_to(D1)  # 10 % of 1,000 shares = 100 a bar
    gtc = sim.order_status("gtc")
    assert (gtc.status, gtc.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 100)
    assert sim.account().buying_power < sim.account().cash  # the other 150 still reserve cash
    day = sim.order_status("day")
    assert (day.status, day.filled_quantity) == (OrderStatus.EXPIRED, 100)
    assert "expired" in day.reason

    sim.advance_to(D2)
    assert sim.order_status("gtc").filled_quantity == 200
    sim.advance_to(D3)
    gtc = sim.order_status("gtc")
    assert (gtc.status, gtc.filled_quantity) == (OrderStatus.FILLED, 250)
    assert [(f.quantity, round(f.price, 4)) for f in fills_of(sim, "gtc")] == \
        [(100, 20.01), (100, 21.0105), (50, 22.011)]
    assert gtc.avg_fill_price == pytest.approx((2001 + 2101.05 + 1100.55) / 250)  # 20.8104
    aaa = next(p for p in sim.positions() if p.symbol == "AAA")
    assert aaa.avg_entry_price == pytest.approx(20.8104)
    bbb_cost = 100 * 20.01 + 1.00
    assert sim.account().cash == pytest.approx(100_000 - 5_202.60 - 3 * 1.00 - bbb_cost)


def test_orders_in_one_symbol_share_the_bars_volume_in_submission_order(simulator):
    sim = simulator({
        D0: {"AAA": (20, 20, 20, 20, 1000)},
        D1: {"AAA": (20, 20.5, 19.5, 20, 1000)},
        D2: {"AAA": (20, 20.5, 19.5, 20, 1000)},
    })
    sim.submit(order("first", quantity=80, time_in_force=TimeInForce.GTC))
    sim.submit(order("second", quantity=80, time_in_force=TimeInForce.GTC))
    sim.advance_to(D1)
    assert sim.order_status("first").filled_quantity == 80
    assert sim.order_status("second").filled_quantity == 20
    sim.advance_to(D2)
    assert sim.order_status("second").status is OrderStatus.FILLED


def test_rejection_for_insufficient_buying_power_changes_nothing(simulator):
    sim = simulator({D0: {"AAA": FLAT}, D1: {"AAA": FLAT}}, initial_cash=10_000)
    rejected = sim.submit(order("too-big", quantity=100))
    assert rejected.status is OrderStatus.REJECTED
    # 100 x 100.00 x 1.0005 + $1.00 commission = $10,006.00 against $10,000.00
    assert "insufficient buying power" in rejected.reason
    assert "$10,006.00" in rejected.reason and "$10,000.00" in rejected.reason
    assert sim.submit(order("too-big", quantity=100)) == rejected  # recorded, still rejected
    account = sim.account()
    assert (account.cash, account.buying_power, account.equity) == (10_000, 10_000, 10_000)
    assert sim.open_orders() == []

    accepted = sim.submit(order("fits", quantity=99))  # 9,904.95 + 1.00 = 9,905.95
    assert accepted.status is OrderStatus.NEW
    assert sim.account().buying_power == pytest.approx(94.05)
    one_more = sim.submit(order("one-more", quantity=1))  # 100.05 + 1.00 > 94.05 left
    assert one_more.status is OrderStatus.REJECTED
    assert "reserved by working buy orders" in one_more.reason

    sim.advance_to(D1)
    assert [f.client_order_id for f in sim.fills(since=EPOCH)] == ["fits"]
    assert sim.order_status("too-big").status is OrderStatus.REJECTED


@pytest.mark.parametrize(
    ("intent", "config", "expected_reason"),
    [
        (order("unknown", "ZZZ", quantity=1), {}, "unknown symbol ZZZ"),
        (order("fraction", quantity=1.5), {}, "fractional quantity 1.5"),
        (order("naked", side=Side.SELL, quantity=5), {}, "short selling is not allowed"),
    ],
    ids=["unknown-symbol", "fractional", "sell-more-than-held"],
)
def test_rejections_name_their_reason(simulator, intent, config, expected_reason):
    sim = simulator({D0: {"AAA": FLAT}}, **config)
    report = sim.submit(intent)
    assert report.status is OrderStatus.REJECTED
    assert expected_reason in report.reason
    assert sim.account().cash == 100_000 and sim.open_orders() == []


def test_fractions_and_shorts_are_accepted_when_the_config_allows_them(simulator):
    sim = simulator({D0: {"AAA": FLAT}, D1: {"AAA": (100, 101, 99, 100, 1e6)}},
                    allow_fractional=True, allow_short=True)
    assert sim.submit(order("fraction", quantity=1.5)).status is OrderStatus.NEW
    assert sim.submit(order("short", side=Side.SELL, quantity=4)).status is OrderStatus.NEW
    sim.advance_to(D1)
    assert sim.positions()[0].quantity == pytest.approx(1.5 - 4)


def test_sells_already_working_count_against_the_shares_held(simulator):
    sim = simulator({D0: {"AAA": FLAT}, D1: {"AAA": (100, 101, 99, 100, 1e6)}})
    sim.submit(order("buy", quantity=10))
    sim.advance_to(D1)
    protect = sim.submit(order("stop", side=Side.SELL, quantity=6, order_type=OrderType.STOP,
                               stop_price=80.0, time_in_force=TimeInForce.GTC))
    assert protect.status is OrderStatus.NEW
    oversell = sim.submit(order("sell", side=Side.SELL, quantity=5))
    assert oversell.status is OrderStatus.REJECTED
    assert "10 held, 6 already in working sell orders, so 4 can be sold" in oversell.reason
    assert sim.submit(order("sell-4", side=Side.SELL, quantity=4)).status is OrderStatus.NEW


def test_day_limit_expires_while_gtc_keeps_working_and_fills_at_its_limit(simulator):
    sim = simulator({
        D0: {"AAA": FLAT, "BBB": FLAT},
        D1: {"AAA": (99, 101, 96, 100, 1e6), "BBB": (93, 96, 92, 95, 1e6)},
        D2: {"AAA": (97, 98, 94, 95.5, 1e6), "BBB": FLAT},
    })
    limit = dict(order_type=OrderType.LIMIT, limit_price=95.0)
    sim.submit(order("day", **limit))
    sim.submit(order("gtc", time_in_force=TimeInForce.GTC, **limit))
    sim.submit(order("gap", "BBB", time_in_force=TimeInForce.GTC, **limit))

    sim.advance_to(D1)  # AAA's low 96 never reaches 95; BBB opens at 93, below the limit
    day = sim.order_status("day")
    assert day.status is OrderStatus.EXPIRED and day.filled_quantity == 0
    assert day.updated_at == utc(D1, 21, 0)  # D1's close
    assert sim.order_status("gtc").status is OrderStatus.NEW
    (gap,) = fills_of(sim, "gap")
    assert (gap.price, gap.filled_at) == (93.0, utc(D1, 14, 30))  # a gap fills at the open

    sim.advance_to(D2)  # AAA opens at 97 and trades down to 94: the limit fills at 95
    (fill,) = fills_of(sim, "gtc")
    assert (fill.price, fill.filled_at) == (95.0, utc(D2, 17, 45))
    assert fills_of(sim, "day") == []


def test_stop_limit_fills_within_the_trigger_bar_or_keeps_working_as_a_limit(simulator):
    sim = simulator({
        D0: {"AAA": (50, 50, 50, 50, 1e6), "BBB": (50, 50, 50, 50, 1e6)},
        D1: {"AAA": (50, 50, 50, 50, 1e6), "BBB": (50, 50, 50, 50, 1e6)},
        D2: {"AAA": (46, 46.5, 44.5, 45, 1e6), "BBB": (43, 43.5, 42, 43, 1e6)},
        D3: {"AAA": (45, 45, 45, 45, 1e6), "BBB": (43.5, 44.6, 43, 44.2, 1e6)},
    })
    sim.submit(order("buy-a", "AAA", quantity=10))
    sim.submit(order("buy-b", "BBB", quantity=10))
    sim.advance_to(D1)
    for symbol in ("AAA", "BBB"):
        sim.submit(order(f"sl-{symbol}", symbol, Side.SELL, quantity=10, stop_price=45.0,
                         limit_price=44.0, order_type=OrderType.STOP_LIMIT,
                         time_in_force=TimeInForce.GTC))
    sim.advance_to(D2)
    (touched,) = fills_of(sim, "sl-AAA")  # triggered at 45, within the 44 limit: fills at 45
    assert (touched.price, touched.filled_at) == (45.0, utc(D2, 17, 45))
    assert fills_of(sim, "sl-BBB") == []  # gapped to 43, never back up to 44 in that bar
    assert sim.order_status("sl-BBB").status is OrderStatus.NEW

    sim.advance_to(D3)  # now a plain sell limit at 44: the high 44.60 reaches it
    (later,) = fills_of(sim, "sl-BBB")
    assert (later.price, later.filled_at) == (44.0, utc(D3, 17, 45))


@pytest.mark.parametrize(
    ("quantity", "config", "expected"),
    [
        (100, {}, 1.00),  # 100 x $0.005 = $0.50: the $1.00 minimum applies
        (1000, {}, 5.00),  # 1,000 x $0.005
        (100, {"commission_model": CommissionModel.PERCENT_OF_NOTIONAL,
               "commission_percent": 0.1}, 5.0025),  # 0.1 % of 100 x 50.025
    ],
    ids=["per-share-minimum", "per-share", "percent-of-notional"],
)
def test_commission_models(simulator, quantity, config, expected):
    sim = simulator({D0: {"AAA": (50, 50, 50, 50, 1e6)}, D1: {"AAA": (50, 51, 49, 50, 1e6)}},
                    **config)
    sim.submit(order("buy", quantity=quantity))
    sim.advance_to(D1)
    (fill,) = fills_of(sim, "buy")
    assert fill.price == pytest.approx(50.025)
    assert fill.commission == pytest.approx(expected)
    assert sim.account().cash == pytest.approx(100_000 - quantity * 50.025 - expected)


def test_cancel_stops_a_working_order_and_leaves_finished_ones_alone(simulator):
    sim = simulator({D0: {"AAA": FLAT}, D1: {"AAA": (100, 101, 99, 100, 1e6)}})
    sim.submit(order("far", order_type=OrderType.LIMIT, limit_price=50.0,
                     time_in_force=TimeInForce.GTC))
    sim.submit(order("filled", quantity=5))
    sim.advance_to(D1)
    canceled = sim.cancel("far")
    assert canceled.status is OrderStatus.CANCELED
    assert sim.account().buying_power == pytest.approx(sim.account().cash)  # reservation released
    filled = sim.order_status("filled")
    assert sim.cancel("filled") == filled
    assert sim.cancel("far") == canceled


def test_cancel_of_an_unknown_order_raises_order_not_found(simulator):
    from trading_pipeline.brokers.base import OrderNotFound

    sim = simulator({D0: {"AAA": FLAT}})
    with pytest.raises(OrderNotFound, match="no-such-order"):
        sim.cancel("no-such-order")


def test_a_sell_whose_shares_were_sold_by_hand_is_canceled_not_turned_short(simulator):
    sim = simulator({D0: {"AAA": FLAT}, D1: {"AAA": FLAT}, D2: {"AAA": (90, 91, 89, 90, 1e6)}})
    sim.submit(order("buy", quantity=10))
    sim.advance_to(D1)
    sim.submit(order("stop", side=Side.SELL, quantity=10, order_type=OrderType.STOP,
                     stop_price=95.0, time_in_force=TimeInForce.GTC))
    sim.warehouse.execute("delete from sim_positions where symbol = 'AAA'")  # sold by hand
    sim.advance_to(D2)
    stop = sim.order_status("stop")
    assert stop.status is OrderStatus.CANCELED and "no shares left" in stop.reason
    assert sim.positions() == []
