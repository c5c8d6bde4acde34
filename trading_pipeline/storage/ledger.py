"""The ledger: our record of what we asked brokers for and what they said happened.

Event tables are append-only; `ledger_orders` keeps one row per intent with its latest
status, and every status change is also appended to `ledger_order_events`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime

import polars as pl

from trading_pipeline.domain.orders import (
    AccountSnapshot,
    FillReport,
    OrderIntent,
    OrderPurpose,
    OrderStatusReport,
    OrderType,
    PositionReport,
    Side,
    TimeInForce,
)
from trading_pipeline.storage.kill_switch_file import KillSwitchEvent, KillSwitchStore
from trading_pipeline.storage.warehouse import Warehouse

PLANNED = "planned"  # in a recorded plan, not yet sent
SUBMITTING = "submitting"  # recorded before the send: a crash mid-send is visible
NOT_SENT = "not_sent"  # held back (a key not turned, a stop that filled first); a re-run may send it
UNKNOWN = "unknown"  # the venue cannot say whether it exists: never re-sent, a break until a person decides
OPEN_STATUSES = ("new", "partially_filled", SUBMITTING)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Ledger:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    # -- orders ----------------------------------------------------------------

    def order(self, client_order_id: str) -> dict | None:
        rows = self.warehouse.query(
            "select * from ledger_orders where client_order_id = ?", [client_order_id]
        )
        return rows.row(0, named=True) if rows.height else None

    def record_intent(self, intent: OrderIntent, broker: str, *, dry_run: bool, status: str,
                      reason: str | None = None) -> bool:
        """Record an intent before it is sent. False if the id is already in the ledger."""
        with self.warehouse.transaction() as con:
            return self._insert_intent(con, intent, broker, dry_run=dry_run, status=status,
                                       reason=reason, now=_now())

    @staticmethod
    def _insert_intent(con, intent: OrderIntent, broker: str, *, dry_run: bool, status: str,
                       reason: str | None, now: datetime, plan_seq: int | None = None,
                       reduces_exposure: bool | None = None) -> bool:
        exists = con.execute(
            "select 1 from ledger_orders where client_order_id = ?", [intent.client_order_id]
        ).fetchone()
        if exists:
            return False
        con.execute(
            """insert into ledger_orders (client_order_id, strategy, session, broker, symbol, side,
               quantity, order_type, time_in_force, limit_price, stop_price, trail_percent,
               trail_amount, purpose, dry_run, status, filled_quantity, avg_fill_price,
               broker_order_id, reason, created_at, updated_at, plan_seq, reduces_exposure)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, null, null, ?, ?, ?, ?, ?)""",
            [intent.client_order_id, intent.strategy, intent.session, broker, intent.symbol,
             str(intent.side), intent.quantity, str(intent.order_type),
             str(intent.time_in_force), intent.limit_price, intent.stop_price,
             intent.trail_percent, intent.trail_amount, str(intent.purpose), dry_run, status,
             reason, now, now, plan_seq, reduces_exposure],
        )
        con.execute(
            "insert into ledger_order_events values (?, ?, ?, 0, null, ?)",
            [intent.client_order_id, now, status, reason],
        )
        return True

    # -- session plans: the whole plan in one transaction, before anything is sent -------------

    def record_plan(self, account: str, plan, *, strategy: str, model_version: str | None,
                    equity: float, buying_power: float, run_id: str | None = None) -> bool:
        """Write `plan` (a `domain.session_plan.SessionPlan`) whole: its row, every order as
        `planned` in sending order, its stop cancels. False (and nothing written) when the
        account already has a plan for that session. Orders of the account's earlier sessions
        still `planned` (a run that never sent them) are closed as superseded: this plan was
        made from the positions they never changed."""
        now = _now()
        with self.warehouse.transaction() as con:
            if con.execute("select 1 from session_plans where account = ? and strategy = ? and session = ?",
                           [account, strategy, plan.session]).fetchone():
                return False
            superseded = [r[0] for r in con.execute(
                """select client_order_id from ledger_orders where broker = ? and strategy = ?
                   and status = ? and session < ?""", [account, strategy, PLANNED, plan.session]).fetchall()]
            for client_order_id in superseded:
                self._set_status(con, client_order_id, NOT_SENT,
                                 f"superseded: the plan of {plan.session} was made without it", now)
            con.execute(
                "insert into session_plans values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [account, strategy, plan.session, model_version, equity, buying_power,
                 json.dumps(list(plan.failures)), json.dumps(list(plan.notes)), run_id, now])
            for failure in plan.failures:  # with the plan: one record, however often it is re-run
                con.execute("insert into risk_events values (?, ?, 'order_path_check', null, ?, null, null)",
                            [now, plan.session, failure])
            for seq, client_order_id in enumerate(plan.cancels):
                con.execute("insert into plan_cancels values (?, ?, ?, ?, ?, null, null)",
                            [account, strategy, plan.session, seq, client_order_id])
            self._insert_planned(con, plan, account, now)
        return True

    @staticmethod
    def _insert_planned(con, plan, account: str, now: datetime) -> None:
        """The plan's orders as `planned`, in one insert per table (a statement per order
        costs milliseconds each at a thousand orders); an id already recorded refuses the plan."""
        if not plan.orders:
            return
        intents = [order.intent for order in plan.orders]
        incoming = pl.DataFrame(  # referenced by name in the SQL below
            {"client_order_id": [i.client_order_id for i in intents],
             "strategy": [i.strategy for i in intents], "session": [i.session for i in intents],
             "broker": account, "symbol": [i.symbol for i in intents],
             "side": [str(i.side) for i in intents], "quantity": [float(i.quantity) for i in intents],
             "order_type": [str(i.order_type) for i in intents],
             "time_in_force": [str(i.time_in_force) for i in intents],
             "limit_price": [i.limit_price for i in intents], "stop_price": [i.stop_price for i in intents],
             "trail_percent": [i.trail_percent for i in intents],
             "trail_amount": [i.trail_amount for i in intents],
             "purpose": [str(i.purpose) for i in intents], "dry_run": False, "status": PLANNED,
             "filled_quantity": 0.0, "avg_fill_price": None, "broker_order_id": None, "reason": None,
             "created_at": now, "updated_at": now, "plan_seq": list(range(len(intents))),
             "reduces_exposure": [order.reduces_exposure for order in plan.orders]},
            schema={"client_order_id": pl.String, "strategy": pl.String, "session": pl.Date,
                    "broker": pl.String, "symbol": pl.String, "side": pl.String, "quantity": pl.Float64,
                    "order_type": pl.String, "time_in_force": pl.String, "limit_price": pl.Float64,
                    "stop_price": pl.Float64, "trail_percent": pl.Float64, "trail_amount": pl.Float64,
                    "purpose": pl.String, "dry_run": pl.Boolean, "status": pl.String,
                    "filled_quantity": pl.Float64, "avg_fill_price": pl.Float64,
                    "broker_order_id": pl.String, "reason": pl.String, "created_at": pl.Datetime("us"),
                    "updated_at": pl.Datetime("us"), "plan_seq": pl.Int32, "reduces_exposure": pl.Boolean})
        taken = con.execute("""select o.client_order_id from ledger_orders o
                               join incoming i using (client_order_id) order by 1 limit 1""").fetchone()
        repeated = incoming["client_order_id"].is_duplicated()
        if taken or repeated.any():
            duplicate = taken[0] if taken else incoming["client_order_id"].filter(repeated)[0]
            raise ValueError(f"order id {duplicate} of the plan for {plan.session} is already in "
                             "the ledger: no plan was recorded")
        columns = ", ".join(incoming.columns)
        con.execute(f"insert into ledger_orders ({columns}) select {columns} from incoming")
        con.execute("""insert into ledger_order_events select client_order_id, created_at, status, 0,
                       null, null from incoming order by plan_seq""")

    def session_plan(self, account: str, strategy: str, session: date) -> dict | None:
        rows = self.warehouse.query(
            "select * from session_plans where account = ? and strategy = ? and session = ?",
            [account, strategy, session])
        if rows.is_empty():
            return None
        row = rows.row(0, named=True)
        return {**row, "failures": tuple(json.loads(row["failures"])), "notes": tuple(json.loads(row["notes"]))}

    def latest_planned_session(self, account: str, strategy: str) -> date | None:
        return self.warehouse.scalar(
            "select max(session) from session_plans where account = ? and strategy = ?", [account, strategy])

    def planned_orders(self, account: str, strategy: str, session: date) -> pl.DataFrame:
        """The plan's orders in sending order, with their current status."""
        return self.warehouse.query(
            """select * from ledger_orders where broker = ? and strategy = ? and session = ?
               and plan_seq is not null order by plan_seq""", [account, strategy, session])

    def plan_cancels(self, account: str, strategy: str, session: date) -> pl.DataFrame:
        return self.warehouse.query(
            """select * from plan_cancels where account = ? and strategy = ? and session = ?
               order by seq""", [account, strategy, session])

    def record_cancel(self, account: str, strategy: str, session: date, seq: int,
                      report: OrderStatusReport) -> None:
        """A plan's cancel was answered: the stop's status, in the plan and on its own row."""
        now = _now()
        with self.warehouse.transaction() as con:
            con.execute("""update plan_cancels set status = ?, recorded_at = ? where account = ?
                           and strategy = ? and session = ? and seq = ?""",
                        [str(report.status), now, account, strategy, session, seq])
            if con.execute("select 1 from ledger_orders where client_order_id = ?",
                           [report.client_order_id]).fetchone():
                self._record_statuses(con, (report,), now)

    def hold(self, client_order_id: str, reason: str) -> None:
        """Not sent (held back by a key, or dropped), with why; a later run may send it."""
        with self.warehouse.transaction() as con:
            self._set_status(con, client_order_id, NOT_SENT, reason, _now(), dry_run=True)

    def mark_unknown(self, client_order_id: str, reason: str) -> None:
        """The venue cannot say whether this order exists: never re-sent, a person decides."""
        with self.warehouse.transaction() as con:
            self._set_status(con, client_order_id, UNKNOWN, reason, _now())

    @staticmethod
    def _set_status(con, client_order_id: str, status: str, reason: str | None, now: datetime,
                    dry_run: bool | None = None) -> None:
        con.execute(
            """update ledger_orders set status = ?, reason = ?, dry_run = coalesce(?, dry_run),
               updated_at = ? where client_order_id = ?""",
            [status, reason, dry_run, now, client_order_id])
        con.execute("insert into ledger_order_events values (?, ?, ?, null, null, ?)",
                    [client_order_id, now, status, reason])

    def mark_submitting(self, *client_order_ids: str) -> None:
        """These intents are about to be sent (or sent again after a crash), in one commit:
        from here a crash leaves each `submitting`, and the next run asks the venue about it."""
        if not client_order_ids:
            return
        now = _now()
        with self.warehouse.transaction() as con:
            marked = pl.DataFrame({"client_order_id": list(client_order_ids)},  # named in the SQL below
                                  schema={"client_order_id": pl.String}).with_row_index("position")
            con.execute(
                """update ledger_orders set status = 'submitting', dry_run = false, reason = null,
                   updated_at = ? where client_order_id in (select client_order_id from marked)""", [now])
            con.execute("""insert into ledger_order_events select client_order_id, ?, 'submitting', 0,
                           null, null from marked order by position""", [now])

    def record_status(self, *reports: OrderStatusReport) -> None:
        """The venue's answers, in one commit."""
        if not reports:
            return
        with self.warehouse.transaction() as con:
            self._record_statuses(con, reports, _now())

    @staticmethod
    def _record_statuses(con, reports: tuple[OrderStatusReport, ...], now: datetime) -> None:
        """The venue's answers on their orders' rows and as events, in two statements whatever
        their number (a statement per order costs milliseconds)."""
        if len({r.client_order_id for r in reports}) != len(reports):
            for report in reports:  # one order answered twice: the later answer wins, as one by one
                Ledger._record_statuses(con, (report,), now)
            return
        answers = pl.DataFrame(  # referenced by name in the SQL below
            {"client_order_id": [r.client_order_id for r in reports],
             "status": [str(r.status) for r in reports],
             "filled_quantity": [r.filled_quantity for r in reports],
             "avg_fill_price": [r.avg_fill_price for r in reports],
             "broker_order_id": [r.broker_order_id for r in reports],
             "reason": [r.reason for r in reports]},
            schema={"client_order_id": pl.String, "status": pl.String, "filled_quantity": pl.Float64,
                    "avg_fill_price": pl.Float64, "broker_order_id": pl.String, "reason": pl.String},
        ).with_row_index("position")
        con.execute(
            """update ledger_orders o set status = a.status, filled_quantity = a.filled_quantity,
               avg_fill_price = a.avg_fill_price, broker_order_id = coalesce(a.broker_order_id, o.broker_order_id),
               reason = coalesce(a.reason, o.reason), dry_run = false, updated_at = ?
               from answers a where o.client_order_id = a.client_order_id""", [now])
        con.execute("""insert into ledger_order_events select client_order_id, ?, status, filled_quantity,
                       avg_fill_price, reason from answers order by position""", [now])

    def orders_for_session(self, session: date, strategy: str) -> pl.DataFrame:
        return self.warehouse.query(
            "select * from ledger_orders where session = ? and strategy = ? order by client_order_id",
            [session, strategy],
        )

    def intents_for_session(self, session: date, strategy: str) -> list[OrderIntent]:
        """The intents recorded for a session, as they were decided."""
        return [
            OrderIntent(
                client_order_id=row["client_order_id"], symbol=row["symbol"], side=Side(row["side"]),
                quantity=row["quantity"], order_type=OrderType(row["order_type"]),
                time_in_force=TimeInForce(row["time_in_force"]), limit_price=row["limit_price"],
                stop_price=row["stop_price"], trail_percent=row["trail_percent"],
                trail_amount=row["trail_amount"], session=row["session"], strategy=row["strategy"],
                purpose=OrderPurpose(row["purpose"]),
            )
            for row in self.orders_for_session(session, strategy).iter_rows(named=True)
        ]

    def open_orders(self, broker: str) -> pl.DataFrame:
        return self.warehouse.query(
            f"""select * from ledger_orders where broker = ? and not dry_run
                and status in ({", ".join("?" * len(OPEN_STATUSES))})""",
            [broker, *OPEN_STATUSES],
        )

    def order_ids(self, broker: str) -> set[str]:
        rows = self.warehouse.query(
            "select client_order_id from ledger_orders where broker = ?", [broker]
        )
        return set(rows["client_order_id"].to_list())

    # -- fills and positions -----------------------------------------------------

    def record_fills(self, fills: Iterable[FillReport], broker: str, session: date) -> int:
        """Append fills not yet recorded (by fill id); returns how many were new.

        A fill already recorded whose figures changed (a venue's execution correction, a
        commission reported after the fill) is revised in place, never added again, and each
        revision is kept in `ledger_fill_revisions` with the figures it replaced."""
        rows = [
            {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "broker": broker,
             "symbol": f.symbol, "side": str(f.side), "quantity": f.quantity, "price": f.price,
             "commission": f.commission,
             "filled_at": f.filled_at.astimezone(UTC).replace(tzinfo=None),
             "recorded_session": session}
            for f in fills
        ]
        if not rows:
            return 0
        incoming = pl.DataFrame(rows)
        now = _now()
        with self.warehouse.transaction() as con:
            before = con.execute("select count(*) from ledger_fills").fetchone()[0]
            con.execute(
                """insert into ledger_fill_revisions
                   select f.fill_id, ?, f.quantity, f.price, f.commission, i.quantity, i.price, i.commission
                   from ledger_fills f join incoming i using (fill_id)
                   where f.quantity <> i.quantity or f.price <> i.price or f.commission <> i.commission""",
                [now])
            con.execute(
                """update ledger_fills f set quantity = i.quantity, price = i.price, commission = i.commission
                   from incoming i where f.fill_id = i.fill_id
                   and (f.quantity <> i.quantity or f.price <> i.price or f.commission <> i.commission)""")
            con.execute(
                """insert into ledger_fills select * from incoming
                   where fill_id not in (select fill_id from ledger_fills)"""
            )
            after = con.execute("select count(*) from ledger_fills").fetchone()[0]
        return after - before

    def fills(self, broker: str) -> pl.DataFrame:
        return self.warehouse.query(
            "select * from ledger_fills where broker = ? order by filled_at, fill_id", [broker]
        )

    def filled_quantity_by_order(self, broker: str) -> dict[str, float]:
        rows = self.warehouse.query(
            """select client_order_id, sum(quantity) as q from ledger_fills
               where broker = ? group by client_order_id""",
            [broker],
        )
        return dict(zip(rows["client_order_id"].to_list(), rows["q"].to_list()))

    def snapshot_session(self, session: date, broker: str, positions: Iterable[PositionReport],
                         account: AccountSnapshot) -> None:
        """The account's positions and figures at `session`, written once in one transaction:
        a fact about that session is never replaced by what the account looks like later."""
        frame = pl.DataFrame(
            [{"session": session, "broker": broker, "symbol": p.symbol,
              "quantity": p.quantity, "avg_entry_price": p.avg_entry_price,
              "market_price": p.market_price} for p in positions],
            schema={"session": pl.Date, "broker": pl.String, "symbol": pl.String,
                    "quantity": pl.Float64, "avg_entry_price": pl.Float64,
                    "market_price": pl.Float64},
        )
        with self.warehouse.transaction() as con:
            if con.execute("select 1 from ledger_account where session = ? and broker = ?",
                           [session, broker]).fetchone():
                raise ValueError(f"account {broker!r} already has a snapshot for {session}: "
                                 "a session's account facts are written once")
            con.execute("insert into ledger_positions select * from frame")
            con.execute("insert into ledger_account values (?, ?, ?, ?, ?, ?)",
                        [session, broker, account.cash, account.equity, account.buying_power, _now()])

    def account_snapshot(self, broker: str, session: date) -> AccountSnapshot | None:
        rows = self.warehouse.query(
            "select cash, equity, buying_power from ledger_account where broker = ? and session = ?",
            [broker, session])
        if rows.is_empty():
            return None
        cash, equity, buying_power = rows.row(0)
        return AccountSnapshot(cash=cash, equity=equity, buying_power=buying_power)

    def positions_snapshot(self, broker: str, session: date) -> list[PositionReport]:
        rows = self.warehouse.query(
            """select symbol, quantity, avg_entry_price, market_price from ledger_positions
               where broker = ? and session = ? order by symbol""", [broker, session])
        return [PositionReport(symbol=s, quantity=q, avg_entry_price=a, market_price=m)
                for s, q, a, m in rows.iter_rows()]

    def latest_snapshot_session(self, broker: str) -> date | None:
        return self.warehouse.scalar("select max(session) from ledger_account where broker = ?", [broker])

    def orders_in_unknown_state(self, broker: str) -> list[tuple[str, str, str | None]]:
        rows = self.warehouse.query(
            """select client_order_id, symbol, reason from ledger_orders where broker = ? and status = ?
               order by client_order_id""", [broker, UNKNOWN])
        return list(rows.iter_rows())

    def account_history(self, broker: str, through: date) -> pl.DataFrame:
        return self.warehouse.query(
            "select session, equity, cash from ledger_account where broker = ? and session <= ? order by session",
            [broker, through],
        )

    # -- controls and audit ------------------------------------------------------

    @functools.cached_property
    def _kill_switch(self) -> KillSwitchStore:  # one per ledger: the switch is read before every order
        return KillSwitchStore(self.warehouse)

    def kill_switch_engaged(self, account: str) -> tuple[bool, str | None]:
        """The account's kill switch: its newest event decides (none: released). A file read
        beside the warehouse, so it is cheap before every submission and sees an emergency
        stop at once, even while another process is writing the warehouse."""
        latest = self._kill_switch.latest(account)
        return (latest.engaged, latest.reason) if latest else (False, None)

    def set_kill_switch(self, account: str, engaged: bool, reason: str, actor: str) -> None:
        if not reason.strip():
            raise ValueError("a reason is required to change the kill switch")
        self._kill_switch.append(
            KillSwitchEvent(recorded_at=_now(), engaged=engaged, reason=reason, actor=actor, account=account))

    def kill_switch_history(self, account: str) -> pl.DataFrame:
        """Every event of the account's switch, oldest first (recorded_at, engaged, reason,
        actor, account); also mirrors into `kill_switch_events` any the warehouse lacks."""
        store = self._kill_switch
        store.mirror(account)
        return store.history(account)

    def record_risk_event(self, session: date | None, kind: str, detail: str, *,
                          symbol: str | None = None, value: float | None = None,
                          limit_value: float | None = None) -> None:
        self.warehouse.execute(
            "insert into risk_events values (?, ?, ?, ?, ?, ?, ?)",
            [_now(), session, kind, symbol, detail, value, limit_value],
        )

    def record_model_event(self, model_name: str, version: str, alias: str, action: str,
                           reason: str, previous_version: str | None = None,
                           metrics: dict | None = None) -> None:
        self.warehouse.execute(
            "insert into model_events values (?, ?, ?, ?, ?, ?, ?, ?)",
            [_now(), model_name, version, alias, action, reason, previous_version,
             json.dumps(metrics or {}, default=str)],
        )

    def model_events(self, model_name: str) -> pl.DataFrame:
        return self.warehouse.query(
            "select * from model_events where model_name = ? order by recorded_at", [model_name]
        )

    def record_promotion(self, strategy: str, model_version: str | None, stage_from: str,
                         stage_to: str, decision: str, reasons: Iterable[str],
                         sessions_evaluated: int) -> None:
        self.warehouse.execute(
            "insert into promotion_decisions values (?, ?, ?, ?, ?, ?, ?, ?)",
            [_now(), strategy, model_version, stage_from, stage_to, decision,
             json.dumps(list(reasons)), sessions_evaluated],
        )

    def latest_promotion(self, strategy: str) -> dict | None:
        rows = self.warehouse.query(
            """select * from promotion_decisions where strategy = ?
               order by recorded_at desc limit 1""",
            [strategy],
        )
        return rows.row(0, named=True) if rows.height else None

