"""Out-of-fold base models on a small synthetic market: test-fold-only predictions, determinism, and the
leakage canaries (shuffled labels give no IC; the planted signal is recovered)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import canaries, cv, oof
from quantlab_assets.compute.models.base_models import MODELS
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION
from quantlab_assets_tests.compute.models.conftest import FAST



@pytest.fixture(scope="module")
def folds(model_panel) -> pl.DataFrame:
    return cv.make_folds(model_panel.labels)


@pytest.fixture(scope="module")
def canary_features(model_panel) -> pl.DataFrame:
    oracle = model_panel.market.oracle.select(c.DATE, c.TICKER, c.PLANTED_SIGNAL)
    return model_panel.features.join(oracle, on=[c.DATE, c.TICKER], how="left").select(c.DATE, c.TICKER, *canaries.PLANTED_CANARY_INPUTS)


def test_predictions_cover_test_dates_only_once_each(model_panel, folds) -> None:
    panel = oof.design_panel(model_panel.features, model_panel.labels, 21)
    result = oof.fit_oof(panel, folds, "ridge", 21, FAST)
    predictions = result.predictions
    assert predictions.select(c.DATE, c.TICKER).is_unique().all()
    tests = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21) & (pl.col(cv.ROLE) == cv.TEST))
    for fold_id, start, end in tests.select(cv.FOLD_ID, cv.START, cv.END).iter_rows():
        in_window = predictions.filter(pl.col(c.DATE).is_between(start, end))
        assert in_window[cv.FOLD_ID].unique().to_list() == [fold_id]
        assert in_window.height == panel.frame.filter(pl.col(c.DATE).is_between(start, end)).height
    assert predictions[c.DATE].min() == tests[cv.START].min()
    assert result.fold_scores.height == 5 and result.importance[oof.FEATURE].n_unique() == len(result.feature_names)
    assert predictions[PREDICTION].is_finite().all()


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_predictions_are_bit_identical_under_seed_42(model_panel, folds, model) -> None:
    panel = oof.design_panel(model_panel.features, model_panel.labels, 63)
    first = oof.fit_oof(panel, folds, model, 63, FAST).predictions
    second = oof.fit_oof(panel, folds, model, 63, FAST).predictions
    assert np.array_equal(first[PREDICTION].to_numpy().view(np.uint64), second[PREDICTION].to_numpy().view(np.uint64))


@pytest.mark.parametrize("horizon", [21, 63])
def test_shuffled_labels_give_a_mean_ic_within_noise(model_panel, canary_features, folds, horizon) -> None:
    # The bound (3 standard errors of the mean daily IC) is about 0.025 here.
    panel = canaries.with_shuffled_labels(oof.design_panel(canary_features, model_panel.labels, horizon), seed=7)
    for model in MODELS:
        verdict = canaries.shuffled_label_canary(oof.fit_oof(panel, folds, model, horizon, FAST).predictions)
        assert verdict.bound is not None and verdict.bound < 0.05, (model, verdict)
        assert verdict.passed, (model, verdict)


@pytest.mark.parametrize("horizon", [21, 63])
def test_out_of_fold_ic_recovers_half_the_oracle_ic_of_the_planted_signal(model_panel, canary_features, folds, horizon) -> None:
    # Measured shares of the oracle's rank IC: 0.63-0.96 across models and horizons; required: 0.5.
    panel = oof.design_panel(canary_features, model_panel.labels, horizon)
    for model in MODELS:
        predictions = oof.fit_oof(panel, folds, model, horizon, FAST).predictions
        verdict = canaries.planted_signal_canary(predictions, canary_features)
        assert verdict.oracle_rank_ic > 0.1
        assert verdict.passed and verdict.rank_ic >= 0.5 * verdict.oracle_rank_ic, (model, verdict)


@pytest.mark.parametrize("model", ["ridge", "xgboost"])
def test_no_prediction_changes_when_only_the_future_changes(model_panel, folds, model) -> None:
    # Seed 004's "no future data" acceptance, through the whole pipeline: perturb every bar after a cut
    # inside fold 2's test window, recompute features, labels and OOF predictions; every prediction
    # dated <= cut stays bit-identical (its model trained on labels that end before its test window,
    # its features use data up to its date). Labels dated <= cut do change (they look ahead by design).
    from quantlab_assets.compute.features.compute import compute_features
    from quantlab_assets.compute.features.lookahead import changed_features, perturb_after
    from quantlab_assets.compute.labels.compute import compute_labels

    universe = model_panel.market.universe
    test_window = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21)
                               & (pl.col(cv.FOLD_ID) == 2) & (pl.col(cv.ROLE) == cv.TEST))
    cut = test_window[cv.START][0] + (test_window[cv.END][0] - test_window[cv.START][0]) / 2

    def predictions(bars: pl.DataFrame) -> pl.DataFrame:
        panel = oof.design_panel(compute_features(bars, universe).frame, compute_labels(bars, universe), 21)
        return oof.fit_oof(panel, folds, model, 21, FAST).predictions.select(c.DATE, c.TICKER, cv.FOLD_ID, PREDICTION)

    before = predictions(model_panel.bars)
    after = predictions(perturb_after(model_panel.bars, cut, np.random.default_rng(5)))
    assert before.filter(pl.col(c.DATE) <= cut)[cv.FOLD_ID].unique().sort().to_list() == [0, 1, 2]
    assert changed_features(before, after, cut) == []
    assert changed_features(before, after, test_window[cv.END][0])  # and the perturbation does reach later ones


def test_inputs_are_the_features_never_a_joined_label(model_panel) -> None:
    # Every label column is named like a feature (fwd_ret_21d, tb_label, ...); only the features
    # frame decides what a model reads, so joining labels cannot add inputs.
    panel = oof.design_panel(model_panel.features, model_panel.labels, 21)
    assert panel.inputs == tuple(oof.feature_columns(model_panel.features))
    assert LABEL not in panel.inputs and not set(panel.inputs) & (set(model_panel.labels.columns) - {c.DATE, c.TICKER})
    with pytest.raises(ValueError, match="not columns"):
        oof.DesignPanel(panel.frame.drop(panel.inputs[0]), panel.inputs)
