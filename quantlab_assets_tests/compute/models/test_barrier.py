"""The triple-barrier classifier: out-of-fold P(upper barrier first), on the same folds as the meta-labels."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import barrier, cv
from quantlab_assets.compute.models.base_models import XGBoostParams
from quantlab_assets.compute.models.classifier import TunedParams
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.models import BarrierProbabilitiesSchema


def test_barrier_probabilities_are_out_of_fold_and_name_the_upper_barrier(model_panel, stacked_oof) -> None:
    _, folds, features = stacked_oof
    design = barrier.barrier_panel(model_panel.features, model_panel.labels)
    assert barrier.HITS_UPPER not in design.inputs and "tb_label" not in design.frame.columns
    check = design.frame.join(model_panel.labels.select(c.DATE, c.TICKER, "tb_label"), on=[c.DATE, c.TICKER])
    assert (check[barrier.HITS_UPPER] == (check["tb_label"] == 1).cast(pl.Int8)).all()
    result = barrier.fit_barrier_classifier(design, folds, XGBoostParams(n_estimators=20, max_depth=3))
    out = result.predictions
    assert schema_failures(BarrierProbabilitiesSchema, out, asset="barrier_probabilities", partition="test") is None
    assert out[barrier.PROBABILITY].std() > 0
    tests = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21) & (pl.col(cv.ROLE) == cv.TEST))
    for fold_id, start, end in tests.select(cv.FOLD_ID, cv.START, cv.END).iter_rows():
        inside = out.filter(pl.col(c.DATE).is_between(start, end))
        assert inside.height > 0 and inside[cv.FOLD_ID].unique().to_list() == [fold_id]
    assert out.height == out.filter(pl.col(c.DATE) >= tests[cv.START].min()).height
    # Honest: on features that barely predict the barrier, the classifier is barely better than chance.
    assert result.fold_scores["auc"].drop_nulls().max() < 0.75


def test_tuned_parameters_predict_only_rows_after_their_tuned_span(model_panel, stacked_oof) -> None:
    # Tuned through a date inside a fold's test window: that fold's rows up to it, and every earlier fold,
    # come from the defaults' classifier; later rows from the tuned one, each bit for bit.
    _, folds, _ = stacked_oof
    design = barrier.barrier_panel(model_panel.features, model_panel.labels)
    default, tuned = XGBoostParams(n_estimators=20, max_depth=3), XGBoostParams(n_estimators=10, max_depth=2)
    tests = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21)
                         & (pl.col(cv.ROLE) == cv.TEST) & (pl.col(cv.FOLD_ID) == 3))
    through = tests[cv.START][0] + dt.timedelta(days=30)
    gated = barrier.fit_barrier_classifier(design, folds, TunedParams(default, tuned, through)).predictions
    only_default = barrier.fit_barrier_classifier(design, folds, default).predictions
    only_tuned = barrier.fit_barrier_classifier(design, folds, tuned).predictions
    assert gated.select(c.DATE, c.TICKER).equals(only_default.select(c.DATE, c.TICKER))
    before, after = pl.col(c.DATE) <= through, pl.col(c.DATE) > through
    assert gated.filter(before).height > 0 and gated.filter(after).height > 0
    assert gated.filter(before).equals(only_default.filter(before))
    assert gated.filter(after).equals(only_tuned.filter(after))
    assert not only_tuned.filter(before).equals(only_default.filter(before))
