"""Stacking: nested (fold f fitted on earlier OOF rows only), calibration cross-fitted on inner purged folds,
bounded finite bp alpha, inverse-variance combination, and per-date style neutralisation against numpy
least squares."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column, relative_label_column
from quantlab_assets.compute.models import cv, stacking
from quantlab_assets.compute.models.base_models import MODELS
from quantlab_assets.compute.models.metrics import LABEL, score_predictions
from quantlab_assets.compute.models.oof import role_mask


def test_stacked_alpha_schema_bounds_and_nesting(model_panel, stacked_oof) -> None:
    predictions, folds, _ = stacked_oof
    result = stacking.stack_and_combine(predictions, folds, model_panel.labels)
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
    # The nested stack keeps the planted signal at 21 days: its out-of-fold rank IC is clearly positive. (At 63
    # days this 3.6-year panel leaves the inner folds, 63 dates embargoed on each side, meta scores without
    # rank skill in some folds: the cross-fitted calibrator is then flat, not optimistic.)
    assert score_predictions(result.per_horizon[21])["rank_ic"][0] > 0.05
    # The meta-learner never bets against a member (StackParams.meta_positive).
    assert all((fit.meta.coef_ >= 0).all() for fit in result.fits)
    # Calibrated alpha monotone in the meta score, strictly between the outermost step centres; every
    # residual variance positive.
    for fit in result.fits:
        centres = fit.calibrator.knots
        grid = np.linspace(centres[0] - 1.0, centres[-1] + 1.0, 200)
        assert (np.diff(fit.calibrator.predict(grid)) >= 0).all() and fit.residual_var > 0
        inside = np.linspace(centres[0], centres[-1], 200)
        assert centres.size == 1 or (np.diff(fit.calibrator.predict(inside)) > 0).all()
    assert (alpha["var_21d"] > 0).all() and (alpha["var_63d"] > 0).all()


def test_calibration_is_fitted_on_inner_out_of_fold_meta_scores(model_panel, stacked_oof) -> None:
    predictions, folds, _ = stacked_oof
    params = stacking.StackParams()
    wide = stacking.with_label_ends(stacking.wide_oof(predictions[21]), model_panel.labels, 21)
    fold = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21) & (pl.col(cv.FOLD_ID) == 3))
    train = role_mask(fold, wide[c.DATE], cv.TRAIN)
    x, y = wide.select(MODELS).to_numpy()[train], wide[LABEL].to_numpy()[train] * stacking.BP
    fit = stacking.fit_stack(x, y, wide[c.DATE][train], wide[stacking.LABEL_END][train], 21, params)
    scores = stacking.inner_oof_scores(x, y, wide[c.DATE][train], wide[stacking.LABEL_END][train], 21, params)
    scored = ~np.isnan(scores)
    # What the calibrator saw: the inner scores, not the in-sample meta-learner's.
    on_inner = stacking.IsotonicCalibrator.fit(scores[scored], y[scored], -stacking.ALPHA_BOUND_BP, stacking.ALPHA_BOUND_BP)
    np.testing.assert_array_equal(fit.calibrator.knots, on_inner.knots)
    np.testing.assert_array_equal(fit.calibrator.levels, on_inner.levels)
    assert fit.residual_var == float(np.var(y[scored] - fit.calibrator.predict(scores[scored])))
    assert fit.calibration_rows == scored.sum() > 0
    assert not np.allclose(scores[scored], fit.meta.predict(x)[scored])


def test_centred_isotonic_joins_the_centres_of_the_isotonic_steps() -> None:
    # Isotonic least squares of (1, 3, 2, 4) on scores 1..4: levels 1, 2.5, 2.5, 4, so three steps with
    # centres 1, 2.5 (scores 2 and 3) and 4.
    calibrator = stacking.IsotonicCalibrator.fit(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]), -10, 10)
    np.testing.assert_allclose(calibrator.knots, [1.0, 2.5, 4.0])
    np.testing.assert_allclose(calibrator.levels, [1.0, 2.5, 4.0])
    # Scores 2 and 3 share the step function's level 2.5; centred, they keep their order. Flat outside.
    np.testing.assert_allclose(calibrator.predict(np.array([0.0, 2.0, 3.0, 3.25, 9.0])), [1.0, 2.0, 3.0, 3.25, 4.0])
    # Levels bounded like the step function's; one step is a constant.
    bounded = stacking.IsotonicCalibrator.fit(np.array([0.0, 1.0, 2.0]), np.array([-50.0, 0.0, 50.0]), -20, 20)
    np.testing.assert_allclose(bounded.levels, [-20.0, 0.0, 20.0])
    flat = stacking.IsotonicCalibrator.fit(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]), -10, 10)
    np.testing.assert_allclose(flat.predict(np.array([0.0, 2.5, 7.0])), [2.0, 2.0, 2.0])
    # The seed's step function, for comparison: knots at each step's ends, scores 2 and 3 tied at 2.5; it is
    # sklearn's IsotonicRegression exactly.
    from sklearn.isotonic import IsotonicRegression

    scores, target = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    step = stacking.IsotonicCalibrator.fit(scores, target, -10, 10, centred=False)
    grid = np.linspace(0.0, 5.0, 51)
    np.testing.assert_allclose(step.predict(np.array([2.0, 3.0])), [2.5, 2.5])
    np.testing.assert_allclose(step.predict(grid), IsotonicRegression(y_min=-10, y_max=10, out_of_bounds="clip")
                               .fit(scores, target).predict(grid))


def _hand_case(n_dates: int = 120, tickers: int = 4, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, list[dt.date]]:
    """A wide OOF frame over `n_dates` business days (labels end 2 dates later) and one walk-forward fold:
    train dates 0-59, purged 60-62, embargoed 63-69, test 70-119."""
    rng = np.random.default_rng(seed)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n_dates + 2)]
    rows = n_dates * tickers
    signal = rng.normal(size=rows)
    wide = pl.DataFrame({
        c.DATE: [d for d in dates[:n_dates] for _ in range(tickers)], c.TICKER: [f"T{i}" for i in range(tickers)] * n_dates,
        cv.FOLD_ID: 0, LABEL: 0.01 * signal + 0.02 * rng.normal(size=rows),
        **{m: signal + rng.normal(size=rows) for m in MODELS},
        stacking.LABEL_END: [d for d in dates[2:] for _ in range(tickers)],
    }, schema_overrides={c.DATE: pl.Date, stacking.LABEL_END: pl.Date, cv.FOLD_ID: pl.Int64})
    segments = [(cv.TRAIN, 0, 59), (cv.PURGED, 60, 62), (cv.EMBARGOED, 63, 69), (cv.TEST, 70, n_dates - 1)]
    folds = pl.DataFrame({
        cv.SCHEME: cv.WALK_FORWARD, cv.HORIZON_DAYS: 21, cv.FOLD_ID: 1, cv.ROLE: [r for r, _, _ in segments],
        cv.START: [dates[a] for _, a, _ in segments], cv.END: [dates[b] for _, _, b in segments],
        cv.N_DATES: [b - a + 1 for _, a, b in segments], cv.TEST_GROUP: None, cv.PATH_ID: None,
    }, schema=cv.FOLD_SCHEMA)
    return wide, folds, dates


def test_cross_fitting_reads_no_row_of_the_test_fold_or_its_purge_window() -> None:
    wide, folds, dates = _hand_case()
    params = stacking.StackParams(calibration_folds=3, calibration_embargo_days=2)
    _, (fit,) = stacking.stack_horizon(wide, folds, 21, params)
    assert fit.train_rows == 60 * 4 and fit.calibration_rows > 0

    def state(f: stacking.FoldStack) -> tuple:
        return (f.residual_var, f.calibration_rows, tuple(f.meta.coef_), f.meta.intercept_,
                tuple(f.calibrator.knots), tuple(f.calibrator.levels))

    rng = np.random.default_rng(9)
    # Everything from the purge window on (purged, embargoed and test dates) rewritten: the fold's fit is the same.
    later = pl.col(c.DATE) >= dates[60]
    rewritten = wide.with_columns(pl.when(later).then(pl.lit(pl.Series(rng.normal(size=wide.height)))).otherwise(pl.col(name))
                                  .alias(name) for name in (LABEL, *MODELS))
    assert not rewritten.equals(wide)
    _, (same,) = stacking.stack_horizon(rewritten, folds, 21, params)
    assert state(same) == state(fit)
    # One training row changed: the fit moves (the comparison can fail).
    touched = wide.with_columns(pl.when(pl.col(c.DATE) == dates[30]).then(pl.col(LABEL) + 1.0).otherwise(pl.col(LABEL)).alias(LABEL))
    _, (moved,) = stacking.stack_horizon(touched, folds, 21, params)
    assert state(moved) != state(fit)


def test_inner_calibration_folds_are_purged_and_embargoed_on_both_sides() -> None:
    # Ten dates, labels ending one date later, two groups, one date of embargo: testing dates 0-4 embargoes
    # date 5 (after); testing 5-9 purges date 4 (its label ends on date 5) before it.
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(11)]
    calendar = pl.DataFrame({c.DATE: dates[:10], relative_label_column(21): 0.0, label_end_column(21): dates[1:]})
    folds = cv.make_folds(calendar, cv.CvParams(embargo_days=1, kfold_groups=2, horizons=(21,), schemes=(cv.PURGED_KFOLD,)))
    roles = {(r[cv.FOLD_ID], r[cv.ROLE]): (r[cv.START].day, r[cv.END].day) for r in folds.iter_rows(named=True)}
    assert roles == {(0, cv.TEST): (1, 5), (0, cv.EMBARGOED): (6, 6), (0, cv.TRAIN): (7, 10),
                     (1, cv.TRAIN): (1, 4), (1, cv.PURGED): (5, 5), (1, cv.TEST): (6, 10)}
    assert cv.fold_violations(folds, calendar, 1) == []


def test_style_neutral_alpha_has_no_style_exposure(model_panel, stacked_oof) -> None:
    predictions, folds, features = stacked_oof
    params = stacking.StackParams(style_neutral=True)
    alpha = stacking.stack_and_combine(predictions, folds, model_panel.labels, features, params).alpha
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


def test_stacked_alpha_is_bit_identical_when_run_twice(model_panel, stacked_oof) -> None:
    predictions, folds, features = stacked_oof
    params = stacking.StackParams(style_neutral=True)
    first = stacking.stack_and_combine(predictions, folds, model_panel.labels, features, params).alpha
    second = stacking.stack_and_combine(predictions, folds, model_panel.labels, features, params).alpha
    assert first.equals(second)


def test_the_meta_learner_gives_a_member_that_predicts_backwards_weight_zero_not_a_negative_one() -> None:
    rng = np.random.default_rng(3)
    signal = rng.standard_normal(4000)
    label_bp = 10 * signal + 30 * rng.standard_normal(4000)
    members = np.column_stack([signal + rng.standard_normal(4000), -signal + rng.standard_normal(4000),
                               rng.standard_normal(4000)])
    positive = stacking.meta_learner(stacking.StackParams()).fit(members, label_bp)
    unconstrained = stacking.meta_learner(stacking.StackParams(meta_positive=False)).fit(members, label_bp)
    assert positive.coef_[0] > 0 and positive.coef_[1] == 0.0 and positive.coef_[2] >= 0.0
    assert unconstrained.coef_[1] < 0
