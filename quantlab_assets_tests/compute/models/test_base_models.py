"""Base models: the Ridge pipeline's own median imputer computes what scikit-learn's does and leaves its input
alone (and a fit pickled before it moved to imputer.py still loads); the trees read inputs and labels
normalised per date."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import polars as pl
import pytest
from sklearn.impute import SimpleImputer

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.preprocessing import rank_gauss_per_date
from quantlab_assets.compute.models.base_models import (
    COLUMNS_PER_BLOCK,
    LIGHTGBM,
    RIDGE,
    XGBOOST,
    BaseModelParams,
    LightGBMParams,
    XGBoostParams,
    make_estimator,
    model_rows,
    model_view,
)
from quantlab_assets.compute.models.imputer import MedianImputer
from quantlab_assets.compute.models.metrics import LABEL


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


def test_a_ridge_fit_pickled_when_the_imputer_lived_in_base_models_still_loads() -> None:
    fitted = MedianImputer().fit(_with_gaps(50, seed=4))
    # Protocol 0 names the class as text, so the old module path can be written in place of the new one.
    stored = pickle.dumps(fitted, protocol=0).replace(b"quantlab_assets.compute.models.imputer",
                                                       b"quantlab_assets.compute.models.base_models")
    assert b"models.base_models" in stored
    loaded = pickle.loads(stored)
    assert type(loaded) is MedianImputer
    np.testing.assert_array_equal(loaded.statistics_, fitted.statistics_)


def _design_frame(rng: np.random.Generator, dates: int = 30, tickers: int = 25) -> pl.DataFrame:
    """A design frame of `dates` cross-sections: one informative input, one noise input, a label."""
    n = dates * tickers
    signal = rng.standard_normal(n)
    return pl.DataFrame({
        c.DATE: [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(dates) for _ in range(tickers)],
        c.TICKER: [f"T{i:02d}" for _ in range(dates) for i in range(tickers)],
        "f_signal": signal,
        "f_noise": rng.standard_normal(n),
        LABEL: 0.3 * signal + rng.standard_normal(n),
    })


def test_model_view_normalises_the_trees_inputs_and_label_per_date_and_leaves_ridge_as_is() -> None:

    frame = _design_frame(np.random.default_rng(1))
    inputs = ("f_signal", "f_noise")
    assert model_view(frame, inputs, RIDGE).equals(frame)
    expected = rank_gauss_per_date(frame, [*inputs, LABEL])
    for model in (XGBOOST, LIGHTGBM):
        assert model_view(frame, inputs, model).equals(expected)
        # A live cross-section has no label: only the inputs are normalised.
        assert model_view(frame.drop(LABEL), inputs, model).equals(expected.drop(LABEL))
    per_date = model_view(frame, inputs, LIGHTGBM).group_by(c.DATE).agg(pl.col(LABEL).mean().abs(), pl.col("f_noise").mean().abs())
    assert per_date[LABEL].max() < 1e-9 and per_date["f_noise"].max() < 1e-9


@pytest.mark.parametrize("model", [XGBOOST, LIGHTGBM])
def test_a_tree_fitted_on_the_view_ignores_a_per_date_monotone_transform_of_its_inputs(model: str) -> None:

    params = BaseModelParams(xgboost=XGBoostParams(n_estimators=20, max_depth=3), lightgbm=LightGBMParams(n_estimators=20, min_child_samples=20))
    frame = _design_frame(np.random.default_rng(2))
    inputs = ["f_signal", "f_noise"]
    day = pl.col(c.DATE).rank("dense").cast(pl.Float64)
    # Each date its own level and scale (a volatility regime), then an increasing nonlinear map.
    shifted = frame.with_columns(((pl.col(name) * day + 3 * day) ** 3).alias(name) for name in inputs)

    def predictions(design: pl.DataFrame) -> np.ndarray:
        view = model_view(design, inputs, model)
        x, y = view.select(inputs).to_numpy(), view[LABEL].to_numpy()
        return make_estimator(model, params).fit(x, y).predict(x)

    np.testing.assert_array_equal(predictions(frame), predictions(shifted))
    raw = make_estimator(model, params).fit(shifted.select(inputs).to_numpy(), shifted[LABEL].to_numpy())
    assert not np.allclose(raw.predict(shifted.select(inputs).to_numpy()), predictions(frame))


def _ragged_design_frame(rng: np.random.Generator, inputs: int) -> pl.DataFrame:
    """Cross-sections of 31 to 50 members (so per-date ranks take many distinct values), a tenth of the
    inputs missing, and more inputs than one block of model_rows."""
    frames = []
    for day in range(40):
        members = int(rng.integers(31, 51))
        values = rng.standard_normal((members, inputs))
        label = values[:, 0] - values[:, 1] + rng.standard_normal(members)
        values[rng.random(values.shape) < 0.1] = np.nan
        frames.append(pl.DataFrame({
            c.DATE: [dt.date(2024, 1, 1) + dt.timedelta(days=day)] * members,
            c.TICKER: [f"T{i:02d}" for i in range(members)],
            **{f"f_{j:02d}": values[:, j] for j in range(inputs)},
            LABEL: label,
        }))
    return pl.concat(frames).with_columns(pl.col("^f_.*$").fill_nan(None))


def test_model_rows_are_the_model_view_as_arrays() -> None:
    inputs = tuple(f"f_{j:02d}" for j in range(COLUMNS_PER_BLOCK * 2 + 3))
    frame = _ragged_design_frame(np.random.default_rng(5), len(inputs))
    for model in (RIDGE, XGBOOST, LIGHTGBM):
        for per_date in (True, False):
            rows, view = model_rows(frame, inputs, model, per_date), model_view(frame, inputs, model, per_date)
            wide = np.float32 if per_date and model == XGBOOST else np.float64
            assert rows.x.dtype == wide and rows.x.flags.c_contiguous
            np.testing.assert_array_equal(rows.x, view.select(pl.col(inputs).cast(pl.Float64)).to_numpy().astype(wide))
            np.testing.assert_array_equal(rows.y, view[LABEL].to_numpy())
            assert model_rows(frame.drop(LABEL), inputs, model, per_date).y is None


def test_xgboost_fitted_on_its_float32_rows_predicts_what_its_float64_fit_does() -> None:
    # model_rows hands XGBoost float32 to halve its partition's memory; it must not change a prediction.
    # (LightGBM would: it bins float32 inputs differently, so it keeps float64.)
    inputs = tuple(f"f_{j:02d}" for j in range(6))
    frame = _ragged_design_frame(np.random.default_rng(6), len(inputs))
    params = BaseModelParams(xgboost=XGBoostParams(n_estimators=60))
    rows, view = model_rows(frame, inputs, XGBOOST), model_view(frame, inputs, XGBOOST)
    wide = view.select(inputs).to_numpy()
    assert rows.x.dtype == np.float32
    narrow_fit = make_estimator(XGBOOST, params).fit(rows.x, rows.y)
    wide_fit = make_estimator(XGBOOST, params).fit(wide, view[LABEL].to_numpy())
    np.testing.assert_array_equal(narrow_fit.predict(rows.x), wide_fit.predict(wide))
    assert np.std(wide_fit.predict(wide)) > 0
