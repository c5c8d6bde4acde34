"""Train the LightGBM ranker-by-regression and a Ridge baseline on walk-forward folds.

Out-of-sample figures come from the folds (each validation block scored by a model that never
saw a label overlapping it); the final model is then fitted on every labelled row. Each fold
also trains a shuffled-label control (the same LightGBM on labels permuted within each
session): what a model that learnt nothing scores on the same rows, for the signal gate.
With a `param_grid`, each fold picks its LightGBM parameters on its own training sessions (an
inner walk-forward split), never on its validation block; the final model picks them the
same way on all its rows.
With `ensemble_seeds` > 1, every LightGBM (each fold's, the control's and the final one) is an
ensemble of that many members differing only in their random seed (row and feature sampling,
extra-trees thresholds); it scores the mean of its members' within-session ranks.
lightgbm and scikit-learn are imported on first use: together they take seconds to import,
and every process that loads the Dagster definitions imports this module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from trading_pipeline.domain.calendar import next_session, sessions_between
from trading_pipeline.domain.features import FEATURE_COLUMNS
from trading_pipeline.domain.model.signal import (
    SignalRules,
    SignalVerdict,
    control_column,
    random_scorer_daily_ics,
    signal_test,
)
from trading_pipeline.domain.model.validation import (
    Fold,
    daily_information_coefficients,
    prediction_metrics,
    walk_forward_splits,
)

if TYPE_CHECKING:
    import lightgbm as lgb
    from sklearn.pipeline import Pipeline

# Boosted stumps with extra-trees: daily cross-sectional returns are mostly noise, and deeper
# trees fit it. Chosen on synthetic markets of seeds 1-3, then checked on seeds 7, 11 and 23
# (50 and 100 symbols, 500-session window): out-of-sample mean rank IC 0.058 against 0.035 for
# 15-leaf trees (the Ridge baseline: 0.058), in the same training time.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 2,
    "max_depth": 1,
    "min_child_samples": 300,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 10.0,
    "extra_trees": True,
    # Reproducibility: same data, params and seed give the same trees on any run.
    "deterministic": True,
    # Histograms built a feature at a time: the same trees as row-wise (tested), about 15 % less
    # CPU on these few dense columns.
    "force_col_wise": True,
    "num_threads": 1,  # OpenMP threads spin-wait: on a busy 2-core machine 2 threads can be 20x slower
    "verbosity": -1,
}
BASELINE_ALPHA = 1.0

# Candidates the walk-forward chooses between when tuning is on (TRADING_TUNE_LGBM): the
# default stumps, and two deeper, more regularised shapes that suit many features.
PARAM_GRID: tuple[dict[str, Any], ...] = (
    {},
    {"num_leaves": 7, "max_depth": 3, "min_child_samples": 500, "n_estimators": 200,
     "learning_rate": 0.03, "colsample_bytree": 0.3},
    {"num_leaves": 15, "max_depth": 4, "min_child_samples": 1000, "n_estimators": 300,
     "learning_rate": 0.02, "colsample_bytree": 0.3, "reg_lambda": 50.0},
)
CONTROL_SHUFFLE_STRIDE = 104_729  # between controls' shuffle seeds: far from the folds' 7919 steps
INNER_VALIDATION_SHARE = 0.25  # of a fold's training sessions, held out to choose parameters
_Result = TypeVar("_Result")


NO_SIGNAL_POLICIES = ("hold_cash", "trade")
# Two: on an idle 2-core machine the walk-forward took 101.5 s of wall against 167.5 s on one
# (2.5 M rows, the same CPU seconds and trees, peak +8 %); on a loaded one it went either way by
# up to 20 % (bench_training --workers 1 2, README "Performance").
DEFAULT_TRAINING_WORKERS = 2


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    """How the loop trains and gates its models (TRADING_* settings of the same names)."""

    feature_set: str = "small"  # see domain/factors: small | alpha
    label_kind: str = "rank"  # see domain/labels: rank | excess | excess_vol
    window_years: float | None = None  # wins over the window in sessions when set
    sample_weight_halflife: int | None = None  # sessions; None: every row weighs the same
    tune: bool = False  # choose LightGBM parameters from PARAM_GRID on training folds
    signal: SignalRules = SignalRules()
    # With no champion, a first version that fails the signal gate: "hold_cash" leaves the loop
    # without a champion (nothing is scored, nothing bought); "trade" makes it champion anyway,
    # marked as failing the gate (promotion to the next stage is then refused). Money is at
    # stake, so the default never trades a model that has not shown signal.
    without_signal: str = "hold_cash"
    # LightGBM members per model, differing only in seed; scores are their mean within-session
    # rank (see `ensemble_scores`). 1: one model scoring its raw prediction.
    ensemble_seeds: int = 1
    # Tasks run at once (each fold with its control, the final model, the gate's random scorers;
    # see `train_model`): the same models whatever the number.
    workers: int = DEFAULT_TRAINING_WORKERS

    def __post_init__(self) -> None:
        from trading_pipeline.domain.factors import feature_set
        from trading_pipeline.domain.labels import LABEL_KINDS

        feature_set(self.feature_set)  # names the choices when unknown
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"unknown label kind {self.label_kind!r}: one of {', '.join(LABEL_KINDS)}")
        if self.without_signal not in NO_SIGNAL_POLICIES:
            raise ValueError(f"unknown policy for a model without signal {self.without_signal!r}: one of "
                             f"{', '.join(NO_SIGNAL_POLICIES)} (TRADING_WITHOUT_SIGNAL)")
        if self.window_years is not None and not self.window_years > 0:
            raise ValueError(f"the training window in years must be positive, got {self.window_years}")
        _check_ensemble_seeds(self.ensemble_seeds)
        _check_workers(self.workers)

    def window_sessions(self, default: int) -> int:
        return default if self.window_years is None else int(round(self.window_years * SESSIONS_PER_YEAR))


SESSIONS_PER_YEAR = 252


def _check_ensemble_seeds(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the ensemble needs a whole number of seeds, at least 1 (1: a single "
                         f"model), got {count!r}")


def ensemble_scores(member_scores: Sequence[np.ndarray], sessions: pl.Series) -> np.ndarray:
    """The ensemble's score per row: the mean over members of each member's rank within the
    row's session, scaled to (-0.5, 0.5) (ties share their mean rank). Ranks, not raw
    predictions: members with different scales weigh the same, and only the order within a
    session is traded."""
    if not member_scores:
        raise ValueError("an ensemble needs at least one member's scores")
    columns = [f"member_{i}" for i in range(len(member_scores))]
    frame = pl.DataFrame({"session": sessions, **{c: np.asarray(v, dtype=np.float64)
                                                   for c, v in zip(columns, member_scores, strict=True)}})
    per_session = pl.len().over("session")
    ranks = [((pl.col(c).rank("average").over("session") - 0.5) / per_session - 0.5) for c in columns]
    return frame.select(pl.mean_horizontal(ranks).alias("score"))["score"].to_numpy()


class TrainingDataError(ValueError):
    """Features and labels that a model cannot be trained on."""


@dataclass(frozen=True)
class TrainingResult:
    """Everything a registry needs to record and serve one trained model."""

    model: lgb.Booster  # fitted on all labelled rows
    baseline_model: Pipeline  # Ridge on the same rows, NaNs filled with training medians
    feature_columns: tuple[str, ...]
    params: Mapping[str, Any]
    metrics: Mapping[str, float]  # LightGBM, pooled out-of-sample predictions of every fold
    baseline_metrics: Mapping[str, float]  # the Ridge baseline, same folds and rows
    fold_metrics: pl.DataFrame  # one row per (model, fold): its window and its metrics
    oos_predictions: pl.DataFrame  # session, symbol, fold, prediction, baseline_prediction, ...
    feature_importance: pl.DataFrame  # feature, gain, split; by gain, descending
    folds: tuple[Fold, ...]
    first_session: date
    last_session: date
    n_rows: int
    n_symbols: int
    horizon: int
    embargo: int
    seed: int
    min_train_sessions: int
    # The last session whose prices the labels used (the last label's end): a session is scored
    # by this model only if it comes after this one. None: derived from last_session + horizon.
    labels_end: date | None = None
    # The shuffled-label control on the same folds (None: trained without one) and the signal
    # gate's verdict on the LightGBM against it.
    control_metrics: Mapping[str, float] | None = None
    signal: SignalVerdict | None = None
    sample_weight_halflife: int | None = None  # sessions; None: every row weighs the same
    fold_params: tuple[Mapping[str, Any], ...] = ()  # the parameters each fold chose
    # Every LightGBM of the final ensemble, `model` first (seeds seed, seed + 1, ...); empty or
    # one member: `model` alone scores its raw prediction.
    members: tuple[lgb.Booster, ...] = ()

    @property
    def training_end(self) -> date:
        return self.labels_end or labels_end_session(self.last_session, self.horizon)

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """`session, symbol, score` of the final LightGBM model (or ensemble) on `features`."""
        boosters = list(self.members) or [self.model]
        scores = predict_members(boosters, feature_matrix(features, self.feature_columns),
                                 features["session"])
        return features.select("session", "symbol").with_columns(pl.Series("score", scores, pl.Float64))

    def predict_baseline(self, features: pl.DataFrame) -> pl.DataFrame:
        """`session, symbol, score` of the final Ridge baseline on `features`."""
        scores = self.baseline_model.predict(feature_matrix(features, self.feature_columns))
        return features.select("session", "symbol").with_columns(pl.Series("score", scores, pl.Float64))


def labels_end_session(last_label_session: date, horizon: int) -> date:
    """The session whose close the label of `last_label_session` looks ahead to: `horizon`
    sessions later (labels use adj_close of the `horizon`-th next bar)."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    ahead = sessions_between(next_session(last_label_session),
                             last_label_session + timedelta(days=7 * horizon + 14))
    return ahead[horizon - 1]


