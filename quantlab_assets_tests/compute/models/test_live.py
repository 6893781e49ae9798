"""The live alpha: base models fitted on what was known at the close of `as_of` (once, stored with the
out-of-fold stage), stacked for the newest cross-section."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.compute import compute_features
from quantlab_assets.compute.features.lookahead import perturb_after
from quantlab_assets.compute.labels.compute import compute_labels, label_end_column
from quantlab_assets.compute.models import live, stacking
from quantlab_assets.compute.models.base_models import MODELS, make_estimator, model_view
from quantlab_assets.compute.models.canaries import PLANTED_CANARY_INPUTS
from quantlab_assets.compute.models.metrics import LABEL
from quantlab_assets.compute.models.oof import design_matrix, design_panel
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.models import BaseModelFitsSchema, StackedAlphaSchema
from quantlab_assets_tests.compute.models.conftest import FAST


def _canary(features: pl.DataFrame, model_panel) -> pl.DataFrame:
    oracle = model_panel.market.oracle.select(c.DATE, c.TICKER, c.PLANTED_SIGNAL)
    return features.join(oracle, on=[c.DATE, c.TICKER], how="left").select(c.DATE, c.TICKER, *PLANTED_CANARY_INPUTS)


def _stored_fits(features: pl.DataFrame, labels: pl.DataFrame, as_of: dt.date | None = None) -> dict[str, live.BaseModelFit]:
    """Every model x horizon fitted as the out-of-fold stage fits it, through its stored frame and back."""
    return {live.fit_key(m, h): live.fit_from_frame(live.fit_frame(live.fit_base_model(features, labels, m, h, as_of, FAST)))
            for m in MODELS for h in (21, 63)}


def test_live_alpha_covers_the_newest_date_that_the_stacked_alpha_cannot(model_panel, stacked_oof) -> None:
    predictions, folds, _ = stacked_oof
    features = _canary(model_panel.features, model_panel)
    result = live.fit_live_alpha(features, model_panel.labels, predictions, _stored_fits(features, model_panel.labels))
    newest = model_panel.features[c.DATE].max()
    assert result.as_of == newest and result.alpha[c.DATE].unique().to_list() == [newest]
    assert result.alpha.height == model_panel.features.filter(pl.col(c.DATE) == newest).height
    assert stacking.stack_and_combine(predictions, folds, model_panel.labels).alpha[c.DATE].max() < newest
    assert schema_failures(StackedAlphaSchema, result.alpha, asset="live_alpha", partition="test") is None
    assert result.alpha[stacking.ALPHA_COMBINED].std() > 0
    for fit in result.fits:
        assert fit.labels_ended_by <= newest and fit.base_training_rows > fit.stack_training_rows > 0


def test_stored_fits_give_the_live_alpha_of_models_refitted_on_every_known_row(model_panel, stacked_oof) -> None:
    # What the live alpha did before its base models were fitted with the out-of-fold stage: refit each
    # model on the rows whose label ended by as_of and predict as_of. The stored fits must give it bit for bit.
    predictions, _, _ = stacked_oof
    features, labels = _canary(model_panel.features, model_panel), model_panel.labels
    as_of = features[c.DATE].max()
    today = features.filter(pl.col(c.DATE) == as_of)
    refitted = {}
    for h in (21, 63):
        known = labels.filter(pl.col(label_end_column(h)) <= as_of)
        design = design_panel(features, known, h)
        for m in MODELS:
            view = design.with_frame(model_view(design.frame, design.inputs, m))
            estimator = make_estimator(m, FAST).fit(design_matrix(view), view.frame[LABEL].to_numpy())
            refitted[live.fit_key(m, h)] = live.BaseModelFit(m, h, as_of, design.frame.height, as_of, design.inputs,
                                                             True, estimator)
    stored = _stored_fits(features, labels)
    for key, fit in stored.items():
        assert schema_failures(BaseModelFitsSchema, live.fit_frame(fit), asset="base_model_fits", partition=key) is None
        x_today = design_matrix(design.with_frame(model_view(today, design.inputs, fit.model)))
        assert np.array_equal(fit.estimator.predict(x_today), refitted[key].estimator.predict(x_today))
    new = live.fit_live_alpha(features, labels, predictions, stored).alpha
    assert new.equals(live.fit_live_alpha(features, labels, predictions, refitted).alpha)


def test_a_stale_or_missing_fit_is_refused(model_panel, stacked_oof) -> None:
    predictions, _, _ = stacked_oof
    features = _canary(model_panel.features, model_panel)
    dates = features[c.DATE].unique().sort()
    older = _stored_fits(features, model_panel.labels, dates[-2])
    with pytest.raises(ValueError, match="is as of"):
        live.fit_live_alpha(features, model_panel.labels, predictions, older)
    del older["xgboost_63d"]
    with pytest.raises(ValueError, match="no stored base-model fit xgboost_63d"):
        live.fit_live_alpha(features, model_panel.labels, predictions, older, dates[-2])


def test_live_alpha_at_a_past_date_ignores_everything_after_it(model_panel, stacked_oof) -> None:
    # Perturb every bar after as_of (features and labels recomputed) and every out-of-fold label that
    # ended after it: the live alpha at as_of must not move by a bit.
    predictions, _, _ = stacked_oof
    dates = model_panel.features[c.DATE].unique().sort()
    as_of = dates[int(dates.len() * 0.8)]

    def live_alpha(bars: pl.DataFrame, oof: dict[int, dict[str, pl.DataFrame]]) -> pl.DataFrame:
        universe = model_panel.market.universe
        features, labels = _canary(compute_features(bars, universe).frame, model_panel), compute_labels(bars, universe)
        return live.fit_live_alpha(features, labels, oof, _stored_fits(features, labels, as_of), as_of).alpha

    rng = np.random.default_rng(3)
    ends = model_panel.labels.select(c.DATE, c.TICKER, *(label_end_column(h) for h in predictions))
    perturbed_oof = {
        h: {m: frame.join(ends, on=[c.DATE, c.TICKER], how="left").with_columns(
                pl.when(pl.col(label_end_column(h)) > as_of).then(pl.col(LABEL) + pl.lit(pl.Series(rng.normal(0, 0.1, frame.height))))
                .otherwise(pl.col(LABEL)).alias(LABEL)).select(frame.columns)
            for m, frame in by_model.items()}
        for h, by_model in predictions.items()
    }
    assert any((a[LABEL] != b[LABEL]).any() for h in predictions for a, b in zip(predictions[h].values(), perturbed_oof[h].values()))
    before = live_alpha(model_panel.bars, predictions)
    after = live_alpha(perturb_after(model_panel.bars, as_of, np.random.default_rng(5)), perturbed_oof)
    assert before[c.DATE].unique().to_list() == [as_of]
    assert before.equals(after)


def test_a_date_without_features_is_refused(model_panel, stacked_oof) -> None:
    predictions, _, _ = stacked_oof
    later = model_panel.features[c.DATE].max() + dt.timedelta(days=30)
    with pytest.raises(ValueError, match="no feature row"):
        live.fit_live_alpha(_canary(model_panel.features, model_panel), model_panel.labels, predictions, {}, later)


def test_a_constant_tradable_alpha_is_a_problem_and_ties_at_the_extremes_are_not() -> None:
    alpha = pl.DataFrame({c.TICKER: ["A", "B", "C", "D"], "alpha_21d": [25.0, 25.0, -3.0, -40.0],
                          "alpha_combined": [7.0, 7.0, 7.0, 7.0], "alpha_63d": [1.0, 1.0, 1.0, 1.0]})
    assert live.constant_alphas(alpha, ["alpha_21d"], 1e-6) == []
    assert live.constant_alphas(alpha, ["alpha_21d", "alpha_combined"], 1e-6) == [
        "alpha_combined std across 4 instruments is 0.0: a constant alpha"]
    # A spread below the minimum counts as constant; a single instrument has no spread at all.
    assert len(live.constant_alphas(alpha, ["alpha_21d"], 100.0)) == 1
    assert live.constant_alphas(alpha.head(1), ["alpha_21d"], 1e-6) == [
        "alpha_21d std across 1 instruments is 0.0: a constant alpha"]
