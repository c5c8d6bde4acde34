"""The Interactive Brokers adapter: the `Broker` protocol over ib_insync and TWS/Gateway."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from trading_pipeline.brokers.base import (
    BrokerError,
    OrderNotFound,
    OrderStateUnknown,
    account_key,
)
from trading_pipeline.brokers.ibkr import translate
from trading_pipeline.brokers.ibkr.config import IbkrConfig
from trading_pipeline.brokers.ibkr.session import IbkrSession
from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderStatus,
    OrderStatusReport,
    PositionReport,
)

if TYPE_CHECKING:
    from ib_insync import IB, Trade

_PENDING = {"PendingSubmit", "ApiPending"}  # not yet acknowledged by TWS
_SUMMARY_TAGS = "NetLiquidation,TotalCashValue,BuyingPower,AvailableFunds,GrossPositionValue"
_POLL = 0.01
_EXCHANGE_ZONE = ZoneInfo("America/New_York")
log = logging.getLogger("trading_pipeline.brokers.ibkr")


class IbkrBroker:
    """Orders, fills, positions and the account at IBKR through TWS or IB Gateway.

    Connects lazily on the first call (or `connect()`), reconnects after a drop, and is
    safe to call from any thread. `submit` is idempotent by client order id: it first
    asks TWS for open and completed orders whose `orderRef` is that id.
    """

    def __init__(self, config: IbkrConfig, *, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._session = IbkrSession(config, sleep=sleep)

    @property
    def name(self) -> str:
        return account_key("ibkr", self.config.mode)

    def __repr__(self) -> str:
        c = self.config
        return f"IbkrBroker(host={c.host!r}, port={c.port}, client_id={c.client_id})"

    def __enter__(self) -> IbkrBroker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connect_count(self) -> int:
        """How many API connections this broker has opened (reconnects included)."""
        return self._session.connect_count

    def connect(self) -> None:
        async def nothing(_ib: IB) -> None:
            return None

        self._session.run("connect", nothing)

    def submit(self, intent: OrderIntent) -> OrderStatusReport:
        cid = intent.client_order_id

        async def work(ib: IB) -> OrderStatusReport:
            # after a loss of connectivity (1100) wait for 1101/1102, then look before sending
            await self._session.link_up()
            found = await self._find(ib, cid)
            if found is not None:
                report = await self._report(ib, *found)
                log.info("IBKR already has order %s (%s): not sending it again", cid, report.status)
                return report
            await self._refuse_if_tws_may_have_forgotten(ib, intent)
            order = translate.to_ib_order(intent, self._session.account_id)
            trade = ib.placeOrder(translate.stock_contract(intent.symbol), order)
            await self._until(
                ib, lambda: trade.orderStatus.status not in _PENDING or trade.isDone(),
                f"TWS did not acknowledge order {cid}; it may still have reached the broker "
                "(the next attempt looks for it before sending again)",
            )
            report = self._to_report(trade)
            if not report.status.is_open and report.filled_quantity <= 0:
                # ib_insync cancels its copy on any code it does not know; TWS's own listing
                # says whether the order was refused or is working
                found = await self._find(ib, cid)
                if found is not None:
                    report = translate.enrich(await self._report(ib, *found), report)
            return report

        return self._session.run(f"submit {cid}", work)

    attaches_stops = True  # a child STP order, active once its parent (the entry) fills

    def submit_with_stop(self, entry: OrderIntent, stop: OrderIntent) -> tuple[OrderStatusReport, OrderStatusReport]:
        """The entry with its stop as a child order (`translate.attached_orders`); idempotent by
        both orderRefs. The child is IB's own order, with its own orderRef: never foreign."""
        cid = entry.client_order_id

        async def work(ib: IB) -> tuple[OrderStatusReport, OrderStatusReport]:
            await self._session.link_up()
            found = await self._find(ib, cid)
            if found is not None:
                entry_report = await self._report(ib, *found)
                child = await self._find(ib, stop.client_order_id)
                if child is not None:
                    return entry_report, await self._report(ib, *child)
                # TWS transmits a parent only with its last child: this entry was sent alone
                return entry_report, OrderStatusReport(
                    stop.client_order_id, stop.symbol, stop.side, stop.quantity, OrderStatus.REJECTED,
                    stop.order_type, reason=f"IBKR has entry {cid} without a child stop (sent alone): "
                                            "the stop upkeep after the next close places the position's stop")
            await self._refuse_if_tws_may_have_forgotten(ib, entry)
            parent, child = translate.attached_orders(entry, stop, ib.client.getReqId(), self._session.account_id)
            contract = translate.stock_contract(entry.symbol)
            trades = (ib.placeOrder(contract, parent), ib.placeOrder(contract, child))
            await self._until(
                ib, lambda: all(t.orderStatus.status not in _PENDING or t.isDone() for t in trades),
                f"TWS did not acknowledge order {cid} and its stop {stop.client_order_id}; they may "
                "still have reached the broker (the next attempt looks for them before sending again)",
            )
            reports = []
            for intent, trade in zip((entry, stop), trades):
                report = self._to_report(trade)
                if not report.status.is_open and report.filled_quantity <= 0:
                    found = await self._find(ib, intent.client_order_id)  # TWS's listing decides
                    if found is not None:
                        report = translate.enrich(await self._report(ib, *found), report)
                reports.append(report)
            return reports[0], reports[1]

        return self._session.run(f"submit {cid} with its stop", work)

    def cancel(self, client_order_id: str) -> OrderStatusReport:
        async def work(ib: IB) -> OrderStatusReport:
            found = await self._find(ib, client_order_id)
            if found is None:
                raise OrderNotFound(f"IBKR has no order with client order id {client_order_id}")
            trade, _ = found
            if self._to_report(trade).status.is_open:
                ib.cancelOrder(trade.order)
                await self._until(
                    ib, trade.isDone, f"TWS did not confirm the cancel of {client_order_id}"
                )
                # ask again: a cancel can lose a race with a fill, and ib_insync marks an
                # order cancelled locally on any error about it
                found = await self._find(ib, client_order_id) or found
            return await self._report(ib, *found)

        return self._session.run(f"cancel {client_order_id}", work)

    def order_status(self, client_order_id: str) -> OrderStatusReport | None:
        async def work(ib: IB) -> OrderStatusReport | None:
            found = await self._find(ib, client_order_id)
            return None if found is None else await self._report(ib, *found)

        return self._session.run(f"order status {client_order_id}", work)

    def open_orders(self) -> list[OrderStatusReport]:
        async def work(ib: IB) -> list[OrderStatusReport]:
            trades = await self._session.request(ib.reqAllOpenOrdersAsync())
            reports = [self._to_report(t) for t in trades if self._is_ours(t)]
            return [r for r in reports if r.status.is_open]

        return self._session.run("open orders", work)

    def fills(self, since: datetime) -> list[FillReport]:
        """Executions TWS still reports (it keeps the current day, or up to 7 days if set)."""
        since = since if since.tzinfo else since.replace(tzinfo=UTC)

        async def work(ib: IB) -> list[FillReport]:
            fills = [f for f in await self._executions(ib) if f.execution.time >= since]
            return translate.fill_reports(fills)

        return self._session.run("fills", work)

    def positions(self) -> list[PositionReport]:
        async def work(ib: IB) -> list[PositionReport]:
            positions = await self._session.request(ib.reqPositionsAsync())
            account = self._session.account_id
            return [
                translate.position_to_report(p)
                for p in positions
                if p.account == account and p.position != 0
            ]

        return self._session.run("positions", work)

    def account(self) -> AccountSnapshot:
        async def work(ib: IB) -> AccountSnapshot:
            req_id = ib.client.getReqId()
            done = ib.wrapper.startReq(req_id)
            ib.client.reqAccountSummary(req_id, "All", _SUMMARY_TAGS)
            try:
                await self._session.request(done)
            finally:
                # TWS allows only two summary subscriptions at once: always release ours
                if ib.isConnected():
                    ib.client.cancelAccountSummary(req_id)
            try:
                return translate.account_snapshot(
                    ib.wrapper.acctSummary.values(), self._session.account_id, datetime.now(UTC)
                )
            except ValueError as exc:
                raise BrokerError(f"IBKR account: {exc}") from None

        return self._session.run("account", work)

    def close(self) -> None:
        self._session.close()

    # internals

    def _is_ours(self, trade: Trade) -> bool:
        """Orders of the traded account (orders without an account are the login's own)."""
        return trade.order.account in ("", self._session.account_id)

    async def _find(self, ib: IB, client_order_id: str) -> tuple[Trade, Trade | None] | None:
        """The broker's order with this orderRef, and the live trade of this session if any.

        Open orders first, then completed ones (filled, cancelled, rejected), then orders
        this session saw end (a rejection TWS may not list). An order this session believes
        open but TWS does not list is not found: TWS is the judge of what is working. The
        live trade carries fills and average price that completed-order records lack.
        """
        open_trades = await self._session.request(ib.reqAllOpenOrdersAsync())
        completed = await self._session.request(ib.reqCompletedOrdersAsync(False))
        ended = [t for t in ib.trades() if not self._to_report(t).status.is_open]
        for group in (open_trades, completed, ended):
            matches = [
                t for t in group if t.order.orderRef == client_order_id and self._is_ours(t)
            ]
            if matches:
                trade = max(matches, key=lambda t: t.order.permId)
                live = ib.wrapper.permId2Trade.get(trade.order.permId) if trade.order.permId else None
                return trade, (live if live is not trade else None)
        return None

    async def _refuse_if_tws_may_have_forgotten(self, ib: IB, intent: OrderIntent) -> None:
        """TWS lists completed orders and executions of its current day only. An intent decided
        for an earlier session may have been sent then, and filled or cancelled since: TWS
        not listing it proves nothing, so it is not sent again."""
        if intent.session is None:
            return
        now = await self._session.request(ib.reqCurrentTimeAsync())
        # sessions are New York dates, and IB's North American day turns over at night there
        today = now.astimezone(_EXCHANGE_ZONE).date()
        if today > intent.session:
            raise OrderStateUnknown(
                f"IBKR lists no order {intent.client_order_id} ({intent.side} "
                f"{intent.quantity:g} {intent.symbol}), but TWS lists completed orders and "
                f"executions of its current day ({today}) only and the order was decided for "
                f"session {intent.session}: it may have been sent and completed since. Not "
                f"sending it again: check the account's trade history (TWS Trade Log or an "
                f"Account Management statement) and the {intent.symbol} position, then record "
                f"what happened or release the order."
            )

    async def _report(self, ib: IB, trade: Trade, live: Trade | None) -> OrderStatusReport:
        """The broker's record of the order, enriched by what this session saw live."""
        report = self._to_report(trade)
        if live is not None:
            report = translate.enrich(report, self._to_report(live))
        if report.filled_quantity > 0 and report.avg_fill_price is None:
            # completed-order records carry no price: rebuild it from the executions
            executions = [
                f for f in await self._executions(ib)
                if f.execution.orderRef == report.client_order_id
            ]
            report = replace(report, avg_fill_price=translate.average_price(executions))
        return report

    def _to_report(self, trade: Trade) -> OrderStatusReport:
        return translate.trade_to_report(trade, scrub=self._session.scrub)

    async def _executions(self, ib: IB):
        from ib_insync import ExecutionFilter

        fills = await self._session.request(
            ib.reqExecutionsAsync(ExecutionFilter(acctCode=self._session.account_id or ""))
        )
        # ib_insync attaches commission reports to the first Fill object it saw per execId
        known = ib.wrapper.fills
        fills = [known.get(f.execution.execId, f) for f in fills]
        return [f for f in fills if f.execution.acctNumber in ("", self._session.account_id)]

    async def _until(self, ib: IB, condition: Callable[[], bool], timeout_message: str) -> None:
        """Let TWS messages arrive until `condition` holds, within the request timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout
        while not condition():
            if not ib.isConnected():
                raise ConnectionError("the connection to TWS dropped while waiting for an answer")
            if loop.time() >= deadline:
                raise TimeoutError(f"{timeout_message} within {self.config.request_timeout:g} s")
            await asyncio.sleep(_POLL)
