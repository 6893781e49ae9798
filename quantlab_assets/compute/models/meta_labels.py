"""Meta-labels (seed 002's "auditor"): the probability that the primary signal's trade hits its profit barrier.

The primary signal is the stacked `alpha_combined`: its sign is the trade's side. The meta-label of a
row is 1 when the triple barrier is first touched on the side's profit barrier (tb_label == side: the
upper barrier for a long, the lower for a short), else 0 (stop-loss or vertical barrier). A bar that
crossed both barriers (tb_barrier "both", tb_label -1) is a 0 for either side: daily bars cannot say
whether a short's profit or its stop came first, so it is never booked as a win. An XGBoost
classifier (seed 004's tree parameters) learns it from the features plus the alpha, out of fold: per
21d walk-forward fold, trained on the rows of the fold's training dates that have an alpha (whose
triple-barrier windows, at most 10 days, end before the test window: the folds purge by 21-day label
ends and embargo 63 dates), predicting the fold's test dates. Folds whose training dates hold no alpha
yet (the first two: fold 0 has no stacked alpha at all) get no meta-label.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import XGBoostParams
from quantlab_assets.compute.models.classifier import ClassifierResult, fit_oof_classifier
from quantlab_assets.compute.models.oof import DesignPanel, feature_columns
from quantlab_assets.compute.models.stacking import ALPHA_COMBINED

SIDE: Final = "side"
META_LABEL: Final = "meta_label"
PROBABILITY: Final = "meta_probability"
META_COLUMNS: Final = (c.DATE, c.TICKER, cv.FOLD_ID, SIDE, PROBABILITY, META_LABEL)


def meta_label_panel(alpha: pl.DataFrame, features: pl.DataFrame, labels: pl.DataFrame) -> DesignPanel:
    """Rows with a non-zero alpha and a triple-barrier label: features, alpha, side and meta-label.
    The classifier reads the features and the alpha, never the side or the target."""
    frame = (
        features.join(alpha.select(c.DATE, c.TICKER, ALPHA_COMBINED), on=[c.DATE, c.TICKER], how="inner")
        .join(labels.select(c.DATE, c.TICKER, "tb_label", "tb_barrier"), on=[c.DATE, c.TICKER], how="inner")
        .filter(pl.col("tb_label").is_not_null() & (pl.col(ALPHA_COMBINED) != 0))
        .with_columns(pl.col(ALPHA_COMBINED).sign().cast(pl.Int8).alias(SIDE))
        .with_columns(
            ((pl.col("tb_label") == pl.col(SIDE)) & (pl.col("tb_barrier") != "both")).cast(pl.Int8).alias(META_LABEL)
        )
        .drop("tb_label", "tb_barrier")
        .sort(c.DATE, c.TICKER)
    )
    return DesignPanel(frame, (*feature_columns(features), ALPHA_COMBINED))


def fit_meta_labels(design: DesignPanel, folds: pl.DataFrame, params: XGBoostParams = XGBoostParams()) -> ClassifierResult:
    """Out-of-fold meta-label probabilities over the 21d walk-forward folds (see the module docstring)."""
    result = fit_oof_classifier(design, META_LABEL, PROBABILITY, folds, params, keep=(SIDE,))
    return ClassifierResult(result.predictions.select(META_COLUMNS), result.fold_scores, result.estimators)
