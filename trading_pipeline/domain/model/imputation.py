"""The Ridge baseline's median imputer, one column at a time.

scikit-learn's `SimpleImputer(strategy="median")` takes the medians of a dense matrix with
`np.ma.median` over the whole masked matrix: a full sort and about 3.4 extra copies of the
matrix (10 GB of a 13 GB peak at 15 M training rows). This imputer takes each column's
`np.nanmedian` (a partition of that column's values only) and gives the same medians to the
last bit: both are the middle value, or the sum of the two middle values halved. Like
`SimpleImputer(strategy="median", keep_empty_features=True)`, a column with no value at all
gets 0, and infinities are refused. Imported with scikit-learn, on first use.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data


class ColumnMedianImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill NaN with the column's median seen at fit; `copy=False` fills the input in place."""

    def __init__(self, copy: bool = True) -> None:
        self.copy = copy

    def fit(self, X, y=None):  # noqa: N803 (scikit-learn's argument names)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", copy=False)
        with warnings.catch_warnings():  # an all-NaN column warns, then gets 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.array([np.nanmedian(X[:, j]) for j in range(X.shape[1])], dtype=np.float64)
        medians[np.isnan(medians)] = 0.0
        self.statistics_ = medians
        return self

    def transform(self, X):  # noqa: N803
        check_is_fitted(self, "statistics_")
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", copy=self.copy,
                          reset=False)
        for j, median in enumerate(self.statistics_):
            column = X[:, j]  # a view: filling it fills X
            column[np.isnan(column)] = median
        return X
