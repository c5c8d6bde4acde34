"""Model versions in the MLflow registry: record a training run, move aliases, load and score.

Everything goes through an `MlflowClient` bound to this registry's tracking URI, never through
MLflow's process-wide "current tracking URI", so two registries (or tests) never mix stores.
mlflow is imported on first use: it takes seconds, and importing this module must stay cheap.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from trading_pipeline.domain.model.training import (
    BASELINE_ALPHA,
    TrainingResult,
    feature_matrix,
    finite_metrics,
    labels_end_session,
    predict_members,
)
from trading_pipeline.domain.model.validation import METRIC_NAMES

if TYPE_CHECKING:
    import lightgbm as lgb
    from mlflow import MlflowClient

# MLflow otherwise reports usage to its servers; this process reaches nothing but its stores.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A progress bar per model load is noise in run logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_FOLD_PREFIXES = ("fold_", "baseline_fold_")
# An ensemble's members, as LightGBM text files inside the logged model's folder; the MLflow
# model itself is the first member (what a plain `mlflow.lightgbm.load_model` gives).
_ENSEMBLE_FOLDER = "ensemble"
# The last session whose prices the version's labels used: it may score only later sessions.
TRAINING_END_TAG = "training_end"
_QUIET_LOGGERS = {
    # "Creating initial MLflow database tables..." and alembic's migration chatter.
    "mlflow.store.db.utils": logging.WARNING,
    "alembic": logging.WARNING,
    # conda.yaml lists pip unpinned when pip is not installed (uv environments): harmless.
    "mlflow.utils.environment": logging.ERROR,
}


class ModelNotFound(LookupError):
    """No such registered model, version or alias."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, ready to score features."""

    model_name: str
    version: str
    requested: str  # what the caller asked for: an alias, a version or a models:/ URI
    run_id: str
    feature_columns: tuple[str, ...]
    booster: lgb.Booster
    members: tuple[lgb.Booster, ...] = ()  # an ensemble's boosters, `booster` first; empty: alone

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """`session, symbol, score, model_version` for every row of `features`."""
        scores = predict_members(self.members or [self.booster],
                                 feature_matrix(features, self.feature_columns), features["session"])
        return features.select("session", "symbol").with_columns(
            pl.Series("score", np.asarray(scores, dtype=np.float64), pl.Float64),
            pl.lit(self.version, pl.String).alias("model_version"),
        )


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide MLflow's INFO chatter and SQLAlchemy deprecation notices; errors still raise."""
    previous = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name, level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:
        with warnings.catch_warnings():
            try:
                from sqlalchemy.exc import SADeprecationWarning

                warnings.simplefilter("ignore", SADeprecationWarning)
            except ImportError:  # pragma: no cover - SQLAlchemy ships with mlflow
                pass
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


