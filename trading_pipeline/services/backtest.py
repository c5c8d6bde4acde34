"""A model version's backtest, stored with the version: its expectation for the monitor.

Contract for training (`services/modeling.train_and_register`): after `registry.register`,
call

    backtest_version(warehouse, registry, version,
                     result.oos_predictions.select("session", "symbol", "fold",
                                                   pl.col("prediction").alias("score")),
                     strategy)

with the walk-forward out-of-sample predictions, so the expectation is out of sample: each
session is scored by a fold model whose labels ended before it. Scores of sessions on or before
the version's training end without a `fold` are refused (the final model saw those prices);
sessions after it may be scored by the version itself.
`strategy` is the `StrategyResource` (or anything with its `strategy`, `construction()`,
`stop_policy()`, `kill_switch_rules()`, `flatten_on_kill_switch`), or a ready
`BacktestConfig`. The venue's costs are `strategy.execution()` (the configured slippage and
commission) unless `execution=` is given.

Scored sessions without `var_lookback` sessions of stored bars before them are dropped from
the start (the daily loop could not size a book on them); what remains must be consecutive
sessions. A session where the daily loop itself would fail raises `BacktestError`.

Stored: `backtest_equity` (model_version, session, equity, cash, exposure, turnover,
commission, positions, daily return, drawdown, ...) and `backtest_summary` (one row per
model_version: the window and every summary metric). A re-run replaces the version's rows.
The summary is also logged as `backtest_*` metrics on the version's MLflow run, with the daily
frame as the artifact `backtest/daily.csv`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from trading_pipeline.domain.backtest import BacktestConfig, BacktestError, BacktestResult, run_backtest
from trading_pipeline.domain.calendar import sessions_back
from trading_pipeline.domain.execution import ExecutionConfig
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse

BACKTEST_EQUITY = "backtest_equity"
BACKTEST_SUMMARY = "backtest_summary"
METRIC_PREFIX = "backtest_"
DEFAULT_INITIAL_CASH = 100_000.0  # the paper simulator's and TRADING_INITIAL_CASH's default


class ExpectationNotFound(LookupError):
    """No backtest is stored for a model version."""


def backtest_config(strategy, execution: ExecutionConfig | None = None,
                    initial_cash: float | None = None) -> BacktestConfig:
    """The `BacktestConfig` of a strategy as the daily loop runs it.

    `execution`: the venue's rules; default `strategy.execution()` (the configured costs) when
    the strategy has it, else the paper simulator's defaults. When it is a `SimulatorConfig`
    its `initial_cash` is used unless `initial_cash` is given.
    """
    if isinstance(strategy, BacktestConfig):
        return strategy
    if execution is None:
        execution = strategy.execution() if hasattr(strategy, "execution") else ExecutionConfig()
    construction = strategy.construction()
    limits = construction.limits
    # The daily loop reads these two from the strategy, the backtest from the limits: they
    # must agree or the backtest would not trade what the loop trades.
    for name in ("min_order_value", "var_lookback"):
        if getattr(strategy, name, getattr(limits, name)) != getattr(limits, name):
            raise BacktestError(f"strategy.{name} ({getattr(strategy, name)}) differs from its risk "
                                f"limits' ({getattr(limits, name)}): make them the same setting")
    cash = initial_cash if initial_cash is not None else getattr(execution, "initial_cash",
                                                                 DEFAULT_INITIAL_CASH)
    return BacktestConfig(
        strategy=strategy.strategy, construction=construction, stop_policy=strategy.stop_policy(),
        kill_switch=strategy.kill_switch_rules(),
        flatten_on_kill_switch=bool(strategy.kill_switch.flatten_on_kill_switch), execution=execution,
        initial_cash=cash,
    )


def backtest_version(warehouse: Warehouse, registry: ModelRegistry, version: str,
                     scores: pl.DataFrame, strategy, *, execution: ExecutionConfig | None = None,
                     initial_cash: float | None = None) -> BacktestResult:
    """Backtest `scores` (session, symbol, score, and `fold` for walk-forward scores) of
    `version` on the stored bars, store the result with the version and log its summary on the
    version's MLflow run. Scores of sessions on or before the version's training end must be
    walk-forward ones (see `point_in_time_scores`)."""
    version = str(version)
    registry.resolve(version)  # an unknown version fails before any work
    scores = point_in_time_scores(scores, version, registry.training_end(version))
    result = backtest_scores(warehouse, scores, strategy, execution=execution,
                             initial_cash=initial_cash)
    computed_at = datetime.now(tz=UTC).replace(tzinfo=None)
    warehouse.replace_where(BACKTEST_EQUITY, {"model_version": version},
                            result.daily.select(pl.lit(version).alias("model_version"), pl.all()))
    warehouse.replace_where(BACKTEST_SUMMARY, {"model_version": version},
                            _summary_row(version, result, computed_at))
    registry.log_version_metrics(version, {f"{METRIC_PREFIX}{k}": v for k, v in result.summary.items()})
    registry.log_version_text(version, result.daily.write_csv(), "backtest/daily.csv")
    return result


def point_in_time_scores(scores: pl.DataFrame, version: str, training_end) -> pl.DataFrame:
    """`session, symbol, score` once every row is known to be out of sample: a session after
    the version's training end, or one of its walk-forward scores (a non-null `fold`: made by a
    fold model whose labels ended before that session). Anything else is the final model
    scoring sessions whose prices it was trained on, which no expectation may rest on."""
    in_sample = scores.filter(pl.col("session") <= training_end)
    if "fold" in scores.columns:
        in_sample = in_sample.filter(pl.col("fold").is_null())
    if in_sample.height:
        sessions = in_sample["session"].unique().sort()
        raise BacktestError(
            f"{in_sample.height} scores on {sessions.len()} sessions ({sessions[0]} .. {sessions[-1]}) are "
            f"on or before v{version}'s training end {training_end} and are not walk-forward "
            "out-of-sample scores: the version saw those sessions' prices. Pass its walk-forward "
            f"predictions with their `fold` column, or only sessions after {training_end}")
    return scores.select("session", "symbol", "score")


def backtest_scores(warehouse: Warehouse, scores: pl.DataFrame, strategy, *,
                    execution: ExecutionConfig | None = None,
                    initial_cash: float | None = None) -> BacktestResult:
    """Backtest `scores` (session, symbol, score) on the stored bars; nothing is stored (the
    monitor's shadow backtest of the sessions the account traded). Scored sessions without
    `var_lookback` sessions of stored bars before them are dropped from the start."""
    config = backtest_config(strategy, execution, initial_cash)
    scores, bars = _window(warehouse, scores, config.var_lookback)
    return run_backtest(scores, bars, config)


def expectation(warehouse: Warehouse, version: str) -> dict:
    """The stored backtest summary of `version`, for comparing live performance with it:
    daily_return_mean, daily_return_std, sharpe, max_drawdown (<= 0), annualised figures,
    turnover, commission, and the window (first_session, last_session)."""
    version = str(version)
    rows = (warehouse.query(f"select * from {BACKTEST_SUMMARY} where model_version = ?", [version])
            if warehouse.table_exists(BACKTEST_SUMMARY) else pl.DataFrame())
    if rows.is_empty():
        raise ExpectationNotFound(
            f"no backtest is stored for model version {version}: run "
            "services.backtest.backtest_version for it (training does so for new versions)")
    return rows.row(0, named=True)


def _window(warehouse: Warehouse, scores: pl.DataFrame,
            lookback: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The scores from the first session whose VaR window is covered by stored bars, and the
    bars they need."""
    if "session" not in scores.columns:
        raise BacktestError(f"scores lack a session column (got {scores.columns}): pass session, "
                            "symbol, score")
    sessions = scores["session"].unique().sort().to_list()
    if not sessions:
        raise BacktestError("scores are empty: nothing to backtest")
    first_bar = warehouse.scalar(f"select min(session) from {market_store.BARS}") \
        if warehouse.table_exists(market_store.BARS) else None
    if first_bar is None:
        raise BacktestError("no bars are stored: materialise market_bars before backtesting")
    usable = [s for s in sessions if sessions_back(s, lookback + 1)[0] >= first_bar]
    if not usable:
        raise BacktestError(
            f"no scored session ({sessions[0]} .. {sessions[-1]}) has {lookback} sessions of "
            f"stored bars before it (bars start on {first_bar}): load more history")
    start = sessions_back(usable[0], lookback + 1)[0]
    bars = market_store.read_bars_through(warehouse, sessions[-1], start)
    return scores.filter(pl.col("session") >= usable[0]), bars


def _summary_row(version: str, result: BacktestResult, computed_at: datetime) -> pl.DataFrame:
    return pl.DataFrame([{
        "model_version": version, "first_session": result.first_session,
        "last_session": result.last_session, "computed_at": computed_at, **result.summary,
    }], schema_overrides={"first_session": pl.Date, "last_session": pl.Date})


def stored_equity(warehouse: Warehouse, version: str) -> pl.DataFrame:
    """The stored daily backtest frame of `version` (empty when none is stored)."""
    if not warehouse.table_exists(BACKTEST_EQUITY):
        return pl.DataFrame()
    return warehouse.query(f"select * from {BACKTEST_EQUITY} where model_version = ? order by session",
                           [str(version)])


__all__ = [
    "BACKTEST_EQUITY",
    "BACKTEST_SUMMARY",
    "ExpectationNotFound",
    "backtest_config",
    "backtest_scores",
    "backtest_version",
    "expectation",
    "point_in_time_scores",
    "stored_equity",
]
