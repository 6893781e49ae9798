"""The Ridge pipeline's median imputer, a scikit-learn transformer (base_models.make_estimator).

Ours, not scikit-learn's `SimpleImputer(strategy="median")`: that one takes medians through numpy masked
arrays, 19.4 s and 4.5 GB above its input for 1.86 M x 73 training rows, where `np.nanmedian` takes 2.0 s
and no extra memory for the same, bit-identical, statistics (a test compares the two). At 500 instruments
it made a Ridge partition slower than the LightGBM fits' share of the same folds and its peak RSS 9 GB.

A module of its own because the class derives from scikit-learn's: base_models, which every Dagster run
process imports, imports this one only when it builds a Ridge pipeline.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class MedianImputer(TransformerMixin, BaseEstimator):
    """NaN -> the column's median over the rows it was fitted on; a column without any value -> 0.

    What `SimpleImputer(strategy="median", keep_empty_features=True)` computes, without its masked-array
    cost. Transforming returns a new array (the input, often a view of the design matrix, is left as is).
    """

    def fit(self, x: np.ndarray, y: object = None) -> MedianImputer:
        x = np.asarray(x, dtype=np.float64)
        with warnings.catch_warnings():  # a column without any value has no median: it is filled with 0
            warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
            medians = np.nanmedian(x, axis=0)
        self.statistics_ = np.where(np.isnan(medians), 0.0, medians)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"MedianImputer was fitted on {self.n_features_in_} features, got {x.shape[1]}")
        return np.where(np.isnan(x), self.statistics_, x)
