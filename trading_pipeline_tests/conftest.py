import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

# Tests never reach anything but loopback; keep MLflow and friends quiet and local.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

# The StockNet daily prices (88 US stocks, 2012-09 .. 2017-09, one Yahoo-style CSV per symbol), kept
# beside the project and read in place: tests trim what they need, never copy it into the repository.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOCKNET_PRICES = (PROJECT_ROOT / ".." / "shared" / "data" / "stocknet-prices").resolve()


def stocknet_prices() -> Path:
    """The StockNet price folder; skips the calling test, or the module when called at import, where it is absent."""
    if not STOCKNET_PRICES.is_dir():
        pytest.skip(f"real StockNet prices not found at {STOCKNET_PRICES} (expected as ../shared/data/stocknet-prices "
                    "relative to the project root); tests on real prices need that folder", allow_module_level=True)
    return STOCKNET_PRICES


# The tests that take minutes, longest first. `make test` runs the suite on every core
# (pytest-xdist, work stealing): started first, they run beside the many short ones instead of
# leaving one core idle at the end.
HEAVY_FIRST = (
    "services/test_crash_injection.py",
    "defs/test_paper_beside_live.py",
    "scenarios/test_paper_account.py",
    "defs/test_readme_commands.py",
    "defs/test_model_lifecycle.py",
    "defs/test_kill_switch_scenario.py",
    "defs/test_ui.py",
    "defs/test_promotion_scenario.py",
    "defs/test_account_timeline.py",
    "defs/test_cli.py",
    "defs/test_adoption_job.py",
    "services/test_adoption.py",
    "services/test_market_data_daily_job.py",
    "defs/test_hold_cash.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("trading_pipeline_tests/")
        return HEAVY_FIRST.index(path) if path in HEAVY_FIRST else len(HEAVY_FIRST)
    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def stocknet_dir() -> Path:
    """The StockNet price folder, read-only; the test is skipped where it is absent."""
    return stocknet_prices()


# A fast end-to-end run: a small universe and a short history. Its first model is traded even
# when it fails the signal gate (TRADING_WITHOUT_SIGNAL=trade): 12 symbols over 150 sessions are
# too few for the gate to judge, and these runs exercise the loop's mechanics, not the signal.
# The default policy (hold_cash) has its own tests: defs/test_hold_cash.py,
# services/test_noise_never_champion.py and the demo market's in domain/test_synthetic_market.py.
SMALL_RUN = dict(universe_size=12, history_start=date(2023, 1, 3), train_window_sessions=150, top_k=4,
                 drift_window_sessions=10, without_signal="trade")


@pytest.fixture
def small_settings(tmp_path: Path):
    """Settings for a fast end-to-end run (SMALL_RUN unless `overrides` say otherwise)."""
    from trading_pipeline.settings import TradingSettings

    def make(**overrides):
        return TradingSettings(_env_file=None, **{"home": tmp_path / "home", **SMALL_RUN, **overrides})

    return make


@contextmanager
def daily_sessions(home: Path, sessions, **overrides):
    """daily_trading_job run for each of `sessions`, in order, on a fresh home and a real Dagster
    instance (SMALL_RUN unless `overrides` say otherwise). Yields the definitions, settings, job,
    instance and each session's run result."""
    import dagster as dg

    from trading_pipeline.definitions import build_definitions
    from trading_pipeline.settings import TradingSettings

    settings = TradingSettings(_env_file=None, **{"home": home / "home", **SMALL_RUN, **overrides})
    defs = build_definitions(settings)
    job = defs.resolve_job_def("daily_trading_job")
    (home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        results = {s: job.execute_in_process(partition_key=s.isoformat(), instance=instance) for s in sessions}
        yield SimpleNamespace(defs=defs, settings=settings, job=job, instance=instance, results=results)
