"""Point-in-time factors, each declared once with the window it looks back over.

`library.py` declares them; `compute.py` evaluates a feature set over bars in one pass.
"""

from trading_pipeline.domain.factors.library import (
    ALPHA_FACTORS,
    CROSS_SECTIONAL,
    FEATURE_SETS,
    SMALL_FACTORS,
    CrossSectional,
    Factor,
    FeatureSet,
    feature_set,
    feature_set_for,
)

__all__ = [
    "ALPHA_FACTORS",
    "CROSS_SECTIONAL",
    "FEATURE_SETS",
    "SMALL_FACTORS",
    "CrossSectional",
    "Factor",
    "FeatureSet",
    "feature_set",
    "feature_set_for",
]
