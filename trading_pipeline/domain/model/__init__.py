"""Model training, walk-forward validation and the MLflow registry (public API)."""

from trading_pipeline.domain.model.point_in_time import (
    NoQualifyingModel,
    ScoringChoice,
    VersionRecord,
    choose_version,
    qualifies,
)
from trading_pipeline.domain.model.registry import (
    TRAINING_END_TAG,
    LoadedModel,
    ModelNotFound,
    ModelRegistry,
)
from trading_pipeline.domain.model.selection import (
    ChallengerVerdict,
    SelectionRules,
    compare_on_recent_window,
)
from trading_pipeline.domain.model.training import (
    DEFAULT_LGBM_PARAMS,
    TrainingDataError,
    TrainingResult,
    feature_matrix,
    labels_end_session,
    train_model,
)
from trading_pipeline.domain.model.validation import (
    METRIC_NAMES,
    Fold,
    daily_information_coefficients,
    hit_rate,
    prediction_metrics,
    top_minus_bottom,
    walk_forward_splits,
)

__all__ = [
    "NoQualifyingModel",
    "ScoringChoice",
    "TRAINING_END_TAG",
    "VersionRecord",
    "choose_version",
    "labels_end_session",
    "qualifies",
    "ChallengerVerdict",
    "SelectionRules",
    "compare_on_recent_window",
    "DEFAULT_LGBM_PARAMS",
    "METRIC_NAMES",
    "Fold",
    "LoadedModel",
    "ModelNotFound",
    "ModelRegistry",
    "TrainingDataError",
    "TrainingResult",
    "daily_information_coefficients",
    "feature_matrix",
    "hit_rate",
    "prediction_metrics",
    "top_minus_bottom",
    "train_model",
    "walk_forward_splits",
]
