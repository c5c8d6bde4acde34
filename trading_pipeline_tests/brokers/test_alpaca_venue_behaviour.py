"""What the real Alpaca does that a first fake did not (issue 13, findings 9 and 10), driven
through the real alpaca-py client, and the fake's answers checked against Alpaca's own
OpenAPI response schemas (vendored in fakes/alpaca/openapi_schemas.json, source named there).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests

from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
from trading_pipeline.domain.orders import OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer

KEY_ID = "FAKEKEYID-SHOULD-NOT-LEAK"
SECRET_KEY = "FAKESECRET-SHOULD-NOT-LEAK"
SCHEMAS = Path(__file__).parent / "fakes" / "alpaca" / "openapi_schemas.json"

# A multi-leg option order as Alpaca lists it: no symbol and no side of its own (the spec:
# "required for all order classes except for mleg"); its legs carry them.
MULTI_LEG_ORDER = {
    "id": "6f0c7b1e-5a43-4a3e-9d38-2f6a0f1b9c11", "client_order_id": "app-spread-1",
    "created_at": "2026-12-04T15:00:00Z", "updated_at": "2026-12-04T15:00:00Z",
    "submitted_at": "2026-12-04T15:00:00Z", "filled_at": None, "expired_at": None,
    "canceled_at": None, "failed_at": None, "replaced_at": None, "replaced_by": None,
    "replaces": None, "asset_id": None, "notional": None, "qty": "1", "filled_qty": "0",
    "filled_avg_price": None, "order_class": "mleg", "order_type": "limit", "type": "limit",
    "time_in_force": "day", "limit_price": "1.25", "stop_price": None, "status": "new",
    "extended_hours": False, "trail_percent": None, "trail_price": None, "hwm": None,
    "legs": [
        {"id": "0b7f7c43-1d0e-4bd4-8d0e-0c9b4a6e2d01", "client_order_id": "app-spread-1-a",
         "created_at": "2026-12-04T15:00:00Z", "updated_at": "2026-12-04T15:00:00Z",
         "submitted_at": "2026-12-04T15:00:00Z", "symbol": "AAA261218C00100000",
         "asset_class": "us_option", "qty": "1", "filled_qty": "0", "order_class": "mleg",
         "type": "limit", "side": "buy", "position_intent": "buy_to_open", "time_in_force": "day",
         "status": "new", "extended_hours": False, "ratio_qty": "1"},
        {"id": "0b7f7c43-1d0e-4bd4-8d0e-0c9b4a6e2d02", "client_order_id": "app-spread-1-b",
         "created_at": "2026-12-04T15:00:00Z", "updated_at": "2026-12-04T15:00:00Z",
         "submitted_at": "2026-12-04T15:00:00Z", "symbol": "AAA261218C00110000",
         "asset_class": "us_option", "qty": "1", "filled_qty": "0", "order_class": "mleg",
         "type": "limit", "side": "sell", "position_intent": "sell_to_open", "time_in_force": "day",
         "status": "new", "extended_hours": False, "ratio_qty": "1"},
    ],
}


@pytest.fixture
def fake():
    fake = FakeAlpaca(KEY_ID, SECRET_KEY)
    with FakeAlpacaServer(fake):
        yield fake
    assert not fake.crashes, fake.crashes[0]


@pytest.fixture
def broker(fake):
    config = AlpacaConfig(KEY_ID, SECRET_KEY, paper=True, url_override=fake.url, timeout_seconds=1.0)
    with AlpacaBroker(config, sleep=lambda seconds: None) as broker:
        yield broker


def intent(cid: str, side: Side, quantity: float, **kw) -> OrderIntent:
    return OrderIntent(client_order_id=cid, symbol="AAA", side=side, quantity=quantity, **kw)


# -- finding 9: one item alpaca-py cannot read must not fail the whole call -------------------


@pytest.mark.parametrize("asset_class", ["ipo", "treasury", "corporate"])
def test_a_holding_of_a_class_alpaca_py_rejects_is_reported_not_fatal(fake, broker, asset_class):
    fake.set_position("AAA", 10, 95.0)
    fake.hold_foreign_asset("ODDITY", asset_class, 3, 99.5)

    positions = broker.positions()

    assert [(p.symbol, p.quantity) for p in positions] == [("AAA", 10)]
    [problem] = broker.unreadable_items
    assert (problem.kind, problem.key) == ("position", "ODDITY")
    assert asset_class in problem.reason


def test_an_account_with_a_null_account_number_is_still_read(fake, broker):
    fake.account_number = None  # Alpaca's spec: "type": ["string", "null"]

    account = broker.account()

    assert account.cash == pytest.approx(100_000.0)
    assert account.buying_power == pytest.approx(100_000.0)


def test_a_multi_leg_option_order_is_reported_and_our_orders_still_listed(fake, broker):
    broker.submit(intent("ours-1", Side.BUY, 2, order_type=OrderType.LIMIT, limit_price=50.0))
    fake.add_foreign_order(MULTI_LEG_ORDER)

    listed = broker.open_orders()

    assert [o.client_order_id for o in listed] == ["ours-1"]
    [problem] = broker.unreadable_items
    assert problem.kind == "order"
    assert MULTI_LEG_ORDER["id"] in problem.key and "mleg" in problem.reason


def test_each_call_reports_only_what_it_could_not_read_itself(fake, broker):
    fake.hold_foreign_asset("ODDITY", "ipo", 3, 99.5)
    fake.add_foreign_order(MULTI_LEG_ORDER)
    broker.positions()
    broker.open_orders()
    assert sorted(p.kind for p in broker.unreadable_items) == ["order", "position"]

    fake.set_position("ODDITY", 0)
    broker.positions()  # the holding is gone: its problem goes with it, the order's stays
    assert [p.kind for p in broker.unreadable_items] == ["order"]


# -- finding 10: a buy while a protective sell stop works is a "wash trade" at Alpaca ---------


def test_the_fake_refuses_an_order_against_an_open_opposite_order_as_alpaca_does(fake):
    fake.set_position("AAA", 10, 95.0)
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}
    stop = {"symbol": "AAA", "qty": "10", "side": "sell", "type": "stop", "stop_price": "90",
            "time_in_force": "gtc", "client_order_id": "stop-1"}
    assert requests.post(f"{fake.url}/v2/orders", json=stop, headers=headers, timeout=5).status_code == 200

    buy = {"symbol": "AAA", "qty": "5", "side": "buy", "type": "market", "time_in_force": "day"}
    answer = requests.post(f"{fake.url}/v2/orders", json=buy, headers=headers, timeout=5)

    assert answer.status_code == 403
    assert answer.json() == {"code": 40310000, "message": "potential wash trade detected. use complex orders"}


def test_adding_to_a_position_with_a_working_stop_places_the_entry_and_keeps_it_protected(fake, broker):
    fake.set_position("AAA", 10, 95.0)
    stop = broker.submit(intent("stop-1", Side.SELL, 10, order_type=OrderType.STOP, stop_price=90.0,
                                time_in_force=TimeInForce.GTC))
    assert stop.status is OrderStatus.NEW

    entry = broker.submit(intent("add-1", Side.BUY, 5))

    assert entry.status is OrderStatus.NEW, entry.reason
    assert fake.orders_with_client_id("add-1") == 1
    assert fake.order("stop-1").status == "canceled"  # it would have traded against the entry
    placed = fake.order("add-1")
    assert placed.order_class == "oto"  # the entry carries its own stop, held until it fills
    [leg] = placed.legs
    assert (leg.side, leg.type, leg.stop_price, leg.qty, leg.status) == ("sell", "stop", 90.0, 5, "held")
    [displaced] = broker.displaced_stops
    assert (displaced.client_order_id, displaced.stop_price, displaced.quantity) == ("stop-1", 90.0, 10)

    fake.settle()  # the entry fills at the next open: its stop starts working
    assert fake.positions["AAA"][0] == 15
    assert leg.status == "new"


def test_a_wash_refusal_with_no_stop_to_move_stays_a_rejection(fake, broker):
    fake.set_position("AAA", 10, 95.0)
    broker.submit(intent("take-profit", Side.SELL, 10, order_type=OrderType.LIMIT, limit_price=120.0))

    answer = broker.submit(intent("add-2", Side.BUY, 5))

    assert answer.status is OrderStatus.REJECTED
    assert "wash trade" in answer.reason
    assert fake.order("take-profit").status == "new"  # a limit sell is a decision, never moved


def test_a_resubmitted_entry_after_the_stop_was_moved_sends_nothing_more(fake, broker):
    fake.set_position("AAA", 10, 95.0)
    broker.submit(intent("stop-1", Side.SELL, 10, order_type=OrderType.STOP, stop_price=90.0,
                         time_in_force=TimeInForce.GTC))
    broker.submit(intent("add-1", Side.BUY, 5))
    posts = len(fake.requests_to("POST", "/v2/orders"))

    again = broker.submit(intent("add-1", Side.BUY, 5))

    assert again.status is OrderStatus.NEW
    assert len(fake.requests_to("POST", "/v2/orders")) == posts
    assert fake.orders_with_client_id("add-1") == 1


# -- the fake answers in the shapes Alpaca's OpenAPI spec gives --------------------------------


def _validator(schema_name: str, *, array: bool = False):
    document = json.loads(SCHEMAS.read_text())
    target = {"$ref": f"#/components/schemas/{schema_name}"}
    schema = {"type": "array", "items": target} if array else target
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_the_fake_answers_validate_against_alpacas_openapi_response_schemas(fake, broker):
    fake.set_position("AAA", 10, 95.0)
    fake.hold_foreign_asset("ODDITY", "treasury", 3, 99.5)
    fake.account_number = None
    broker.submit(intent("stop-1", Side.SELL, 10, order_type=OrderType.STOP, stop_price=90.0,
                         time_in_force=TimeInForce.GTC))
    broker.submit(intent("add-1", Side.BUY, 5))  # moves the stop, places an OTO
    broker.submit(OrderIntent(client_order_id="trail-1", symbol="BBB", side=Side.BUY, quantity=1,
                              order_type=OrderType.TRAILING_STOP, trail_percent=2.0))
    fake.settle()
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}

    def get(path: str, **params):
        answer = requests.get(f"{fake.url}{path}", params=params, headers=headers, timeout=5)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    checks = [
        ("Account", False, get("/v2/account")),
        ("Position", True, get("/v2/positions")),
        ("Order", True, get("/v2/orders", status="all", limit=500)),
        ("Order", False, get("/v2/orders:by_client_order_id", client_order_id="add-1")),
        ("TradingActivities", True, get("/v2/account/activities/FILL")),
    ]
    refused = requests.post(f"{fake.url}/v2/orders", headers=headers, timeout=5,
                            json={"symbol": "AAA", "qty": "1", "side": "buy", "type": "market",
                                  "time_in_force": "day", "client_order_id": f"x-{uuid.uuid4()}"})
    assert refused.status_code == 403  # the entry's stop now works: a buy would wash against it
    checks.append(("Error", False, refused.json()))
    for name, array, payload in checks:
        errors = sorted(_validator(name, array=array).iter_errors(payload), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"
    assert any(p["asset_class"] == "treasury" for p in checks[1][2])
    assert checks[0][2]["account_number"] is None
