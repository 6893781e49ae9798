"""The triple-barrier classifier (seed 002's primary model, tabular): P(the upper barrier is touched first).

Target `hits_upper` = 1 where a row's triple barrier (ATR-wide, 10 trading days; labels issue) is first
touched on the upper side, 0 where the lower or the vertical barrier comes first; rows without a
complete barrier window are not used. An XGBoost classifier (seed 004's tree parameters) learns it from
the features, out of fold over the 21d walk-forward folds (classifier.py). Its probability is what seed
002's threshold profiles (sniper >= 0.95, audited / reckless >= 0.75) read as the primary model's.
The sequence model of the same target (the transformer of the deep-learning track) can replace it as the profiles' source.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import XGBoostParams
from quantlab_assets.compute.models.classifier import ClassifierResult, TunedParams, fit_oof_classifier
from quantlab_assets.compute.models.oof import DesignPanel, feature_columns

HITS_UPPER: Final = "hits_upper"
PROBABILITY: Final = "barrier_probability"
BARRIER_COLUMNS: Final = (c.DATE, c.TICKER, cv.FOLD_ID, PROBABILITY, HITS_UPPER)


def barrier_panel(features: pl.DataFrame, labels: pl.DataFrame) -> DesignPanel:
    """Features and `hits_upper` on the rows whose triple barrier is resolved."""
    frame = (
        features.join(labels.select(c.DATE, c.TICKER, "tb_label"), on=[c.DATE, c.TICKER], how="inner")
        .filter(pl.col("tb_label").is_not_null())
        .with_columns((pl.col("tb_label") == 1).cast(pl.Int8).alias(HITS_UPPER))
        .drop("tb_label")
        .sort(c.DATE, c.TICKER)
    )
    return DesignPanel(frame, tuple(feature_columns(features)))


def fit_barrier_classifier(
    design: DesignPanel, folds: pl.DataFrame, params: XGBoostParams | TunedParams = XGBoostParams()
) -> ClassifierResult:
    """Out-of-fold P(upper barrier first) over the 21d walk-forward folds (tuned parameters only after their span)."""
    result = fit_oof_classifier(design, HITS_UPPER, PROBABILITY, folds, params)
    return ClassifierResult(result.predictions.select(BARRIER_COLUMNS), result.fold_scores, result.estimators)
