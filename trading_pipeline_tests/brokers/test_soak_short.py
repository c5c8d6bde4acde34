"""A short seeded fault soak per venue (the full one: `make soak`), and the soak's own counting
checked against a venue that duplicates on purpose."""

from __future__ import annotations

import importlib.util
import random
from datetime import UTC, datetime

import pytest

from trading_pipeline.brokers.base import BrokerUnavailable
from trading_pipeline.domain.orders import FillReport, OrderStatus, OrderStatusReport
from trading_pipeline_tests.benchmarks.soak import runner
from trading_pipeline_tests.benchmarks.soak.runner import (
    VenueExecution,
    VenueOrder,
    VenueTruth,
    format_table,
    open_venue_harness,
    run_soak,
)

VENUES = ["ibkr", "alpaca", "robinhood"]
SHORT_FAULTS = 50


def _has_soak(venue: str) -> bool:
    return importlib.util.find_spec(f"{runner.__package__}.soak_{venue}") is not None


@pytest.mark.parametrize("venue", VENUES)
def test_short_soak_duplicates_loses_and_double_counts_nothing(venue, tmp_path):
    if not _has_soak(venue):
        pytest.skip(f"no soak_{venue} module yet")
    with open_venue_harness(venue, random.Random(7)) as harness:
        figures = run_soak(harness, faults=SHORT_FAULTS, seed=7, warehouse_dir=tmp_path)
    table = format_table([figures])
    assert figures.faults == SHORT_FAULTS
    assert figures.intended > SHORT_FAULTS and figures.sent > 0, table
    assert (figures.duplicated, figures.lost, figures.misrecorded) == (0, 0, 0), table
    assert (figures.fills_lost, figures.fills_double_counted) == (0, 0), table
    assert figures.breaks_raised == figures.breaks_explained, table


# the counting itself: a venue without idempotency must show up as duplicates


class _MemoryVenue:
    """Accepts every submit (optionally deduplicating by client order id); 'timeout' faults
    accept the order and then fail, as a lost answer would."""

    venue = "memory"
    symbols = ("AAA", "BBB", "CCC")
    fault_kinds = ("timeout_after_accept",)

    def __init__(self, idempotent: bool):
        self.idempotent, self.orders, self.fills, self.fail_next = idempotent, {}, [], False

    def open_broker(self):
        venue = self

        class Broker:
            name = "memory"

            def submit(self, intent):
                if not (venue.idempotent and intent.client_order_id in venue.orders):
                    venue.orders.setdefault(intent.client_order_id, []).append([intent, 0.0])
                if venue.fail_next:
                    venue.fail_next = False
                    raise BrokerUnavailable("answer lost")
                return venue.report(intent.client_order_id)

            def order_status(self, cid):
                return venue.report(cid) if cid in venue.orders else None

            def fills(self, since):
                return list(venue.fills)

            def close(self):
                pass

        return Broker()

    def report(self, cid):
        intent, filled = self.orders[cid][-1]
        return OrderStatusReport(cid, intent.symbol, intent.side, intent.quantity,
                                 OrderStatus.FILLED if filled else OrderStatus.NEW,
                                 filled_quantity=filled)

    def arm(self, fault, rng):
        self.fail_next = True

    def after_failure(self, fault, error, rng):
        pass

    def settle(self, rng):
        for cid, placed in self.orders.items():
            for n, order in enumerate(placed):
                if not order[1]:
                    order[1] = order[0].quantity
                    self.fills.append(FillReport(f"{cid}-{n}", cid, order[0].symbol, order[0].side,
                                                 order[1], 10.0, datetime.now(UTC)))

    def late_events(self, rng):
        pass

    def end_of_day(self, today):
        pass

    def truth(self):
        return VenueTruth(
            [VenueOrder(cid, f"{cid}-{n}", "filled" if o[1] else "open", o[1])
             for cid, placed in self.orders.items() for n, o in enumerate(placed)],
            [VenueExecution(f.fill_id, f.client_order_id, f.quantity, f.price, 0.0)
             for f in self.fills])


def test_the_soak_counts_the_duplicates_of_a_venue_that_is_not_idempotent(tmp_path):
    figures = run_soak(_MemoryVenue(idempotent=False), faults=20, seed=3, warehouse_dir=tmp_path)
    assert figures.duplicated > 0
    assert not figures.clean


def test_the_soak_finds_an_idempotent_venue_clean(tmp_path):
    figures = run_soak(_MemoryVenue(idempotent=True), faults=20, seed=3, warehouse_dir=tmp_path)
    assert figures.clean, format_table([figures])
