"""The Ridge pipeline's own median imputer computes what scikit-learn's does, and leaves its input alone."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer

from quantlab_assets.compute.models.base_models import MedianImputer


def _with_gaps(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 6))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3] = np.nan  # a feature without any value in the training rows
    return x


def test_median_imputer_matches_scikit_learn_and_keeps_the_input() -> None:
    train, test = _with_gaps(501, seed=1), _with_gaps(97, seed=2)
    train_before, test_before = train.copy(), test.copy()
    ours = MedianImputer().fit(train)
    reference = SimpleImputer(strategy="median", keep_empty_features=True).fit(train)
    np.testing.assert_array_equal(ours.statistics_, reference.statistics_)
    np.testing.assert_array_equal(ours.transform(test), reference.transform(test))
    np.testing.assert_array_equal(train, train_before)
    np.testing.assert_array_equal(test, test_before)
    assert not np.isnan(ours.transform(test)).any()


def test_median_imputer_refuses_a_different_number_of_features() -> None:
    imputer = MedianImputer().fit(_with_gaps(50, seed=3))
    with pytest.raises(ValueError, match="fitted on 6 features, got 5"):
        imputer.transform(np.zeros((4, 5)))
