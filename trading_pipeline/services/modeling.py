"""Train, register and choose the champion; score a session with a point-in-time version.

A session is scored only by a version whose training labels ended before it (see
`domain/model/point_in_time.py` for which one); `train_as_of` trains the version a backfill
needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from trading_pipeline.domain.backtest import BacktestConfig
from trading_pipeline.domain.calendar import (
    is_session,
    latest_completed_session,
    previous_session,
    sessions_back,
)
from trading_pipeline.domain.features import MIN_HISTORY_SESSIONS, compute_features
from trading_pipeline.domain.labels import forward_return_labels
from trading_pipeline.domain.model import (
    ModelRegistry,
    NoQualifyingModel,
    ScoringChoice,
    SelectionRules,
    VersionRecord,
    choose_version,
    compare_on_recent_window,
    train_model,
)
from trading_pipeline.domain.model.training import PARAM_GRID, TrainingOptions
from trading_pipeline.storage import account_tables, market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse

CHAMPION = "champion"
CHALLENGER = "challenger"
OOS_TABLE = "model_oos_predictions"  # each version's walk-forward scores, for fair comparisons
PREDICTIONS = "predictions"
TRAINING_END_COLUMN = "model_training_end"  # on every prediction row: the version's training end
AS_OF_TAG = "as_of"  # the date a version was trained as of (its bars end on or before it)
POINT_IN_TIME_TAG = "point_in_time"  # "true": trained for backfills, before the champion's end
CHAMPION_SET_TAG = "alias.champion.set_at"  # written by ModelRegistry.set_alias
SIGNAL_TAG = "signal_gate"  # "passed" or "failed": the version against its shuffled-label control
# Per account: a session nothing scored (TRADING_WITHOUT_SIGNAL=hold_cash and no champion), why,
# and what to do; the session's plan then holds cash.
UNSCORED = "unscored_sessions"
UNSCORED_SCHEMA = {"session": pl.Date, "reason": pl.String, "next_step": pl.String}
TRAIN_NEXT_STEP = ("run training_job (on demand, or weekly_training_schedule): a version that beats "
                   "its shuffled-label control becomes champion, and the next session is scored")


class NotEnoughHistory(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainingOutcome:
    version: str
    metrics: dict[str, float]
    became_champion: bool
    reason: str
    first_session: date
    last_session: date
    training_end: date | None = None  # the last session whose prices its labels used


def parse_as_of(text: str | date | None) -> date | None:
    """An `as_of` from run config or the command line: an ISO date (YYYY-MM-DD), or None."""
    if text is None or isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"as_of {text!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-04-30") from None


def train_as_of(warehouse: Warehouse, ledger: Ledger, registry: ModelRegistry, as_of: date | None,
                *, window: int, horizon: int, why: str, rules: SelectionRules = SelectionRules(),
                backtest=None, options: TrainingOptions = TrainingOptions()) -> TrainingOutcome:
    """Train on the stored bars up to `as_of` (default: the latest completed session) and
    register the version as `train_and_register` does. Its labels end on or before `as_of`, so
    it may score every session after `as_of`: the model a backfill starting the next session
    needs. `as_of` need not be a session (the last session before it is used); a date whose
    close has not passed is refused."""
    latest = latest_completed_session()
    as_of = latest if as_of is None else as_of
    if as_of > latest:
        raise ValueError(f"as_of {as_of} is after the latest completed session {latest}: a model can "
                         f"be trained only on sessions that have closed; use {latest} or earlier")
    last_wanted = as_of if is_session(as_of) else previous_session(as_of)
    stored = [s for s in market_store.stored_sessions(warehouse) if s <= last_wanted]
    if not stored:
        raise NotEnoughHistory(f"no bars are stored on or before {as_of}: materialise market_bars "
                               f"(its first run loads the history from TRADING_HISTORY_START, which "
                               f"must start well before {as_of})")
    return train_and_register(warehouse, ledger, registry, max(stored), window, horizon, why,
                              rules=rules, backtest=backtest, as_of=as_of, options=options)


def training_frames(warehouse: Warehouse, through: date, window: int, horizon: int,
                    options: TrainingOptions = TrainingOptions()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features (of `options.feature_set`) and labels (of `options.label_kind`) for the
    `window` sessions up to `through`, from stored bars only."""
    sessions = sessions_back(through, window + MIN_HISTORY_SESSIONS)
    bars = market_store.read_bars_through(warehouse, through, sessions[0])
    if bars.is_empty() or bars["session"].n_unique() < MIN_HISTORY_SESSIONS + 60:
        have = 0 if bars.is_empty() else bars["session"].n_unique()
        raise NotEnoughHistory(
            f"training needs at least {MIN_HISTORY_SESSIONS + 60} sessions of bars up to {through}, "
            f"the warehouse has {have}: materialise market_bars for {through} first"
        )
    features = compute_features(bars, options.feature_set).filter(
        pl.col("session") >= sessions[MIN_HISTORY_SESSIONS])
    # Labels of the last `horizon` sessions need bars after `through`: they stay null and
    # training drops them, so nothing from the future leaks in.
    return features, forward_return_labels(bars, horizon=horizon, kind=options.label_kind)


