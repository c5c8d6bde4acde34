import os
from datetime import date
from pathlib import Path

import pytest

# Tests never reach anything but loopback; keep MLflow and friends quiet and local.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture
def small_settings(tmp_path: Path):
    """Settings for a fast end-to-end run: a small universe and a short history."""
    from trading_pipeline.settings import TradingSettings

    def make(**overrides):
        values = dict(
            home=tmp_path / "home",
            universe_size=12,
            history_start=date(2023, 1, 3),
            train_window_sessions=150,
            top_k=4,
            drift_window_sessions=10,
        )
        values.update(overrides)
        return TradingSettings(_env_file=None, **values)

    return make
