"""`dagster dev` (what `make ui` runs) loads the code location, and materialising one asset
partition through the web server's GraphQL API (what the UI's Materialize button sends) works."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTITION = "2024-02-14"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        body = json.load(answer)
    assert "errors" not in body, body
    return body["data"]


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


@pytest.fixture
def web_ui(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
    env.update(DAGSTER_HOME=str(home), TRADING_UNIVERSE_SIZE="6", TRADING_HISTORY_START="2024-01-02")
    dagster = Path(sys.executable).parent / "dagster"
    log = open(tmp_path / "dev.log", "w")
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return True
        except OSError:
            assert process.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            return False

    try:
        wait_for(up, 240, "the web server")
        yield port, home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_ui_lists_everything_and_materialises_a_partition(web_ui):
    port, home = web_ui
    data = graphql(port, """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message }
          ... on RepositoryLocation { repositories { jobs { name } schedules { name } sensors { name }
            assetNodes { assetKey { path } } } } } } } } }""")
    [entry] = data["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert entry["name"] == "trading_pipeline"
    assert location["__typename"] == "RepositoryLocation", location
    [repo] = location["repositories"]
    assert {"market_bars", "predictions", "submitted_orders", "performance"} <= {
        a["assetKey"]["path"][0] for a in repo["assetNodes"]}
    assert "daily_trading_job" in {j["name"] for j in repo["jobs"]}
    assert {s["name"] for s in repo["schedules"]} == {"daily_trading_schedule", "weekly_training_schedule"}
    assert "drift_rollback_sensor" in {s["name"] for s in repo["sensors"]}

    launched = graphql(port, f"""mutation {{ launchRun(executionParams: {{
        selector: {{ repositoryLocationName: "trading_pipeline", repositoryName: "__repository__",
                     jobName: "__ASSET_JOB", assetSelection: [{{path: ["market_bars"]}}] }},
        executionMetadata: {{ tags: [{{key: "dagster/partition", value: "{PARTITION}"}}] }} }}) {{
        __typename ... on LaunchRunSuccess {{ run {{ runId }} }} ... on PythonError {{ message }} }} }}""")
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["launchRun"]["run"]["runId"]

    def finished():
        status = graphql(port, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')
        value = status["runOrError"]["status"]
        return value if value in ("SUCCESS", "FAILURE", "CANCELED") else None

    assert wait_for(finished, 300, "the run") == "SUCCESS"
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("select count(*) from bars where session = ?", [PARTITION]).fetchone()[0]
    finally:
        con.close()
    assert rows == 6
