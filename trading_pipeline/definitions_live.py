"""The live account's code location, beside the paper one (`workspace.paper-live.yaml`).

Dagster gives each code location of a workspace its own process but no environment of its
own, so this module reads the live settings from their own file (`.env.live`, or the file
TRADING_LIVE_ENV_FILE names) into its process before building the same definitions: the
live broker's credentials (the same variable names as paper's) and TRADING_ENV=live. Runs,
schedules and sensors of this location run in processes started from it, with those values.
Both locations share DAGSTER_HOME and the warehouse; each account keeps its own rows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from trading_pipeline.defs.environment import TradingEnvironmentError
from trading_pipeline.settings import TradingEnv

LIVE_ENV_FILE = ".env.live"
LIVE_LOCATION_NAME = "trading_pipeline_live"


def live_environment(path: str | Path) -> dict[str, str]:
    """The variables of the live location's env file; refused unless it says TRADING_ENV=live
    (a second location on the paper account would only fight the first for its lock)."""
    from dotenv import dotenv_values  # python-dotenv: what pydantic-settings reads .env with

    path = Path(path)
    if not path.is_file():
        raise TradingEnvironmentError(
            f"the live code location reads its settings from {path.resolve()}, which does not exist: "
            f"copy .env.example to {path.name}, set TRADING_ENV=live, TRADING_BROKER and the live "
            "account's credentials (dry-run stays on until TRADING_DRY_RUN=false)")
    values = {k: v for k, v in dotenv_values(path).items() if v is not None and v != ""}
    if values.get("TRADING_ENV", "").strip().lower() != TradingEnv.LIVE.value:
        raise TradingEnvironmentError(
            f"{path.name} must set TRADING_ENV=live (it says {values.get('TRADING_ENV') or 'nothing'}): "
            "the live location trades the live account; the paper account is the other location's")
    return values


def _load() -> None:
    """Put the live file's variables into this process: they win over the shell's and `.env`'s,
    since this process serves only the live location."""
    try:
        os.environ.update(live_environment(os.environ.get("TRADING_LIVE_ENV_FILE", LIVE_ENV_FILE)))
    except TradingEnvironmentError as misconfigured:
        if {"grpc", "code-server"} & set(sys.argv):
            raise  # the UI shows it as the location's load error
        raise SystemExit(f"trading_pipeline (live): {misconfigured}") from None


_load()
# imported after the live values are in place: the definitions read them when built
if "trading_pipeline.definitions" in sys.modules:  # already built from other values: build anew
    from trading_pipeline.definitions import build_definitions

    defs = build_definitions()
else:
    from trading_pipeline.definitions import defs  # noqa: F401
