"""The benchmarks at the sizes users run, in one table, compared with the last run.

    python -m trading_pipeline_tests.benchmarks.runner [--size smoke|medium|full|all] [--only NAME ...]
                                                       [--results bench_results/latest.json]

`make bench` runs `--size all`: smoke (50 symbols, the suite's smoke test runs these), medium
(500 symbols) and full (3,000 symbols, 20 years). Each row runs in a fresh process, so its peak
memory (max RSS, setup included) is its own. Columns: seconds (wall) and CPU seconds of the
timed part; the reference's seconds and our speed-up over it where a reference exists (ratios
are what to compare on a shared machine: both run in the same process, side by side); the
equality or sanity check (nothing gets faster by doing less); the goal; and the ratio to the
last run's seconds read from the results file, which is then replaced (the previous one is kept
beside it as previous.json).

A part owned elsewhere joins by exposing `measure(**size) -> dict` in a module listed in PARTS
(the features benchmark: `bench_features`, when it exists).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PACKAGE = "trading_pipeline_tests.benchmarks"
DEFAULT_RESULTS = Path("bench_results/latest.json")


@dataclass(frozen=True)
class Part:
    name: str
    module: str  # under PACKAGE
    function: str
    sizes: dict[str, dict]  # size name -> keyword arguments
    goal_seconds: dict[str, float] = field(default_factory=dict)  # size name -> goal
    label: str = ""  # how the size reads in the table, formatted with the kwargs


PARTS = [
    Part("imports", "bench_session", "measure_imports", {"smoke": {}}, {"smoke": 5.0},
         "code location"),
    Part("backtest loop", "bench_backtest", "measure_loop",
         {"smoke": {"symbols": 50, "years": 1}, "medium": {"symbols": 500, "years": 1},
          "full": {"symbols": 3000, "years": 20}}, {"full": 60.0}, "{symbols} sym x {years} y"),
    Part("backtest top-k vectorised", "bench_backtest", "measure_topk",
         {"smoke": {"symbols": 50, "years": 1}, "medium": {"symbols": 500, "years": 5},
          "full": {"symbols": 3000, "years": 20}}, {"full": 5.0}, "{symbols} sym x {years} y"),
    Part("drift statistics", "bench_drift", "measure_statistics",
         {"smoke": {"symbols": 50}, "medium": {"symbols": 500}, "full": {"symbols": 3000}},
         {}, "{symbols} sym"),
    Part("drift report", "bench_drift", "measure_report",
         {"medium": {"symbols": 500}}, {"medium": 3.0}, "{symbols} sym"),
    Part("order path", "bench_order_path", "measure",
         {"smoke": {"orders": 100}, "medium": {"orders": 1000}}, {"medium": 1.0}, "{orders} orders"),
    Part("order path floor (durable commits)", "bench_commit_floor", "measure",
         {"medium": {"orders": 1000}}, {}, "{orders} orders"),
    Part("daily session (shell)", "bench_session", "measure_session",
         {"medium": {"symbols": 500}, "full": {"symbols": 3000}},
         {"medium": 20.0, "full": 60.0}, "{symbols} sym"),
    Part("features", "bench_features", "measure",
         {"smoke": {"symbols": 50, "years": 1}, "medium": {"symbols": 500, "years": 20},
          "full": {"symbols": 3000, "years": 20}}, {"full": 10.0}, "{symbols} sym x {years} y"),
    Part("training", "bench_training", "measure",
         {"smoke": {"symbols": 50, "years": 1}, "medium": {"symbols": 500, "years": 5},
          "full": {"symbols": 3000, "years": 20}}, {"full": 300.0}, "{symbols} sym x {years} y"),
]
SIZES = ("smoke", "medium", "full")


def _available(part: Part) -> bool:
    return importlib.util.find_spec(f"{PACKAGE}.{part.module}") is not None


def run_row(part: Part, size: str) -> dict:
    """One row in a fresh interpreter: its seconds, CPU seconds, peak memory and checks."""
    command = [sys.executable, "-m", f"{PACKAGE}.runner", "--child", part.name, size]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {error[:200]}"}
    return json.loads(lines[-1])


def measure_here(part: Part, size: str) -> dict:
    """The row measured in this process; its peak memory is this process's so far."""
    measure = getattr(importlib.import_module(f"{PACKAGE}.{part.module}"), part.function)
    row = measure(**part.sizes[size])
    row.setdefault("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def _child(name: str, size: str) -> None:
    print(json.dumps(measure_here(next(p for p in PARTS if p.name == name), size), default=str))


def _format(rows: list[dict]) -> str:
    header = ("part", "size", "seconds", "CPU s", "peak MB", "reference", "ref s", "speed-up",
              "check", "goal s", "vs last")
    table = [header]
    for row in rows:
        if "error" in row:
            table.append((row["part"], row["size"], "error", "", "", "", "", "", row["error"], "", ""))
            continue
        ref = row.get("reference_seconds")
        table.append((
            row["part"], row["size"], f"{row['seconds']:.2f}", f"{row.get('cpu_seconds', float('nan')):.2f}",
            f"{row['peak_mb']:.0f}", row.get("reference", ""), f"{ref:.2f}" if ref else "",
            f"{ref / row['seconds']:.1f}x" if ref and row["seconds"] > 0 else "",
            row.get("check", ""), f"{row['goal_seconds']:g}" if row.get("goal_seconds") else "",
            f"{row['vs_last']:.2f}" if row.get("vs_last") else "",
        ))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in table)


def run(sizes: list[str], only: list[str], results: Path, in_process: bool = False) -> list[dict]:
    last = {}
    if results.exists():
        last = {(r["part"], r["size"]): r for r in json.loads(results.read_text())["rows"] if "seconds" in r}
    rows = []
    for size in sizes:
        for part in PARTS:
            if size not in part.sizes or (only and part.name not in only):
                continue
            label = part.label.format(**part.sizes[size]) if part.label else size
            if not _available(part):
                print(f"skipped {part.name}: module {part.module} is not there yet", file=sys.stderr)
                continue
            print(f"running {part.name} at {label} ...", file=sys.stderr, flush=True)
            row = {"part": part.name, "size": label,
                   **(measure_here(part, size) if in_process else run_row(part, size))}
            if size in part.goal_seconds:
                row["goal_seconds"] = part.goal_seconds[size]
            previous = last.get((row["part"], row["size"]))
            if previous and "seconds" in row:
                row["vs_last"] = row["seconds"] / previous["seconds"]
            rows.append(row)
    print(_format(rows))
    results.parent.mkdir(parents=True, exist_ok=True)
    if results.exists():
        results.replace(results.with_name("previous.json"))
    results.write_text(json.dumps({
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        "rows": rows,
    }, indent=2, default=str))
    print(f"results: {results} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=[*SIZES, "all"], default="smoke")
    parser.add_argument("--only", nargs="*", default=[], help="part names, e.g. 'backtest loop'")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--in-process", action="store_true",
                        help="every row in this process (quicker; peak memory is then cumulative)")
    parser.add_argument("--child", nargs=2, metavar=("PART", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    unknown = [name for name in args.only if name not in {p.name for p in PARTS}]
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {[p.name for p in PARTS]}")
    start = time.perf_counter()
    run(list(SIZES) if args.size == "all" else [args.size], args.only, args.results, args.in_process)
    print(f"took {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
