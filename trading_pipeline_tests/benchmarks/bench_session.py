"""A daily session from the shell, as a user runs it: `dagster job execute` of daily_trading_job
for one session, the model already trained, on a fresh home with the synthetic market.

    python -m trading_pipeline_tests.benchmarks.bench_session [--symbols 500]

The first run (session FIRST) loads the history and trains the first model; it is timed but is
not the figure. The figure is the next session's run: wall seconds of the whole command
(process start, imports, every step) and its peak memory. Process start and imports alone are
measured by importing the code location in a fresh interpreter. `runner` prints these.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

FIRST = date(2024, 6, 3)
SECOND = date(2024, 6, 4)
HISTORY_START = date(2021, 1, 4)  # the default training window (500 sessions) plus feature history
# Compiled bytecode is kept between runs, as Python does for a user (the first run compiles),
# in a folder of its own: PYTHONDONTWRITEBYTECODE in the caller's shell would otherwise make
# every run compile MLflow, scikit-learn, SciPy and Evidently from source (seconds per step).
BYTECODE = Path(__file__).resolve().parents[2] / "bench_results" / "bytecode"


def _environment(home: Path, symbols: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRADING_", "DAGSTER_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DAGSTER_HOME=str(home), TRADING_UNIVERSE_SIZE=str(symbols),
               TRADING_HISTORY_START=HISTORY_START.isoformat(), TRADING_FIRST_SESSION=FIRST.isoformat(),
               MLFLOW_DISABLE_TELEMETRY="true", PYTHONWARNINGS="ignore", PYTHONPYCACHEPREFIX=str(BYTECODE))
    return env


def _timed_command(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak memory (MB) of one command and its children; its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def _daily_job(session: date) -> list[str]:
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [dagster, "job", "execute", "-m", "trading_pipeline.definitions", "-j", "daily_trading_job",
            "--tags", f'{{"dagster/partition": "{session.isoformat()}"}}']


def measure_imports() -> dict:
    """A fresh interpreter importing the code location (what every run pays before a step)."""
    with tempfile.TemporaryDirectory() as folder:
        env = _environment(Path(folder) / "home", 50)
        Path(env["DAGSTER_HOME"]).mkdir()
        command = [sys.executable, "-c", "import trading_pipeline.definitions"]
        first_wall, *_ = _timed_command(command, env, Path(folder))  # may compile the bytecode
        wall, cpu, peak, _ = _timed_command(command, env, Path(folder))
        heavy = subprocess.run(
            [sys.executable, "-c", "import sys, trading_pipeline.definitions; print(' '.join(sorted("
             "m for m in ('mlflow', 'evidently', 'ib_insync', 'alpaca', 'robin_stocks', 'lightgbm') "
             "if m in sys.modules)))"], env=env, cwd=folder, capture_output=True, text=True).stdout.strip()
    return {"seconds": wall, "cpu_seconds": cpu, "peak_mb": peak,
            "check": "no SDK imported" if not heavy else f"imports {heavy}",
            "detail": f"python -c 'import trading_pipeline.definitions', bytecode compiled "
                      f"(the first run: {first_wall:.1f} s)"}


def measure_session(symbols: int) -> dict:
    """The second session's `dagster job execute` at `symbols` symbols, the model trained."""
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = _environment(cwd / "home", symbols)
        (cwd / "home").mkdir()
        first_wall, *_ = _timed_command(_daily_job(FIRST), env, cwd)
        wall, cpu, peak, text = _timed_command(_daily_job(SECOND), env, cwd)
        steps = text.count("STEP_SUCCESS")
    slowest = sorted(step_seconds(text).items(), key=lambda item: -item[1])[:5]
    return {"seconds": wall, "cpu_seconds": cpu, "peak_mb": peak,
            "check": f"{steps} steps succeeded" if steps else "no step succeeded",
            "detail": f"session {SECOND} from the shell, model trained (the first session, history and "
                      f"training, took {first_wall:.0f} s); slowest steps: "
                      + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest)}


def step_seconds(log: str) -> dict[str, float]:
    """Each step's wall seconds as Dagster logs them ("Finished execution of step ... in 1.2s")."""
    found = re.findall(r'Finished execution of step "([^"]+)" in ([\d.]+)(ms|s|m)', log)
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0}
    return {name: float(value) * scale[unit] for name, value, unit in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[500])
    args = parser.parse_args()
    row = measure_imports()
    print(f"imports: {row['seconds']:.2f} s wall, CPU {row['cpu_seconds']:.2f} s ({row['check']})")
    for symbols in args.symbols:
        row = measure_session(symbols)
        print(f"daily_trading_job, {symbols} symbols: {row['seconds']:.1f} s wall, CPU {row['cpu_seconds']:.1f} s, "
              f"peak {row['peak_mb']:.0f} MB ({row['check']}; {row['detail']})")


if __name__ == "__main__":
    main()