class ModelRegistry:
    """The versions of one registered model, and the experiment its training runs go to."""

    def __init__(self, tracking_uri: str, model_name: str, artifact_location: Path | None = None):
        if not _MODEL_NAME.match(model_name):
            raise ValueError(
                f"model name {model_name!r} must be 1 to 100 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.artifact_location = Path(artifact_location).resolve() if artifact_location else None
        self._client_instance: MlflowClient | None = None
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"ModelRegistry({self.tracking_uri!r}, {self.model_name!r})"

    # -- recording -----------------------------------------------------------------------

    def register(self, result: TrainingResult, extra_tags: dict[str, str] | None = None) -> str:
        """Log a run with the result's params, metrics and artifacts, log its LightGBM model and
        register it as a new version (with `extra_tags` besides its own, e.g. the `as_of` date it
        was trained for). Returns the version (a string such as "3")."""
        from mlflow.entities import LoggedModelStatus, Param, RunStatus

        client = self._client()
        with _quiet():
            experiment_id = self._experiment()
            run = client.create_run(
                experiment_id,
                run_name=f"{self.model_name}-{result.first_session}-{result.last_session}",
                tags={"model_name": self.model_name},
            )
            run_id = run.info.run_id
            try:
                params = [Param(k, str(v)) for k, v in self._run_params(result).items()]
                client.log_batch(run_id, metrics=self._run_metrics(result), params=params)
                client.log_text(run_id, result.feature_importance.write_csv(), "feature_importance.csv")
                client.log_text(run_id, result.fold_metrics.write_csv(), "fold_metrics.csv")
                client.log_dict(run_id, {"feature_columns": list(result.feature_columns)}, "features.json")
                model_id, source = self._log_model(client, experiment_id, run_id, result)
                client.finalize_logged_model(model_id, LoggedModelStatus.READY)
                self._ensure_registered_model(client)
                version = client.create_model_version(
                    self.model_name, source=source, run_id=run_id, model_id=model_id,
                    tags={**self._version_tags(result), **(extra_tags or {})},
                    description=f"trained on {result.first_session}..{result.last_session}",
                ).version
            except BaseException:
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
                raise
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return str(version)

    def _log_model(self, client: MlflowClient, experiment_id: str, run_id: str,
                   result: TrainingResult) -> tuple[str, str]:
        import lightgbm as lgb
        import mlflow.lightgbm
        import sklearn
        from mlflow.models import Model, infer_signature

        booster = result.model
        logged = client.create_logged_model(
            experiment_id, name="model", source_run_id=run_id, model_type="lightgbm",
            params={k: str(v) for k, v in result.params.items()},
        )
        # The signature names the float inputs in order; scores are one float per row.
        example = pl.DataFrame({c: [0.0] for c in result.feature_columns}).to_pandas()
        signature = infer_signature(example, np.zeros(1, dtype=np.float64))
        requirements = [
            f"lightgbm=={lgb.__version__}",
            f"numpy=={np.__version__}",
            f"scikit-learn=={sklearn.__version__}",
            f"mlflow=={mlflow.__version__}",
        ]
        with tempfile.TemporaryDirectory(prefix="model-") as folder:
            path = Path(folder) / "model"
            mlflow.lightgbm.save_model(
                booster, str(path), signature=signature, pip_requirements=requirements,
                mlflow_model=Model(artifact_path="model", run_id=run_id, model_id=logged.model_id),
            )
            if len(result.members) > 1:
                (path / _ENSEMBLE_FOLDER).mkdir()
                for index, member in enumerate(result.members):
                    member.save_model(str(path / _ENSEMBLE_FOLDER / f"member_{index:03d}.txt"))
            client.log_model_artifacts(logged.model_id, str(path))
        return logged.model_id, logged.artifact_location

    @staticmethod
    def _run_params(result: TrainingResult) -> dict[str, Any]:
        return {
            **{f"lgbm.{k}": v for k, v in sorted(result.params.items())},
            "horizon": result.horizon,
            "embargo": result.embargo,
            "n_folds": len(result.folds),
            "min_train_sessions": result.min_train_sessions,
            "seed": result.seed,
            "ensemble_seeds": len(result.members) or 1,
            "first_session": result.first_session.isoformat(),
            "last_session": result.last_session.isoformat(),
            TRAINING_END_TAG: result.training_end.isoformat(),
            "n_rows": result.n_rows,
            "n_symbols": result.n_symbols,
            "feature_columns": ",".join(result.feature_columns),
            "baseline": f"Ridge(alpha={BASELINE_ALPHA}) on median-imputed, standardised features",
        }

    @staticmethod
    def _run_metrics(result: TrainingResult) -> list:
        from mlflow.entities import Metric

        now = int(datetime.now(tz=UTC).timestamp() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in finite_metrics(result.metrics).items()]
        metrics += [
            Metric(f"baseline_{k}", v, now, 0)
            for k, v in finite_metrics(result.baseline_metrics).items()
        ]
        for row in result.fold_metrics.iter_rows(named=True):
            prefix = "fold_" if row["model"] == "lightgbm" else "baseline_fold_"
            values = {k: row[k] for k in METRIC_NAMES}
            metrics += [
                Metric(f"{prefix}{k}", v, now, int(row["fold"]))
                for k, v in finite_metrics(values).items()
            ]
        return metrics

    @staticmethod
    def _version_tags(result: TrainingResult) -> dict[str, str]:
        tags = {
            "first_session": result.first_session.isoformat(),
            "last_session": result.last_session.isoformat(),
            TRAINING_END_TAG: result.training_end.isoformat(),
            "horizon": str(result.horizon),
            "feature_columns": ",".join(result.feature_columns),
        }
        tags.update({f"oos_{k}": repr(v) for k, v in finite_metrics(result.metrics).items()})
        return tags

    def _ensure_registered_model(self, client: MlflowClient) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(self.model_name)
        except MlflowException:
            client.create_registered_model(
                self.model_name, description="Daily cross-sectional return ranker (LightGBM)."
            )

    def log_version_metrics(self, version: str, metrics: dict[str, float]) -> None:
        """Add `metrics` (e.g. its backtest's) to the training run of `version`. Values that are
        not finite numbers are left out; logging a key again adds its newer value."""
        from mlflow.entities import Metric

        run_id = self._version_or_raise(str(version)).run_id
        now = int(datetime.now(tz=UTC).timestamp() * 1000)
        with _quiet():
            self._client().log_batch(
                run_id, metrics=[Metric(k, v, now, 0) for k, v in finite_metrics(metrics).items()])

    def log_version_text(self, version: str, text: str, artifact_file: str) -> None:
        """Store `text` (a CSV, a report) as the artifact `artifact_file` of `version`'s run."""
        run_id = self._version_or_raise(str(version)).run_id
        with _quiet():
            self._client().log_text(run_id, text, artifact_file)

    # -- aliases and versions ------------------------------------------------------------

    def set_alias(self, alias: str, version: str, reason: str, actor: str | None = None) -> None:
        """Point `alias` at `version` and record on that version who moved it, when and why."""
        if not reason or not reason.strip():
            raise ValueError("set_alias needs a reason: it is recorded for whoever reads the registry")
        version = str(version)
        self._version_or_raise(version)
        previous = self.alias_version(alias)
        client = self._client()
        who = actor or _current_user()
        with _quiet():
            client.set_registered_model_alias(self.model_name, alias, version)
            for key, value in {
                "reason": reason,
                "set_by": who,
                "set_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
                "previous_version": previous or "none",
            }.items():
                client.set_model_version_tag(self.model_name, version, f"alias.{alias}.{key}", value)

    def alias_version(self, alias: str) -> str | None:
        """The version `alias` points at, or None when the alias (or the model) does not exist."""
        from mlflow.exceptions import MlflowException

        with _quiet():
            try:
                return str(self._client().get_model_version_by_alias(self.model_name, alias).version)
            except MlflowException:
                return None

    def champion_version(self) -> str | None:
        return self.alias_version("champion")

    def versions(self) -> list[str]:
        """Every registered version, oldest first."""
        with _quiet():
            found = self._client().search_model_versions(f"name = '{self.model_name}'")
        return [str(v) for v in sorted(int(mv.version) for mv in found)]

    def previous_version(self, version: str) -> str | None:
        """The newest version registered before `version`, or None."""
        earlier = [v for v in self.versions() if int(v) < int(version)]
        return earlier[-1] if earlier else None

    def metrics(self, version: str) -> dict[str, float]:
        """The out-of-sample metrics recorded with `version` (LightGBM and `baseline_*`)."""
        run = self._run_of(version)
        return {k: v for k, v in run.data.metrics.items() if not k.startswith(_FOLD_PREFIXES)}

    def training_window(self, version: str) -> tuple[date, date]:
        """The first and last session of the labelled rows `version` was trained on."""
        tags = self._version_or_raise(str(version)).tags
        return date.fromisoformat(tags["first_session"]), date.fromisoformat(tags["last_session"])

    def training_end(self, version: str) -> date:
        """The last session whose prices `version`'s training labels used (its last label
        session plus the horizon): the version may score only sessions after it. Versions
        registered before this tag existed get it from their last label session and horizon."""
        return _training_end(self._version_or_raise(str(version)).tags, str(version))

    def version_tags(self) -> dict[str, dict[str, str]]:
        """Every registered version's tags, by version, in one registry query."""
        with _quiet():
            found = self._client().search_model_versions(f"name = '{self.model_name}'")
        return {str(mv.version): dict(mv.tags) for mv in found}

    def training_ends(self) -> dict[str, date]:
        """Every registered version's training end (see `training_end`), by version."""
        return {version: _training_end(tags, version) for version, tags in self.version_tags().items()}

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        self._version_or_raise(str(version))
        with _quiet():
            self._client().set_model_version_tag(self.model_name, str(version), key, value)

    # -- loading -------------------------------------------------------------------------

    def resolve(self, version_or_alias: str) -> str:
        """The version number behind a version, an alias or a `models:/NAME@alias|/N` URI."""
        requested = str(version_or_alias)
        target = requested
        match = _MODEL_URI.match(requested)
        if match:
            if match["name"] != self.model_name:
                raise ModelNotFound(
                    f"{requested!r} names model {match['name']!r}; this registry holds "
                    f"{self.model_name!r}"
                )
            target = match["alias"] or match["version"]
        if target.isdigit():
            self._version_or_raise(target)
            return target
        version = self.alias_version(target)
        if version is None:
            raise ModelNotFound(
                f"model {self.model_name!r} has no version with alias {target!r}: "
                "train and register a model, then set the alias"
            )
        return version

    def load(self, version_or_alias: str) -> LoadedModel:
        """The model behind a version ("3"), an alias ("champion") or a models:/ URI, with the
        resolved version recorded so every prediction says which version made it."""
        import lightgbm as lgb
        import mlflow.artifacts
        import mlflow.lightgbm

        version = self.resolve(version_or_alias)
        model_version = self._version_or_raise(version)
        with _quiet(), tempfile.TemporaryDirectory(prefix="model-") as folder:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_version.source, dst_path=folder, tracking_uri=self.tracking_uri
            )
            booster = mlflow.lightgbm.load_model(local)
            members = tuple(lgb.Booster(model_file=str(member)) for member in
                            sorted((Path(local) / _ENSEMBLE_FOLDER).glob("member_*.txt")))
        return LoadedModel(
            model_name=self.model_name,
            version=version,
            requested=str(version_or_alias),
            run_id=model_version.run_id,
            feature_columns=tuple(booster.feature_name()),
            booster=booster,
            members=members,
        )

    # -- plumbing ------------------------------------------------------------------------

    def _client(self) -> MlflowClient:
        if self._client_instance is None:
            from mlflow import MlflowClient

            with _quiet():
                self._client_instance = MlflowClient(
                    tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
                )
        return self._client_instance

    def _experiment(self) -> str:
        if self._experiment_id is None:
            client = self._client()
            existing = client.get_experiment_by_name(self.model_name)
            if existing is not None:
                self._experiment_id = existing.experiment_id
            else:
                location = None
                if self.artifact_location is not None:
                    location = (self.artifact_location / self.model_name).as_uri()
                self._experiment_id = client.create_experiment(
                    self.model_name, artifact_location=location
                )
        return self._experiment_id

    def _version_or_raise(self, version: str):
        from mlflow.exceptions import MlflowException

        with _quiet():
            try:
                return self._client().get_model_version(self.model_name, version)
            except MlflowException as error:
                raise ModelNotFound(
                    f"model {self.model_name!r} has no version {version!r} "
                    f"(registered: {self.versions() or 'none'})"
                ) from error

    def _run_of(self, version: str):
        model_version = self._version_or_raise(str(version))
        with _quiet():
            return self._client().get_run(model_version.run_id)


def _training_end(tags: dict[str, str], version: str) -> date:
    if TRAINING_END_TAG in tags:
        return date.fromisoformat(tags[TRAINING_END_TAG])
    try:
        return labels_end_session(date.fromisoformat(tags["last_session"]), int(tags["horizon"]))
    except KeyError as missing:
        raise ModelNotFound(f"version {version} has no {missing} tag: it was not registered by "
                            "ModelRegistry.register, so its training end is unknown") from None


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


__all__ = ["TRAINING_END_TAG", "LoadedModel", "ModelNotFound", "ModelRegistry"]
