"""Drift reports a person can open from the Dagster UI, and not kept forever.

Each session's HTML report is logged as an artifact of the MLflow run that trained the version
it judges, so it sits beside that model and opens in the MLflow UI's artifact viewer (a link in
the asset's metadata). Evidently's HTML is ~4.5 MB a report: only the newest `keep` sessions'
reports are kept, in the run and in the local reports folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DRIFT_ARTIFACT_DIR = "drift"
DEFAULT_KEEP_SESSIONS = 30
# Where `make mlflow` serves the MLflow UI; with a tracking server, its address is used.
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
_REPORT_NAME = re.compile(r"^drift_(\d{4}-\d{2}-\d{2})\.html$")


@dataclass(frozen=True)
class PublishedReport:
    url: str  # opens the report in the MLflow UI
    artifact: str  # its path inside the run's artifacts
    run_id: str
    removed: tuple[str, ...]  # older reports removed by the retention rule


def mlflow_ui_url(tracking_uri: str) -> str:
    """The MLflow UI for a tracking URI: the server itself, or `make mlflow` for a local store
    (TRADING_MLFLOW_UI_URL overrides, e.g. when it runs on another port)."""
    from trading_pipeline.settings import TradingSettings  # read when a link is made, not at import

    configured = (TradingSettings().locations.mlflow_ui_url or "").strip()
    if configured:
        return configured.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_MLFLOW_UI


def report_url(ui: str, experiment_id: str, run_id: str, artifact: str) -> str:
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{quote(artifact)}"


def drift_report_url(registry, version: str, html_name: str) -> str:
    """The link that opens a published report of `version` in the MLflow UI."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    run = client.get_run(client.get_model_version(registry.model_name, str(version)).run_id)
    return report_url(mlflow_ui_url(registry.tracking_uri), run.info.experiment_id, run.info.run_id,
                      f"{DRIFT_ARTIFACT_DIR}/{html_name}")


def publish_drift_report(registry, version: str, html: Path, keep: int = DEFAULT_KEEP_SESSIONS) -> PublishedReport:
    """Log `html` as `drift/<name>` of `version`'s training run, then keep only the newest
    `keep` drift reports there and beside `html`. Returns the link that opens it."""
    if keep < 1:
        raise ValueError(f"keep={keep}: keep at least the newest report (1 or more)")
    html = Path(html)
    if not html.is_file():
        raise FileNotFoundError(f"no drift report at {html}: drift_report writes it before publishing")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    model_version = client.get_model_version(registry.model_name, str(version))
    run = client.get_run(model_version.run_id)
    client.log_artifact(run.info.run_id, str(html), DRIFT_ARTIFACT_DIR)
    removed = _apply_retention(client, run.info.run_id, run.info.artifact_uri, html.parent, keep)
    artifact = f"{DRIFT_ARTIFACT_DIR}/{html.name}"
    url = report_url(mlflow_ui_url(registry.tracking_uri), run.info.experiment_id, run.info.run_id, artifact)
    return PublishedReport(url, artifact, run.info.run_id, tuple(removed))


def _apply_retention(client, run_id: str, artifact_uri: str, folder: Path, keep: int) -> list[str]:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    removed = []
    logged = sorted((f.path for f in client.list_artifacts(run_id, DRIFT_ARTIFACT_DIR)
                     if _REPORT_NAME.match(Path(f.path).name)), key=lambda p: Path(p).name)
    repository = get_artifact_repository(artifact_uri)
    for path in logged[:-keep]:
        try:
            repository.delete_artifacts(path)
            removed.append(path)
        except NotImplementedError:  # a store that cannot delete keeps them (say so once)
            break
    local = sorted(p for p in folder.glob("drift_*.html") if _REPORT_NAME.match(p.name))
    for path in local[:-keep]:
        path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed
