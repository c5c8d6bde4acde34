"""`make ui` and `make mlflow` stop whole on Ctrl-C or SIGTERM, even when started from a shell that
ignores SIGINT (as a background job of a non-interactive shell does), with nothing left running."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A server like `dagster dev`: a parent that starts a child of its own and waits.
SERVER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_server_and_everything_it_started(signum, tmp_path):
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - as `make ... &` inherits it
    wrapper = subprocess.Popen([sys.executable, "-m", "trading_pipeline.serve", "--grace", "5", "--",
                                sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                               preexec_fn=ignore_sigint)
    try:
        grandchild = int(wrapper.stdout.readline())
        time.sleep(0.5)
        wrapper.send_signal(signum)
        assert wrapper.wait(timeout=20) == 0
        deadline = time.monotonic() + 10
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(grandchild), "the server's child outlived the stop"
    finally:
        if wrapper.poll() is None:
            wrapper.kill()


def test_no_command_is_a_clear_error():
    completed = subprocess.run([sys.executable, "-m", "trading_pipeline.serve"], capture_output=True, text=True)
    assert completed.returncode == 2 and "give the command to run after --" in completed.stderr
