"""Stacking: nested (fold f fitted on earlier OOF rows only), bounded finite bp alpha, inverse-variance
combination, and per-date style neutralisation against numpy least squares."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv, stacking
from quantlab_assets.compute.models.metrics import score_predictions


def test_stacked_alpha_schema_bounds_and_nesting(stacked_oof) -> None:
    predictions, folds, _ = stacked_oof
    result = stacking.stack_and_combine(predictions, folds)
    alpha = result.alpha
    assert alpha.columns == list(stacking.STACKED_COLUMNS)
    values = alpha.select(pl.exclude(c.DATE, c.TICKER)).to_numpy()
    assert np.isfinite(values).all() and (np.abs(values[:, :3]) <= 1000).all()
    # Fold 0 has no earlier OOF rows: no alpha on its test dates.
    first_test = predictions[21]["ridge"].filter(pl.col(cv.FOLD_ID) == 0)[c.DATE].max()
    assert alpha[c.DATE].min() > first_test
    # Every fit of fold f used rows dated before fold f's test window minus the 63-date embargo.
    for fit in result.fits:
        fold = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == fit.horizon)
                            & (pl.col(cv.FOLD_ID) == fit.fold_id))
        train_end = fold.filter(pl.col(cv.ROLE) == cv.TRAIN)[cv.END].max()
        earlier = predictions[fit.horizon]["ridge"].filter(pl.col(c.DATE) <= train_end)
        assert fit.train_rows == earlier.height > 0
    # Inverse-variance weights: alpha_combined lies between the two horizons' alphas.
    low = np.minimum(alpha["alpha_21d"], alpha["alpha_63d"]) - 1e-9
    high = np.maximum(alpha["alpha_21d"], alpha["alpha_63d"]) + 1e-9
    assert ((alpha["alpha_combined"] >= low) & (alpha["alpha_combined"] <= high)).all()
    w21 = 1 / alpha["var_21d"]
    w63 = 1 / alpha["var_63d"]
    np.testing.assert_allclose(alpha["alpha_combined"], (alpha["alpha_21d"] * w21 + alpha["alpha_63d"] * w63) / (w21 + w63))
    # The nested stack keeps the planted signal: its out-of-fold rank IC is clearly positive.
    for horizon, frame in result.per_horizon.items():
        assert score_predictions(frame)["rank_ic"][0] > 0.05, horizon


def test_style_neutral_alpha_has_no_style_exposure(stacked_oof) -> None:
    predictions, folds, features = stacked_oof
    params = stacking.StackParams(style_neutral=True)
    alpha = stacking.stack_and_combine(predictions, folds, features, params).alpha
    joined = alpha.join(features.select(c.DATE, c.TICKER, *params.style_exposures), on=[c.DATE, c.TICKER])
    day = joined.filter(pl.col(c.DATE) == joined[c.DATE].unique().sort()[10]).drop_nulls()
    x = np.column_stack([np.ones(day.height), day.select(params.style_exposures).to_numpy()])
    coefficients, *_ = np.linalg.lstsq(x, day["alpha_combined"].to_numpy(), rcond=None)
    np.testing.assert_allclose(coefficients, 0.0, atol=1e-8)


def test_neutralise_matches_least_squares_per_date() -> None:
    rng = np.random.default_rng(3)
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    frame = pl.DataFrame({c.DATE: [d for d in days for _ in range(20)], c.TICKER: [f"T{i}" for i in range(20)] * 2,
                          "a": rng.normal(size=40), "b": rng.normal(size=40), "y": rng.normal(size=40)})
    result = stacking.neutralise(frame, ["y"], ["a", "b"])
    for day in days:
        one = frame.filter(pl.col(c.DATE) == day)
        x = np.column_stack([np.ones(20), one.select("a", "b").to_numpy()])
        beta, *_ = np.linalg.lstsq(x, one["y"].to_numpy(), rcond=None)
        np.testing.assert_allclose(result.filter(pl.col(c.DATE) == day)["y"], one["y"].to_numpy() - x @ beta, atol=1e-10)


def test_stacked_alpha_is_bit_identical_when_run_twice(stacked_oof) -> None:
    predictions, folds, features = stacked_oof
    params = stacking.StackParams(style_neutral=True)
    first = stacking.stack_and_combine(predictions, folds, features, params).alpha
    second = stacking.stack_and_combine(predictions, folds, features, params).alpha
    assert first.equals(second)
