"""Run a server (the Dagster UI, the MLflow UI) until Ctrl-C or SIGTERM, then stop all of it.

`dagster dev` started from a shell that ignores SIGINT (any `&` in a non-interactive shell, and
so make under some terminals and CI) inherits the ignore, and Dagster makes SIGTERM behave as
SIGINT: neither stops it, and its web server, daemon and code servers outlive `make ui`. Here the
server starts in a process group of its own with both signals at their defaults; Ctrl-C or
SIGTERM to this process stops that group (SIGINT first, as Dagster expects, then SIGKILL after a
grace period), and nothing is left running.

    python -m trading_pipeline.serve [--grace SECONDS] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def _defaults() -> None:  # in the child, before exec: signals a server must be able to receive
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve(command: list[str], grace: float = 15.0) -> int:
    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_defaults)
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while child.poll() is None and not stopping:
        time.sleep(0.2)
    if child.poll() is not None:
        _kill_group(child.pid, signal.SIGKILL)  # the server left: nothing of its group stays behind
        return child.returncode
    print("stopping ...", file=sys.stderr, flush=True)
    _kill_group(child.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(child.pid):
        child.poll()
        time.sleep(0.2)
    if _group_alive(child.pid):
        _kill_group(child.pid, signal.SIGKILL)
    child.wait()
    return 0


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trading_pipeline.serve")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds to wait after SIGINT before SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return serve(command, args.grace)


if __name__ == "__main__":
    sys.exit(main())