def feature_matrix(features: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The feature columns as a float64 matrix in `columns` order; nulls become NaN."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise TrainingDataError(
            f"features lack columns {missing}: compute them with compute_features()"
        )
    # Float64 columns go to numpy as they are (numpy turns their nulls into NaN): one copy of
    # the rows, where a cast-and-filled frame first was a second one (1.8 GB at 15 M rows).
    schema = features.schema
    matrix = features.select(
        pl.col(c) if schema[c] == pl.Float64 else pl.col(c).cast(pl.Float64) for c in columns
    ).to_numpy()
    return np.require(matrix, np.float64, ["W"])  # a fresh, writable array (a one-column frame may be a view)


def _training_rows(
    features: pl.DataFrame, labels: pl.DataFrame, columns: Sequence[str]
) -> pl.DataFrame:
    for name, frame, needed in (
        ("features", features, ("session", "symbol", *columns)),
        ("labels", labels, ("session", "symbol", "forward_return", "label")),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise TrainingDataError(f"{name} lack columns {missing}")
    rows = (
        features.select("session", "symbol", *columns)
        .join(labels.select("session", "symbol", "forward_return", "label"), on=["session", "symbol"])
        .drop_nulls(["label", "forward_return"])
        # Rows with no feature at all teach nothing and would only be imputed.
        .filter(~pl.all_horizontal(pl.col(c).is_null() for c in columns))
        .sort("session", "symbol")
    )
    if rows.is_empty():
        raise TrainingDataError(
            "no row has both features and a non-null label: labels need `horizon` sessions of "
            "bars after each training session, features need MIN_HISTORY_SESSIONS before it"
        )
    return rows


def _baseline() -> Pipeline:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from trading_pipeline.domain.model.imputation import ColumnMedianImputer

    return make_pipeline(
        ColumnMedianImputer(),  # SimpleImputer's medians, without its copies of the matrix
        StandardScaler(),
        Ridge(alpha=BASELINE_ALPHA),
    )


def recency_weights(sessions: pl.Series, halflife: int | None) -> np.ndarray | None:
    """Weight 0.5 ** (age / halflife) per row, age in sessions before the newest one; None
    when every row weighs the same."""
    if halflife is None:
        return None
    order = sessions.rank(method="dense").cast(pl.Float64).to_numpy()
    return np.power(0.5, (order.max() - order) / halflife)


def _member_datasets(rows: pl.DataFrame, columns: Sequence[str], params: Mapping[str, Any], count: int,
                     label: str = "label", halflife: int | None = None) -> list[lgb.Dataset]:
    """`rows` binned for `count` LightGBMs (seeds random_state, random_state + 1, ...), built at
    once so the float matrix is freed. The bins depend on the features, the seed (which rows
    are sampled to place them) and the parameters, never on the label: a shuffled-label
    control of the same rows and seed reuses them with its own label (`_relabelled`)."""
    import lightgbm as lgb

    seed = int(params.get("random_state") or 0)
    matrix, target = feature_matrix(rows, columns), rows[label].to_numpy()
    weights = recency_weights(rows["session"], halflife)
    return [lgb.Dataset(matrix, target, weight=weights, feature_name=list(columns),
                        params=_booster_params({**params, "random_state": seed + k})).construct()
            for k in range(count)]


def _booster_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as `lgb.train` takes them: scikit-learn's names are LightGBM's own aliases
    (same trees as `LGBMRegressor.fit`: tested); the rounds are an argument of their own."""
    return {name: value for name, value in params.items() if name != "n_estimators"}


def _train_members(datasets: Sequence[lgb.Dataset], params: Mapping[str, Any]) -> list[lgb.Booster]:
    """One LightGBM per dataset of `_member_datasets`, seeds random_state, random_state + 1, ..."""
    import lightgbm as lgb

    seed = int(params.get("random_state") or 0)
    return [lgb.train(_booster_params({**params, "random_state": seed + k}), dataset,
                      num_boost_round=int(params["n_estimators"]))
            for k, dataset in enumerate(datasets)]


def _relabelled(datasets: Sequence[lgb.Dataset], label: pl.Series) -> list[lgb.Dataset]:
    """The same binned rows with another label (a control's shuffled one)."""
    for dataset in datasets:
        dataset.set_label(label.to_numpy())
    return list(datasets)


def _fit_members(rows: pl.DataFrame, columns: Sequence[str], params: Mapping[str, Any], count: int,
                 label: str = "label", halflife: int | None = None) -> list[lgb.Booster]:
    """`count` LightGBMs on the same rows, seeds random_state, random_state + 1, ..."""
    return _train_members(_member_datasets(rows, columns, params, count, label, halflife), params)


def _fit_lgbm(rows: pl.DataFrame, columns: Sequence[str], params: Mapping[str, Any],
              label: str = "label", halflife: int | None = None) -> lgb.Booster:
    return _fit_members(rows, columns, params, 1, label, halflife)[0]


def predict_members(boosters: Sequence[lgb.Booster], matrix: np.ndarray, sessions: pl.Series) -> np.ndarray:
    """One booster: its raw prediction. Several: `ensemble_scores` of their predictions."""
    if len(boosters) == 1:
        return boosters[0].predict(matrix)
    return ensemble_scores([b.predict(matrix) for b in boosters], sessions)


def _fit_pair(
    rows: pl.DataFrame, columns: Sequence[str], params: Mapping[str, Any], halflife: int | None = None,
    members: int = 1,
) -> tuple[list[lgb.Booster], Pipeline, list[lgb.Dataset]]:
    """The LightGBM members and the Ridge baseline on `rows`, and the members' binned rows."""
    datasets = _member_datasets(rows, columns, params, members, halflife=halflife)
    models = _train_members(datasets, params)
    weights = recency_weights(rows["session"], halflife)
    baseline = _fit_baseline(feature_matrix(rows, columns), rows["label"].to_numpy(), weights)
    return models, baseline, datasets


# The baseline's steps copying their input: fitted in place, then set to copy again.
_BASELINE_COPIES = ("columnmedianimputer__copy", "standardscaler__copy", "ridge__copy_X")


def _fit_baseline(matrix: np.ndarray, label: np.ndarray, weights: np.ndarray | None) -> Pipeline:
    """The Ridge baseline fitted on `matrix`, which it overwrites: imputing, scaling and centring
    in place, where each step copied the rows (three more matrices at the final fit). The same
    arithmetic, so the same model; the fitted pipeline copies again when it predicts."""
    baseline = _baseline().set_params(**dict.fromkeys(_BASELINE_COPIES, False))
    baseline.fit(matrix, label, ridge__sample_weight=weights)
    return baseline.set_params(**dict.fromkeys(_BASELINE_COPIES, True))


def shuffle_within_sessions(rows: pl.DataFrame, seed: int) -> pl.Series:
    """The label permuted among the rows of each session: the same distribution per session,
    no link to the features."""
    keys = np.random.default_rng(seed).random(rows.height)
    shuffled = (rows.select("session", "label").with_columns(pl.Series("_key", keys))
                .with_columns(pl.col("label").sort_by("_key").over("session")))
    return shuffled["label"].alias("shuffled_label")


def choose_params(rows: pl.DataFrame, columns: Sequence[str], base: Mapping[str, Any],
                  grid: Sequence[Mapping[str, Any]], gap: int, halflife: int | None) -> dict[str, Any]:
    """The candidate of `grid` (each a change to `base`) with the best mean daily rank IC on the
    last INNER_VALIDATION_SHARE of `rows`' sessions, trained on the sessions `gap` before them.
    Only `rows` are seen: pass a fold's training rows, never its validation block."""
    candidates = [{**base, **change} for change in grid]
    sessions = rows["session"].unique().sort()
    held = max(1, int(len(sessions) * INNER_VALIDATION_SHARE))
    if len(candidates) == 1 or len(sessions) - held - gap < max(20, held):
        return candidates[0]  # too few sessions to tell candidates apart
    valid_from, train_to = sessions[len(sessions) - held], sessions[len(sessions) - held - gap - 1]
    train = rows.filter(pl.col("session") <= train_to)
    valid = rows.filter(pl.col("session") >= valid_from)
    x_valid = feature_matrix(valid, columns)
    scores = []
    for candidate in candidates:
        predicted = valid.select("session", "forward_return").with_columns(pl.Series(
            "prediction", _fit_lgbm(train, columns, candidate, halflife=halflife).predict(x_valid)))
        daily = daily_information_coefficients(predicted)["rank_ic"].drop_nans()
        scores.append(float(daily.mean()) if daily.len() else -math.inf)
    return candidates[int(np.argmax(scores))]


def _session_block(rows: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    """The rows of the sessions `first` to `last`. A fold's sessions are consecutive and `rows`
    are sorted by session, so this is a slice sharing `rows`' memory, not a filtered copy."""
    sessions = rows["session"]
    start = sessions.search_sorted(first, side="left")
    return rows.slice(start, sessions.search_sorted(last, side="right") - start)


def _fold_run(
    fold: Fold, rows: pl.DataFrame, columns: Sequence[str], params: Mapping[str, Any],
    *, grid: Sequence[Mapping[str, Any]] | None, gap: int, halflife: int | None, controls: int,
    seed: int, members: int = 1,
) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """One fold: its validation rows scored by the model, the baseline and each control, its
    window, and the parameters it chose."""
    train = _session_block(rows, fold.train_start, fold.train_end)
    valid = _session_block(rows, fold.validation_start, fold.validation_end)
    fold_params = choose_params(train, columns, params, grid, gap, halflife) if grid else dict(params)
    models, baseline, datasets = _fit_pair(train, columns, fold_params, halflife, members)
    x_valid = feature_matrix(valid, columns)
    scored = valid.select("session", "symbol", "forward_return", "label").with_columns(
        pl.lit(fold.index).alias("fold"),
        pl.Series("prediction", predict_members(models, x_valid, valid["session"]), pl.Float64),
        pl.Series("baseline_prediction", baseline.predict(x_valid), pl.Float64),
    )
    for k in range(controls):
        # control k: its own shuffle and its own LightGBM seeds (k * members on, as ensemble
        # members are seeded), so no two controls share a draw; control 0 is the one used alone
        shuffled = shuffle_within_sessions(train, seed + 7919 * (fold.index + 1) + CONTROL_SHUFFLE_STRIDE * k)
        # each control is built exactly as the model is: an ensemble of as many members
        control_params = {**fold_params, "random_state": int(fold_params.get("random_state") or 0) + k * members}
        if k == 0:  # the model's seeds: its binned rows, relabelled (the bins never read the label)
            fitted = _train_members(_relabelled(datasets, shuffled), control_params)
        else:
            fitted = _fit_members(train.with_columns(shuffled), columns, control_params, members,
                                  label="shuffled_label", halflife=halflife)
        scored = scored.with_columns(pl.Series(
            control_column(k), predict_members(fitted, x_valid, valid["session"]), pl.Float64))
    del datasets
    window = {
        "fold": fold.index,
        "train_start": fold.train_start,
        "train_end": fold.train_end,
        "validation_start": fold.validation_start,
        "validation_end": fold.validation_end,
        "train_rows": train.height,
        "validation_rows": valid.height,
    }
    return scored, window, fold_params


def _check_workers(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"training needs a whole number of workers, at least 1 (1: one fit after "
                         f"another; TRADING_TRAINING_WORKERS), got {count!r}")


def _run_independent(tasks: Sequence[Callable[[], _Result]], workers: int) -> list[_Result]:
    """Every task (fold runs, the final fit, the gate's random scorers) on `workers` threads:
    LightGBM, numpy and polars release the GIL while they compute. Results come back in the
    tasks' order; pass the longest first, so the pool ends together. On an error, tasks not yet
    started are dropped, and it is raised once those under way have ended."""
    if workers == 1:
        return [task() for task in tasks]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="training")
    try:
        runs = [pool.submit(task) for task in tasks]
        wait(runs, return_when=FIRST_EXCEPTION)
        for run in runs:
            if run.done() and run.exception() is not None:
                raise run.exception()
        return [run.result() for run in runs]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _mean_control_metrics(oos: pl.DataFrame, controls: int) -> dict[str, float]:
    """Each metric averaged over the controls (one control: its own metrics)."""
    each = [prediction_metrics(oos, control_column(k)) for k in range(controls)]
    return {name: float(np.mean([m[name] for m in each])) for name in each[0]}


def _fold_metrics(oos: pl.DataFrame, windows: list[dict[str, Any]]) -> pl.DataFrame:
    records = []
    for window in windows:
        fold_rows = oos.filter(pl.col("fold") == window["fold"])
        for model_name, column in (("lightgbm", "prediction"), ("baseline", "baseline_prediction")):
            records.append({"model": model_name, **window, **prediction_metrics(fold_rows, column)})
    return pl.DataFrame(records)


def train_model(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    params: Mapping[str, Any] | None = None,
    n_folds: int = 4,
    horizon: int = 5,
    embargo: int = 5,
    seed: int = 0,
    min_train_sessions: int | None = None,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    param_grid: Sequence[Mapping[str, Any]] | None = None,
    sample_weight_halflife: int | None = None,
    control: bool = True,
    signal_rules: SignalRules = SignalRules(),
    ensemble_seeds: int = 1,
    workers: int = DEFAULT_TRAINING_WORKERS,
) -> TrainingResult:
    """Walk-forward out-of-sample metrics for LightGBM, the Ridge baseline and (with `control`)
    the shuffled-label control, then LightGBM and Ridge refitted on every labelled row.
    `params` override DEFAULT_LGBM_PARAMS; `seed` wins over any seed in them; `param_grid`
    (changes to those params, e.g. PARAM_GRID) is searched on training sessions only.
    `sample_weight_halflife` (sessions) weighs recent rows more. `min_train_sessions` defaults
    to half of the labelled sessions. `ensemble_seeds` > 1 makes every LightGBM (folds, control,
    final) an ensemble of that many seeds scoring their mean within-session rank; parameters
    are still chosen on single models. `workers` > 1 fits the folds and the final model on that
    many threads (each LightGBM keeps its own `num_threads`): the same models whatever the count."""
    columns = tuple(feature_columns)
    rows = _training_rows(features, labels, columns)
    sessions = rows["session"].unique().sort().to_list()
    min_train = min_train_sessions if min_train_sessions is not None else max(1, len(sessions) // 2)
    folds = walk_forward_splits(sessions, n_folds, horizon, embargo, min_train)
    merged = {**DEFAULT_LGBM_PARAMS, **(params or {}), "random_state": seed}
    merged.pop("seed", None)  # one seed only: random_state

    if sample_weight_halflife is not None and sample_weight_halflife < 1:
        raise ValueError(f"sample_weight_halflife must be at least 1 session, got {sample_weight_halflife}")
    _check_ensemble_seeds(ensemble_seeds)
    _check_workers(workers)
    grid = list(param_grid) if param_grid else None
    gap = horizon + embargo

    def one_fold(fold: Fold) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
        return _fold_run(fold, rows, columns, merged, grid=grid, gap=gap, halflife=sample_weight_halflife,
                         controls=signal_rules.controls if control else 0, seed=seed, members=ensemble_seeds)

    def final_fit() -> tuple[dict[str, Any], list[lgb.Booster], Pipeline]:
        chosen = choose_params(rows, columns, merged, grid, gap, sample_weight_halflife) if grid else merged
        models, baseline, _ = _fit_pair(rows, columns, chosen, sample_weight_halflife, ensemble_seeds)
        return chosen, models, baseline

    def scorer_ics() -> pl.DataFrame | None:
        # the gate's random scorers read only the features and returns of the folds' validation
        # sessions, known before any fit: they run beside the fits
        if not (control and signal_rules.random_scorers):
            return None
        scored = _session_block(rows, folds[0].validation_start, folds[-1].validation_end)
        return random_scorer_daily_ics(scored.select("session", "symbol", "forward_return", *columns),
                                       columns, signal_rules.random_scorers, seed=seed)

    # The folds, the final fit and the scorers share nothing but the rows they read: they may
    # run at once. The final fit and the latest (largest) folds start first, so the pool ends
    # together; the scorers (about half a fold's fit) last.
    (final_params, models, baseline), *latest_first, scorers = _run_independent(
        [final_fit, *(functools.partial(one_fold, fold) for fold in reversed(folds)), scorer_ics], workers)
    fold_runs = latest_first[::-1]
    oos = pl.concat(scored for scored, _, _ in fold_runs)
    windows = [window for _, window, _ in fold_runs]
    fold_params = [chosen for _, _, chosen in fold_runs]
    importance = pl.DataFrame({  # summed over the ensemble's members
        "feature": list(columns),
        "gain": np.sum([m.feature_importance(importance_type="gain") for m in models],
                       axis=0).astype(np.float64),
        "split": np.sum([m.feature_importance(importance_type="split") for m in models],
                        axis=0).astype(np.int64),
    }).sort(["gain", "feature"], descending=[True, False])
    return TrainingResult(
        model=models[0],
        baseline_model=baseline,
        feature_columns=columns,
        params=final_params,
        metrics=prediction_metrics(oos, "prediction"),
        baseline_metrics=prediction_metrics(oos, "baseline_prediction"),
        fold_metrics=_fold_metrics(oos, windows),
        oos_predictions=oos.sort("session", "symbol"),
        feature_importance=importance,
        folds=tuple(folds),
        first_session=sessions[0],
        last_session=sessions[-1],
        n_rows=rows.height,
        n_symbols=rows["symbol"].n_unique(),
        horizon=horizon,
        embargo=embargo,
        seed=seed,
        min_train_sessions=min_train,
        labels_end=labels_end_session(sessions[-1], horizon),
        control_metrics=_mean_control_metrics(oos, signal_rules.controls) if control else None,
        signal=signal_test(oos, horizon=horizon, rules=signal_rules, scorer_ics=scorers) if control else None,
        sample_weight_halflife=sample_weight_halflife,
        fold_params=tuple(fold_params),
        members=tuple(models) if len(models) > 1 else (),
    )


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics that are real numbers (NaN cannot be logged or compared)."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


__all__ = [
    "DEFAULT_LGBM_PARAMS",
    "PARAM_GRID",
    "TrainingDataError",
    "TrainingOptions",
    "TrainingResult",
    "ensemble_scores",
    "feature_matrix",
    "finite_metrics",
    "labels_end_session",
    "train_model",
]
