"""Meta-labels: the side's profit barrier as the target, out-of-fold over the 21d walk-forward folds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv, meta_labels, stacking
from quantlab_assets.compute.models.base_models import XGBoostParams


def test_a_bar_that_crossed_both_barriers_is_a_loss_for_either_side() -> None:
    """Long and short on a lower touch, an upper touch and a bar that crossed both (labelled -1)."""
    day = dt.date(2024, 1, 2)
    keys = {c.DATE: [day] * 6, c.TICKER: ["LL", "LU", "LB", "SL", "SU", "SB"]}
    alpha = pl.DataFrame({**keys, stacking.ALPHA_COMBINED: [0.5, 0.5, 0.5, -0.5, -0.5, -0.5]})
    features = pl.DataFrame({**keys, "ret_1d": [0.01] * 6})
    labels = pl.DataFrame({**keys, "tb_label": [-1, 1, -1, -1, 1, -1],
                           "tb_barrier": ["lower", "upper", "both", "lower", "upper", "both"]},
                          schema_overrides={"tb_label": pl.Int8})
    panel = meta_labels.meta_label_panel(alpha, features, labels).frame.sort(c.TICKER)
    by_ticker = dict(zip(panel[c.TICKER], panel[meta_labels.META_LABEL], strict=True))
    # A long wins on the upper barrier only; a short on the lower barrier only, never on a "both" bar.
    assert by_ticker == {"LB": 0, "LL": 0, "LU": 1, "SB": 0, "SL": 1, "SU": 0}


def test_meta_labels_are_out_of_fold_probabilities_of_hitting_the_profit_barrier(model_panel, stacked_oof) -> None:
    predictions, folds, features = stacked_oof
    alpha = stacking.stack_and_combine(predictions, folds, model_panel.labels).alpha
    panel = meta_labels.meta_label_panel(alpha, features, model_panel.labels)
    # The meta-label restates the rule: 1 exactly where the barrier touched first is the side's profit one.
    check = panel.frame.join(model_panel.labels.select(c.DATE, c.TICKER, "tb_label", "tb_barrier"), on=[c.DATE, c.TICKER])
    profit = (check["tb_label"] == check[meta_labels.SIDE]) & (check["tb_barrier"] != "both")
    assert (check[meta_labels.META_LABEL] == profit.cast(pl.Int8)).all()
    result = meta_labels.fit_meta_labels(panel, folds, XGBoostParams(n_estimators=20, max_depth=3))
    out = result.predictions
    assert out.select(c.DATE, c.TICKER).is_unique().all()
    assert out[meta_labels.PROBABILITY].is_between(0, 1).all() and out[meta_labels.PROBABILITY].std() > 0
    # Only test dates of folds that had alpha on their training dates; each row by its own fold.
    assert set(out[cv.FOLD_ID].unique()) <= {2, 3, 4} and out.height > 0
    tests = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == 21) & (pl.col(cv.ROLE) == cv.TEST))
    for fold_id, start, end in tests.select(cv.FOLD_ID, cv.START, cv.END).iter_rows():
        inside = out.filter(pl.col(c.DATE).is_between(start, end))
        assert inside.height == 0 or inside[cv.FOLD_ID].unique().to_list() == [fold_id]
    assert np.isfinite(result.fold_scores["brier"].to_numpy()).all()


def test_the_classifier_never_reads_its_target(model_panel, stacked_oof) -> None:
    # `meta_label` is named like a feature; read as one, the out-of-fold AUC was 1.0 on the default run.
    predictions, folds, features = stacked_oof
    alpha = stacking.stack_and_combine(predictions, folds, model_panel.labels).alpha
    panel = meta_labels.meta_label_panel(alpha, features, model_panel.labels)
    inputs = panel.inputs
    assert meta_labels.META_LABEL not in inputs and meta_labels.SIDE not in inputs
    assert inputs[-1] == stacking.ALPHA_COMBINED and set(inputs[:-1]) <= set(features.columns)
    result = meta_labels.fit_meta_labels(panel, folds, XGBoostParams(n_estimators=20, max_depth=3))
    assert result.fold_scores["auc"].drop_nulls().max() < 0.9
