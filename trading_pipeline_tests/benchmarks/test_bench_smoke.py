"""`make bench`'s runner at the smoke size: one table, the checks hold, results kept for the
next run to compare with. Figures are printed, never asserted: the machine may be shared.
In one process, so the smoke size costs one interpreter start (`make bench` isolates each row)."""

import json
import subprocess
import sys

import pytest

PARTS = ["backtest loop", "backtest top-k vectorised", "drift statistics", "order path"]


@pytest.mark.slow
def test_the_smoke_size_prints_one_table_and_keeps_the_results(tmp_path):
    results = tmp_path / "bench_results" / "latest.json"
    results.parent.mkdir()
    # a last run to compare with: its seconds make the "vs last" column
    results.write_text(json.dumps({"rows": [{"part": "backtest loop", "size": "50 sym x 1 y", "seconds": 1e-6}]}))
    done = subprocess.run([sys.executable, "-m", "trading_pipeline_tests.benchmarks.runner", "--size", "smoke",
                           "--results", str(results), "--in-process", "--only", *PARTS],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.splitlines()
    assert table[0].split()[:5] == ["part", "size", "seconds", "CPU", "s"]
    rows = json.loads(results.read_text())["rows"]
    assert [row["part"] for row in rows] == PARTS, rows
    assert all("error" not in row and row["seconds"] > 0 and row["peak_mb"] > 0 for row in rows), rows
    checks = {row["part"]: row["check"] for row in rows}
    assert checks == {"backtest loop": "books hold", "backtest top-k vectorised": "equal",
                      "drift statistics": "equal", "order path": "all 100 acknowledged"}
    # the references are slower than what they check
    assert all(row["reference_seconds"] > row["seconds"] for row in rows if "reference_seconds" in row)
    assert rows[0]["vs_last"] > 1  # compared with the planted last run
    assert json.loads((results.parent / "previous.json").read_text())["rows"][0]["seconds"] == 1e-6
    assert any(line.startswith("backtest loop") for line in table)