def train_and_register(warehouse: Warehouse, ledger: Ledger, registry: ModelRegistry,
                       through: date, window: int, horizon: int, why: str,
                       rules: SelectionRules = SelectionRules(), backtest=None,
                       as_of: date | None = None,
                       options: TrainingOptions = TrainingOptions()) -> TrainingOutcome:
    """Train on the `window` sessions to `through`, register the version as `challenger`,
    backtest its out-of-sample scores (stored with the version: the monitor's expectation), and
    move `champion` to it only if there is none or it wins on the same recent sessions.
    A version whose training ends before the champion's is a point-in-time version for
    backfills: it is tagged so, never compared (their recent sessions differ) and stays
    challenger. `backtest`: the strategy as the daily loop runs it (a `StrategyResource` or a
    `BacktestConfig`); None backtests the default strategy. `as_of` (default `through`) is
    recorded as the version's `as_of` tag.

    The signal gate comes first: a version whose out-of-sample rank IC does not beat its
    shuffled-label control by `options.signal.min_t_stat` never replaces a champion; with no
    champion, `options.without_signal` decides (hold cash: no champion; or trade it, marked)."""
    window = options.window_sessions(window)
    features, labels = training_frames(warehouse, through, window, horizon, options)
    columns = tuple(c for c in features.columns if c not in ("session", "symbol"))
    result = train_model(features, labels, horizon=horizon, feature_columns=columns,
                         param_grid=PARAM_GRID if options.tune else None,
                         sample_weight_halflife=options.sample_weight_halflife,
                         signal_rules=options.signal, ensemble_seeds=options.ensemble_seeds,
                         workers=options.workers)
    version = registry.register(result, extra_tags={AS_OF_TAG: (as_of or through).isoformat()})
    challenger_scores = result.oos_predictions.select(
        "session", "symbol", pl.col("prediction").alias("score"), "forward_return")
    warehouse.replace_where(OOS_TABLE, {"model_version": version},
                            challenger_scores.with_columns(pl.lit(version).alias("model_version")))
    signal = result.signal
    metrics = {**result.metrics, **signal.metrics(),
               **{f"control_{k}": v for k, v in (result.control_metrics or {}).items()}}
    registry.set_version_tag(version, SIGNAL_TAG, "passed" if signal.passed else "failed")
    # with the fold: each walk-forward score came from a model whose labels ended before it
    backtest_note = _backtest(warehouse, registry, version,
                              result.oos_predictions.select("session", "symbol", "fold",
                                                            pl.col("prediction").alias("score")),
                              backtest)
    registry.set_alias(CHALLENGER, version, f"newly trained ({why})")
    ledger.record_model_event(registry.model_name, version, CHALLENGER, "registered",
                              f"newly trained ({why}); {backtest_note}", None, metrics)

    champion = registry.champion_version()
    champion_end = registry.training_end(champion) if champion is not None else None
    if champion is None:
        if signal.passed or options.without_signal == "trade":
            became, comparison = True, {}
            reason = f"first model ({why}); {signal.reason}"
            if not signal.passed:
                reason += ": traded anyway (TRADING_WITHOUT_SIGNAL=trade), never promoted to the next stage"
        else:
            became, comparison = False, {}
            reason = (f"refused as champion, {signal.reason}; there is no champion, so nothing is "
                      "traded (TRADING_WITHOUT_SIGNAL=hold_cash) until a version shows signal")
    elif result.training_end < champion_end:
        registry.set_version_tag(version, POINT_IN_TIME_TAG, "true")
        became, comparison = False, {}
        reason = (f"point-in-time version: its labels end {result.training_end}, before champion "
                  f"v{champion}'s ({champion_end}); kept for sessions up to {champion_end} that the "
                  "champion may not score (backfills), not compared with it")
    else:
        verdict = compare_on_recent_window(
            challenger_scores, champion_oos_scores(warehouse, registry, champion, features, labels),
            rules, challenger_name=f"v{version}", champion_name=f"v{champion}")
        became, reason, comparison = verdict.promote and signal.passed, verdict.reason, verdict.metrics()
        if not signal.passed:
            reason = f"refused as champion, {signal.reason}; v{champion} stays champion ({verdict.reason})"
    if became:
        registry.set_alias(CHAMPION, version, reason)
    ledger.record_model_event(registry.model_name, version, CHAMPION if became else CHALLENGER,
                              "promoted" if became else "kept_challenger", reason, champion,
                              {**metrics, **comparison})
    return TrainingOutcome(version, metrics, became, reason,
                           features["session"].min(), features["session"].max(), result.training_end)


