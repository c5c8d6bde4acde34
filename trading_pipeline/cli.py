"""Shell helpers around the code location: `python -m trading_pipeline.cli --help`."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from trading_pipeline.domain.calendar import latest_completed_session, sessions_between
from trading_pipeline.settings import DataSource, TradingSettings


def _latest_session(_: argparse.Namespace) -> int:
    """The newest completed session; with TRADING_DATA_SOURCE=files, the newest one the files
    hold (said on stderr when that is earlier)."""
    settings = TradingSettings()
    latest = latest_completed_session()
    if settings.data_source is not DataSource.FILES:
        print(latest.isoformat())
        return 0
    from trading_pipeline.domain.market import FileBarSource, MarketDataError
    from trading_pipeline.storage.market_store import WarehouseBarFileStore
    from trading_pipeline.storage.warehouse import Warehouse

    # Through the warehouse, as the runs read them: this first load is the one they reuse.
    store = WarehouseBarFileStore(Warehouse(settings.resolved_warehouse_path))
    try:
        source = FileBarSource(settings.data_path, symbol_pattern=settings.symbol_pattern, store=store)
        held = [s for s in source.sessions() if s <= latest]
    except MarketDataError as error:
        print(f"the market data files cannot be used:\n{error}", file=sys.stderr)
        return 2
    if not held:
        print(f"the files in {settings.data_path} hold no bars up to the latest completed NYSE session "
              f"{latest}", file=sys.stderr)
        return 2
    last = held[-1]
    if last < latest:
        print(f"the files in {settings.data_path} end at {last}, before the latest completed NYSE session "
              f"{latest}: using {last}, the last session the data has", file=sys.stderr)
    for name, first in (("TRADING_FIRST_SESSION", settings.first_session),
                        ("TRADING_HISTORY_START", settings.history_start)):
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
    if sessions[0] < settings.first_session:
        print(f"{sessions[0]} is before TRADING_FIRST_SESSION={settings.first_session}: set it to "
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
    for session in sessions:
        result = job.execute_in_process(partition_key=session.isoformat(), instance=instance,
                                        raise_on_error=False)
        if not result.success:
            print(f"{session}: FAILED (run {result.run_id}): {_failure_message(result)}\n"
                  "see `make ui` for the run's logs", file=sys.stderr)
            return 1
        print(_one_line(session, account))
    return 0


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
    from trading_pipeline.storage.warehouse import Warehouse

    wh = Warehouse(TradingSettings().resolved_warehouse_path)
    orders = wh.scalar("select count(*) from ledger_orders where session = ? and broker = ?", [session, account])
    fills = wh.scalar("select count(*) from ledger_fills where recorded_session = ? and broker = ?",
                      [session, account])
    equity = wh.scalar("select equity from ledger_account where session = ? and broker = ?", [session, account])
    breaks = wh.scalar("select count(*) from reconciliation_breaks where session = ? and account = ?",
                       [session, account]) if wh.table_exists("reconciliation_breaks") else 0
    return (f"{session}: {orders} orders, {fills} fills recorded, equity {equity or 0:,.2f}, "
            f"{breaks} breaks ({account})")


def _summary(args: argparse.Namespace) -> int:
    from trading_pipeline.storage.warehouse import Warehouse

    settings = TradingSettings()
    wh = Warehouse(settings.resolved_warehouse_path)
    session = args.session or wh.scalar("select max(session) from ledger_account")
    if session is None:
        print("nothing has run yet: `make demo` runs the first session")
        return 0
    print(f"\nSession {session} ({settings.env}, broker {settings.resolved_broker})")
    print(wh.query("""select status, count(*) as orders, sum(quantity) as shares from ledger_orders
                      where session = ? group by status order by status""", [session]))
    print(wh.query("""select symbol, quantity, avg_entry_price, market_price from ledger_positions
                      where session = ? order by symbol""", [session]))
    print(wh.query("select session, equity, cash from ledger_account order by session desc limit 5"))
    print(f"""
Where to look next:
  web UI          make ui   (then http://127.0.0.1:3000: assets, runs, checks, schedules, sensors)
  warehouse       {settings.resolved_warehouse_path}   (duckdb; tables bars, features, predictions,
                  target_portfolio, submitted_orders, reconciliation_breaks, performance, ledger_*)
  models          MLflow at {settings.resolved_mlflow_uri}
  drift reports   {settings.reports_dir / 'drift'}
  more sessions   make sessions FROM=<first session> TO=<last session>
""")
    return 0


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
            values.get("ROBINHOOD_TOTP_SECRET"), settings.home / "robinhood")
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
