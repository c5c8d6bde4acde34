"""Shell helpers around the code location: `python -m trading_pipeline.cli --help`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

from trading_pipeline.domain.calendar import latest_completed_session, sessions_between
from trading_pipeline.settings import DataSource, TradingSettings


def _latest_session(_: argparse.Namespace) -> int:
    """The newest completed session; with TRADING_DATA_SOURCE=files, the newest one the files
    hold (said on stderr when that is earlier)."""
    settings = TradingSettings()
    latest = latest_completed_session()
    if settings.data.data_source is not DataSource.FILES:
        print(latest.isoformat())
        return 0
    from trading_pipeline.domain.market import FileBarSource, MarketDataError
    from trading_pipeline.storage.market_store import WarehouseBarFileStore
    from trading_pipeline.storage.warehouse import Warehouse

    # Through the warehouse, as the runs read them: this first load is the one they reuse.
    store = WarehouseBarFileStore(Warehouse(settings.resolved_warehouse_path))
    try:
        source = FileBarSource(settings.data.data_path, symbol_pattern=settings.data.symbol_pattern, store=store)
        held = [s for s in source.sessions() if s <= latest]
    except MarketDataError as error:
        print(f"the market data files cannot be used:\n{error}", file=sys.stderr)
        return 2
    if not held:
        print(f"the files in {settings.data.data_path} hold no bars up to the latest completed NYSE session "
              f"{latest}", file=sys.stderr)
        return 2
    last = held[-1]
    if last < latest:
        print(f"the files in {settings.data.data_path} end at {last}, before the latest completed NYSE session "
              f"{latest}: using {last}, the last session the data has", file=sys.stderr)
    for name, first in (("TRADING_FIRST_SESSION", settings.data.first_session),
                        ("TRADING_HISTORY_START", settings.data.history_start)):
        if first > last:
            print(f"{name}={first} is after {last}, the last session the files hold: set it to a "
                  f"session in {held[0]} .. {last}", file=sys.stderr)
            return 2
    print(last.isoformat())
    return 0


def _run_sessions(args: argparse.Namespace) -> int:
    """daily_trading_job for each session of a range, in order, on the account the environment
    names. Everything a run needs is checked first: only closed sessions, not before
    TRADING_FIRST_SESSION, and never a session the account has moved past without trading it."""
    import dagster as dg

    from trading_pipeline.definitions import build_definitions
    from trading_pipeline.defs.environment import resources_for
    from trading_pipeline.storage.ledger import Ledger
    from trading_pipeline.storage.warehouse import Warehouse

    settings = TradingSettings()
    sessions = sessions_between(args.start, args.end)
    if not sessions:
        print(f"no NYSE sessions between {args.start} and {args.end}", file=sys.stderr)
        return 2
    latest = latest_completed_session()
    if sessions[-1] > latest:
        print(f"{sessions[-1]} has not closed yet: the latest completed NYSE session is {latest}; "
              "a session exists only once its close has passed", file=sys.stderr)
        return 2
    if sessions[0] < settings.data.first_session:
        print(f"{sessions[0]} is before TRADING_FIRST_SESSION={settings.data.first_session}: set it to "
              f"{sessions[0]} or earlier (history before it must be loadable)", file=sys.stderr)
        return 2
    account = resources_for(settings)["broker"].venue
    ledger = Ledger(Warehouse(settings.resolved_warehouse_path))
    moved_to = ledger.latest_planned_session(account, settings.strategy)
    if moved_to is not None:
        recorded = [s for s in sessions if s <= moved_to]
        untraded = [s for s in recorded if ledger.session_plan(account, settings.strategy, s) is None]
        if untraded:
            print(f"account {account!r} has moved on to session {moved_to}: {untraded[0]} .. "
                  f"{untraded[-1]} were never traded by it and cannot be now (an account moves "
                  f"forward only). Run sessions after {moved_to}, or trade history in an account "
                  "of its own: a fresh TRADING_HOME (README, 'History and replays')", file=sys.stderr)
            return 2
        if recorded:
            print(f"{recorded[0]} .. {recorded[-1]} are on record for {account!r}: reported, not re-traded")
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    instance = dg.DagsterInstance.get()
    # One line per session here: no step lines, and the console only for warnings (every event
    # is in the run's log, in the UI).
    os.environ["TRADING_PROGRESS"] = "off"
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    progress = Progress(len(sessions))
    for session in sessions:
        result = job.execute_in_process(partition_key=session.isoformat(), instance=instance,
                                        raise_on_error=False, run_config=quiet)
        if not result.success:
            print(f"{session}: FAILED (run {result.run_id}): {_failure_message(result)}\n"
                  "see `make ui` for the run's logs", file=sys.stderr)
            return 1
        print(f"{progress.step()} {_one_line(session, account)}", flush=True)
    print(f"done: {len(sessions)} sessions in {_duration(progress.elapsed)}; `make summary` shows the "
          "last one, `make ui` > Assets > account_view every one")
    return 0


class Progress:
    """`[3/22, ETA 4 min]`: the sessions done and the time left at the pace so far."""

    def __init__(self, total: int, clock=time.monotonic):
        self.total, self.done, self._clock = total, 0, clock
        self._started = clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def step(self) -> str:
        self.done += 1
        left = self.total - self.done
        eta = "done" if left == 0 else f"ETA {_duration(self.elapsed / self.done * left)}"
        return f"[{self.done}/{self.total}, {eta}]"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        if event.event_type_value == "RESOURCE_INIT_FAILURE":
            error = event.event_specific_data.error
            cause = error.cause.message.strip() if error.cause else ""
            return cause or error.message.strip()
    return "the run failed"


def _one_line(session: date, account: str) -> str:
    from trading_pipeline.defs.metadata import money
    from trading_pipeline.storage.warehouse import Warehouse

    wh = Warehouse(TradingSettings().resolved_warehouse_path)
    orders = wh.scalar("select count(*) from ledger_orders where session = ? and broker = ?", [session, account])
    fills = wh.scalar("select count(*) from ledger_fills where recorded_session = ? and broker = ?",
                      [session, account])
    equity = wh.scalar("select equity from ledger_account where session = ? and broker = ?", [session, account])
    breaks = wh.scalar("select count(*) from reconciliation_breaks where session = ? and account = ?",
                       [session, account]) if wh.table_exists("reconciliation_breaks") else 0
    return (f"{session}: {orders} orders, {fills} fills, equity {money(equity or 0.0)}, "
            f"{breaks} breaks ({account})")


def _summary(args: argparse.Namespace) -> int:
    print("\n".join(summary_lines(TradingSettings(), args.session)))
    return 0


SUMMARY_ROWS = 4  # rows of each table: the whole lists are on the account_view asset


def summary_lines(settings: TradingSettings, session: date | None = None) -> list[str]:
    """The session's account in a few readable lines (the same figures as the account_view
    asset), and where to look next."""
    from trading_pipeline.defs.environment import resources_for
    from trading_pipeline.defs.metadata import money, percent
    from trading_pipeline.services.account_view import account_view, drift_row
    from trading_pipeline.services.modeling import version_used
    from trading_pipeline.storage.ledger import Ledger
    from trading_pipeline.storage.warehouse import Warehouse

    account = resources_for(settings)["broker"].venue
    warehouse = Warehouse(settings.resolved_warehouse_path)
    if not warehouse.path.exists() or not warehouse.table_exists("ledger_account"):
        return ["nothing has run yet: `make demo` runs the first session"]
    ledger = Ledger(warehouse)
    session = session or ledger.latest_snapshot_session(account)
    if session is None:
        return [f"account {account!r} has no session yet: `make demo` runs the first one"]
    try:
        desk = account_view(ledger, account, session)
    except LookupError as missing:
        return [str(missing)]
    today, drift = desk.today, drift_row(ledger, session, account)
    invested = float(desk.positions["market_value"].sum()) if desk.positions.height else 0.0
    switch = f"ENGAGED: {desk.kill_switch_reason}" if desk.kill_switch_engaged else "released"
    version = version_used(warehouse, session, account)
    lines = [
        "",
        f"Session {session}, account {account} ({settings.env})",
        f"  equity {money(desk.equity)}   cash {money(desk.cash)}   daily P&L {money(today.get('daily_pnl'))} "
        f"({percent(today.get('daily_return'))})   drawdown {percent(today.get('drawdown'))}",
        f"  kill switch {switch}   model v{version or '?'}   drift "
        + (f"{drift['severity']} ({percent(drift['drifted_share'], 0)} of columns)" if drift else "not run"),
        "",
        f"Orders decided at {session} ({desk.orders.height}; they fill at the next session's open)",
        *_text_table(desk.orders.select("symbol", "side", "quantity", "type", "purpose", "status"),
                     {"quantity": "shares"}),
        "",
        f"Positions after {session} ({desk.positions.height}, {money(invested)} invested, "
        f"unrealised {money(desk.unrealised_pnl)})",
        *_text_table(desk.positions.select("symbol", "quantity", "entry", "last", "market_value",
                                           "unrealised_pnl", "weight"),
                     {"quantity": "shares", "entry": "price", "last": "price", "market_value": "money",
                      "unrealised_pnl": "money", "weight": "percent"}),
        "",
        "Next: make ui      http://127.0.0.1:3000 > account_view: every position and order, the equity",
        "                   chart, kill switch, champion and why, the drift report (make mlflow opens it)",
        "      make sessions FROM=<session> TO=<session>: more sessions, one line each",
    ]
    return lines


def _text_table(frame, formats: dict[str, str], limit: int = SUMMARY_ROWS) -> list[str]:
    """A frame as aligned text rows (numbers right-aligned), at most `limit`, then how many more."""
    from trading_pipeline.defs.metadata import money, percent, price, shares

    if frame.is_empty():
        return ["  (none)"]
    show = {"money": money, "price": price, "percent": percent, "shares": shares}
    cells = [[show[formats[c]](v) if c in formats else ("" if v is None else str(v))
              for c, v in row.items()] for row in frame.head(limit).iter_rows(named=True)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(frame.columns)]
    right = [c in formats for c in frame.columns]

    def fmt(values: list[str]) -> str:
        return "  " + "  ".join(v.rjust(w) if r else v.ljust(w)
                                for v, w, r in zip(values, widths, right, strict=True)).rstrip()

    more = [f"  ... {frame.height - limit} more on account_view"] if frame.height > limit else []
    return [fmt(list(frame.columns)), *[fmt(r) for r in cells], *more]


def _robinhood_login(_: argparse.Namespace) -> int:
    """The one interactive Robinhood login on a machine: password, MFA code and approval of
    this device in the Robinhood app. The session it stores (mode 600, under the project's
    home) lets the unattended daily runs log in as the same, approved device."""
    import os

    from trading_pipeline.brokers.robinhood import RobinhoodConfig, RobinhoodLoginError
    from trading_pipeline.brokers.robinhood.login import first_login

    from dotenv import dotenv_values

    settings = TradingSettings()
    values = {**dotenv_values(".env"), **os.environ}  # as the runs see them: .env, then the environment
    try:
        config = RobinhoodConfig.from_values(
            values.get("ROBINHOOD_USERNAME"), values.get("ROBINHOOD_PASSWORD"),
            values.get("ROBINHOOD_TOTP_SECRET"), settings.locations.home / "robinhood")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print("Logging in to Robinhood; approve this device in the Robinhood app when it asks.")
    try:
        stored = first_login(config)
    except RobinhoodLoginError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Robinhood session stored in {stored}: the daily runs now log in without you.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trading_pipeline.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("latest-session", help="print the newest NYSE session whose close has passed")
    run = commands.add_parser("run-sessions", help="run daily_trading_job for every session in a range")
    run.add_argument("--start", type=date.fromisoformat, required=True)
    run.add_argument("--end", type=date.fromisoformat, required=True)
    summary = commands.add_parser("summary", help="orders, positions and equity of a session")
    summary.add_argument("--session", type=date.fromisoformat)
    commands.add_parser("robinhood-login", help="log in to Robinhood once at a terminal, approving "
                        "this device, so unattended runs can log in")
    args = parser.parse_args(argv)
    handler = {"latest-session": _latest_session, "run-sessions": _run_sessions, "summary": _summary,
               "robinhood-login": _robinhood_login}
    return handler[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