def _backtest(warehouse: Warehouse, registry: ModelRegistry, version: str, scores: pl.DataFrame,
              strategy) -> str:
    """Backtest the version's out-of-sample scores; a window the backtest cannot trade (too
    little history for the VaR lookback) is noted, not fatal: the model is still usable, and the
    promotion gates ask for a review when no backtest is on record."""
    from trading_pipeline.services.backtest import BacktestError, backtest_version

    execution = strategy.execution() if hasattr(strategy, "execution") else None
    try:
        result = backtest_version(warehouse, registry, version, scores, strategy or BacktestConfig(),
                                  execution=execution)
    except BacktestError as error:
        return f"no backtest: {error}"
    return (f"backtest {result.first_session}..{result.last_session}: Sharpe "
            f"{result.summary['sharpe']:.2f}, max drawdown {result.summary['max_drawdown']:.1%}")


def champion_oos_scores(warehouse: Warehouse, registry: ModelRegistry, champion: str,
                        features: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """The champion's out-of-sample scores: its own walk-forward predictions inside its training
    window, and the champion itself on sessions after its training end (its last label session
    plus `horizon`; the sessions in between share returns with its labels)."""
    stored = (warehouse.query(f"select session, symbol, score, forward_return from {OOS_TABLE} "
                              "where model_version = ?", [champion])
              if warehouse.table_exists(OOS_TABLE) else pl.DataFrame())
    unseen = features.filter(pl.col("session") > registry.training_end(champion))
    if unseen.is_empty():
        return stored
    live = (registry.load(champion).predict(unseen)
            .join(labels.select("session", "symbol", "forward_return"), on=["session", "symbol"])
            .drop_nulls("forward_return").select("session", "symbol", "score", "forward_return"))
    return pl.concat([stored, live], how="vertical_relaxed") if stored.height else live


def version_records(warehouse: Warehouse, registry: ModelRegistry) -> list[VersionRecord]:
    """Every registered version with its training end and its history as champion."""
    rolled_back: set[str] = set()
    if warehouse.table_exists("model_events"):
        rolled_back = set(warehouse.query(
            "select distinct previous_version from model_events where model_name = ? and "
            "action = 'rollback' and previous_version is not null",
            [registry.model_name])["previous_version"].to_list())
    records, ends = [], registry.training_ends()
    for version, tags in registry.version_tags().items():
        records.append(VersionRecord(
            version=version, training_end=ends[version],
            was_champion=CHAMPION_SET_TAG in tags,
            point_in_time=tags.get(POINT_IN_TIME_TAG) == "true",
            rolled_back=version in rolled_back))
    return sorted(records, key=lambda r: int(r.version))


@dataclass(frozen=True)
class NothingToScore:
    """Why no version scores the sessions now, and what to do about it."""

    reason: str
    next_step: str = TRAIN_NEXT_STEP


def trains_first_model(registry: ModelRegistry, options: TrainingOptions = TrainingOptions()) -> bool:
    """Whether the daily run trains a first model itself: only without a champion, and under
    hold_cash only while no version exists at all. A version the signal gate refused is not
    trained again every session (the same bars would give the same verdict): training_job,
    on demand or weekly, trains the next one."""
    if registry.champion_version() is not None:
        return False
    return options.without_signal == "trade" or not registry.versions()


def nothing_to_score(warehouse: Warehouse, registry: ModelRegistry,
                     options: TrainingOptions = TrainingOptions()) -> NothingToScore | None:
    """Why the loop holds cash: TRADING_WITHOUT_SIGNAL=hold_cash and no champion worth trading,
    that is none (the newest refusal in `model_events` says why) or one that failed the signal
    gate (made champion while the policy was trade); None when a version may score (or the
    policy trades)."""
    if options.without_signal != "hold_cash":
        return None
    champion = registry.champion_version()
    if champion is not None:
        if registry.version_tags().get(champion, {}).get(SIGNAL_TAG) != "failed":
            return None  # passed, or trained before the gate existed: it scores
        return NothingToScore(
            f"no champion with signal (champion v{champion} failed the signal gate when trained and "
            "was made champion under TRADING_WITHOUT_SIGNAL=trade); nothing is scored and the account "
            "holds cash (TRADING_WITHOUT_SIGNAL=hold_cash)")
    refused = None
    if warehouse.table_exists("model_events"):
        refused = warehouse.query(
            "select version, reason from model_events where model_name = ? and "
            "action = 'kept_challenger' order by recorded_at desc limit 1", [registry.model_name])
    why = (f"v{refused['version'][0]}: {refused['reason'][0]}" if refused is not None and refused.height
           else "no version has been trained yet")
    return NothingToScore(f"no champion with signal ({why}); nothing is scored and the account holds "
                          "cash (TRADING_WITHOUT_SIGNAL=hold_cash)")


def record_unscored(warehouse: Warehouse, session: date, nothing: NothingToScore,
                    account: str | None = None) -> None:
    """Record that `account`'s `session` is scored by no version, with why: its predictions are
    none (rows of an earlier run of the session are replaced, as a re-run replaces scores)."""
    if warehouse.table_exists(PREDICTIONS):
        account_tables.ensure_account_column(warehouse, PREDICTIONS)
        where = f"{account_tables.ACCOUNT} is null" if account is None else f"{account_tables.ACCOUNT} = ?"
        warehouse.execute(f"delete from {PREDICTIONS} where session = ? and {where}",
                          [session] if account is None else [session, account])
    row = pl.DataFrame({"session": [session], "reason": [nothing.reason], "next_step": [nothing.next_step]},
                       schema=UNSCORED_SCHEMA)
    account_tables.write_account_session(warehouse, UNSCORED, account, session, row)


def unscored(warehouse: Warehouse, session: date, account: str | None = None) -> NothingToScore | None:
    """What `record_unscored` recorded for `account`'s `session`; None when it was scored (or
    predictions never ran)."""
    rows = account_tables.read_account_range(warehouse, UNSCORED, account, session, session)
    if rows.is_empty():
        return None
    return NothingToScore(rows["reason"][0], rows["next_step"][0])


def model_for_session(warehouse: Warehouse, registry: ModelRegistry, session: date) -> ScoringChoice:
    """The version that may score `session`: the champion if its labels ended before it, else
    (a backfill) the newest earlier champion or point-in-time version that qualifies. Raises
    `NoQualifyingModel` (with `.as_of`, the date to train as of) when there is none."""
    return choose_version(session, registry.champion_version(), version_records(warehouse, registry))


def score_session(warehouse: Warehouse, registry: ModelRegistry, session: date,
                  choice: ScoringChoice | None = None) -> pl.DataFrame:
    """Scores for `session` by the point-in-time version (`model_for_session`, unless `choice`
    is given), with the version and its training end on every row."""
    choice = choice or model_for_session(warehouse, registry, session)
    if not choice.training_end < session:  # the one rule every caller relies on
        raise NoQualifyingModel(session, f"v{choice.version}'s labels end {choice.training_end}, not "
                                f"before {session}: it may not score that session")
    features = market_store.read_table_range(warehouse, "features", session, session)
    if features.is_empty():
        raise RuntimeError(f"no features stored for {session}: materialise features for {session} first")
    model = registry.load(choice.version)
    # the version picks its own columns: the small set's or the alpha set's
    return model.predict(features).with_columns(
        pl.lit(choice.training_end, pl.Date).alias(TRAINING_END_COLUMN))


def write_predictions(warehouse: Warehouse, session: date, scores: pl.DataFrame,
                      account: str | None = None) -> None:
    """Replace `account`'s predictions of `session` (paper and live may score with different
    champions: each keeps its own); a table made before the training end was recorded gets the
    column first (null in its old rows)."""
    if warehouse.table_exists(PREDICTIONS):
        warehouse.execute(f"alter table {PREDICTIONS} add column if not exists {TRAINING_END_COLUMN} date")
    account_tables.write_account_session(warehouse, PREDICTIONS, account, session, scores)
    if warehouse.table_exists(UNSCORED):  # scored now: the session no longer holds cash for want of a model
        account_tables.write_account_session(warehouse, UNSCORED, account, session,
                                             pl.DataFrame(schema=UNSCORED_SCHEMA))


def read_predictions(warehouse: Warehouse, account: str | None, first: date,
                     last: date | None = None) -> pl.DataFrame:
    """The scores `account` traded on for the sessions `first`..`last` (default: `first` only)."""
    return account_tables.read_account_range(warehouse, PREDICTIONS, account, first, last or first)


def version_used(warehouse: Warehouse, session: date, account: str | None = None) -> str | None:
    """The model version whose scores the `predictions` asset stored for `account` and `session`."""
    if not account_tables.ensure_account_column(warehouse, PREDICTIONS):
        return None
    where, params = account_tables.own_rows(PREDICTIONS, account)
    return warehouse.scalar(f"select any_value(model_version) from {PREDICTIONS} t "
                            f"where t.session = ? and {where}", [session, *params])


def rollback_champion(registry: ModelRegistry, ledger: Ledger, reason: str,
                      flagged: set[str] = frozenset(),
                      evidence: dict | None = None) -> tuple[str, str] | None:
    """Move `champion` to the newest earlier version not itself flagged by severe drift;
    None when there is none (never below the first version)."""
    current = registry.champion_version()
    if current is None:
        return None
    candidate = registry.previous_version(current)
    while candidate is not None and candidate in flagged:
        candidate = registry.previous_version(candidate)
    if candidate is None:
        return None
    registry.set_alias(CHAMPION, candidate, reason)
    ledger.record_model_event(registry.model_name, candidate, CHAMPION, "rollback", reason, current,
                              evidence)
    return current, candidate
