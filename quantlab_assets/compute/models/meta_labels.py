"""Meta-labels (seed 002's "auditor"): the probability that the primary signal's trade hits its profit barrier.

The primary signal is the stacked `alpha_combined`: its sign is the trade's side. The meta-label of a
row is 1 when the triple barrier is first touched on the side's profit barrier (tb_label == side: the
upper barrier for a long, the lower for a short), else 0 (stop-loss or vertical barrier). An XGBoost
classifier (seed 004's tree parameters) learns it from the features plus the alpha, out of fold: per
21d walk-forward fold, trained on the rows of the fold's training dates that have an alpha (whose
triple-barrier windows, at most 10 days, end before the test window: the folds purge by 21-day label
ends and embargo 63 dates), predicting the fold's test dates. Folds whose training dates hold no alpha
yet (the first two: fold 0 has no stacked alpha at all) get no meta-label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score
from xgboost import XGBClassifier

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import XGBoostParams
from quantlab_assets.compute.models.oof import DesignPanel, feature_columns, role_mask
from quantlab_assets.compute.models.stacking import ALPHA_COMBINED

SIDE: Final = "side"
META_LABEL: Final = "meta_label"
PROBABILITY: Final = "meta_probability"
META_COLUMNS: Final = (c.DATE, c.TICKER, cv.FOLD_ID, SIDE, PROBABILITY, META_LABEL)
FOLDS_HORIZON: Final = 21


@dataclass(frozen=True)
class MetaLabelResult:
    predictions: pl.DataFrame
    fold_scores: pl.DataFrame
    estimators: list[XGBClassifier]


def meta_label_panel(alpha: pl.DataFrame, features: pl.DataFrame, labels: pl.DataFrame) -> DesignPanel:
    """Rows with a non-zero alpha and a triple-barrier label: features, alpha, side and meta-label.
    The classifier reads the features and the alpha, never the side or the target."""
    frame = (
        features.join(alpha.select(c.DATE, c.TICKER, ALPHA_COMBINED), on=[c.DATE, c.TICKER], how="inner")
        .join(labels.select(c.DATE, c.TICKER, "tb_label"), on=[c.DATE, c.TICKER], how="inner")
        .filter(pl.col("tb_label").is_not_null() & (pl.col(ALPHA_COMBINED) != 0))
        .with_columns(pl.col(ALPHA_COMBINED).sign().cast(pl.Int8).alias(SIDE))
        .with_columns((pl.col("tb_label") == pl.col(SIDE)).cast(pl.Int8).alias(META_LABEL))
        .drop("tb_label")
        .sort(c.DATE, c.TICKER)
    )
    return DesignPanel(frame, (*feature_columns(features), ALPHA_COMBINED))


def _auc(label: np.ndarray, probability: np.ndarray) -> float | None:
    return float(roc_auc_score(label, probability)) if len(np.unique(label)) == 2 else None


def fit_meta_labels(design: DesignPanel, folds: pl.DataFrame, params: XGBoostParams = XGBoostParams()) -> MetaLabelResult:
    """Out-of-fold meta-label probabilities over the 21d walk-forward folds (see the module docstring)."""
    panel, names = design.frame, list(design.inputs)
    x = panel.select(names).to_numpy().astype(np.float64)
    y = panel[META_LABEL].to_numpy()
    schedule = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == FOLDS_HORIZON))
    outputs, scores, estimators = [], [], []
    for fold_id in sorted(schedule[cv.FOLD_ID].unique().to_list()):
        fold = schedule.filter(pl.col(cv.FOLD_ID) == fold_id)
        train, test = role_mask(fold, panel[c.DATE], cv.TRAIN), role_mask(fold, panel[c.DATE], cv.TEST)
        if train.size == 0 or test.size == 0 or len(np.unique(y[train])) < 2:
            continue
        classifier = XGBClassifier(**vars(params), eval_metric="logloss").fit(x[train], y[train])
        probability = classifier.predict_proba(x[test])[:, 1].astype(np.float64)
        estimators.append(classifier)
        outputs.append(panel[test].select(c.DATE, c.TICKER, SIDE, META_LABEL).with_columns(
            pl.lit(fold_id, dtype=pl.Int64).alias(cv.FOLD_ID), pl.Series(PROBABILITY, probability)))
        scores.append({cv.FOLD_ID: fold_id, "n_train": int(train.size), "n_rows": int(test.size),
                       "base_rate": float(y[test].mean()), "mean_probability": float(probability.mean()),
                       "probability_std": float(probability.std()),
                       "brier": float(np.mean((probability - y[test]) ** 2)), "auc": _auc(y[test], probability)})
    if not outputs:
        raise ValueError("meta-labels: no walk-forward fold has training rows with an alpha and both outcomes")
    return MetaLabelResult(pl.concat(outputs).select(META_COLUMNS), pl.DataFrame(scores), estimators)
