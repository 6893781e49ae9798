"""Out-of-fold probabilities of a binary XGBoost classifier over the 21d walk-forward folds.

Shared by the triple-barrier classifier (barrier.py: does the upper barrier come first?) and the
meta-labels (meta_labels.py: does the primary signal's trade hit its profit barrier?). Both targets
look at most `barrier_horizon` (10) trading days ahead; the 21d folds purge every training date whose
21-day label window reaches a test window and embargo 63 dates, so no training target overlaps a test
date. Per fold: trained on the fold's training rows, probabilities on its test rows. A fold whose
training rows hold one class only is skipped (no classifier can be fitted).

Tuned parameters (`TunedParams`, from a search on rows up to `tuned_through`) predict only test rows
dated after `tuned_through`; a fold's test rows on or before it are predicted by a classifier with the
default parameters, fitted on the same training rows. A fold whose test window straddles the date
fits both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import XGBOOST_INPUT, XGBoostParams
from quantlab_assets.compute.models.oof import DesignPanel, design_matrix, role_mask

if TYPE_CHECKING:
    from xgboost import XGBClassifier

FOLDS_HORIZON: Final = 21


@dataclass(frozen=True)
class ClassifierResult:
    """predictions: (date, ticker, fold_id, <probability>, <target>, *kept) on test dates; fold_scores:
    per fold n_train, n_rows, base rate, mean and std of the probability, Brier score, AUC (null if one class)."""

    predictions: pl.DataFrame
    fold_scores: pl.DataFrame
    estimators: list[XGBClassifier]


@dataclass(frozen=True)
class TunedParams:
    """Parameters chosen on rows up to `tuned_through` (tuning.py), used for rows dated after it only."""

    default: XGBoostParams
    tuned: XGBoostParams
    tuned_through: dt.date

    def by_rows(self, dates: np.ndarray) -> list[tuple[np.ndarray, XGBoostParams]]:
        """(mask of `dates`, parameters) for the rows on or before `tuned_through` and those after it."""
        after = dates > np.datetime64(self.tuned_through, "D")
        return [(~after, self.default), (after, self.tuned)]


def _auc(label: np.ndarray, probability: np.ndarray) -> float | None:
    # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, probability)) if len(np.unique(label)) == 2 else None


def fit_oof_classifier(
    design: DesignPanel,
    target: str,
    probability: str,
    folds: pl.DataFrame,
    params: XGBoostParams | TunedParams = XGBoostParams(),
    keep: tuple[str, ...] = (),
) -> ClassifierResult:
    """P(`target` == 1) out of fold as column `probability`; `keep` names frame columns carried to the output.
    With `TunedParams`, each test row is predicted with the parameters its date may use (module docstring)."""
    if target in design.inputs:
        raise ValueError(f"classifier target {target!r} is among its inputs")
    # Imported here: xgboost (with sklearn) takes 0.3 s to import, and every Dagster run process imports this module.
    from xgboost import XGBClassifier

    panel, x = design.frame, design_matrix(design, XGBOOST_INPUT)
    y = panel[target].to_numpy()
    schedule = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == FOLDS_HORIZON))
    outputs, scores, estimators = [], [], []
    for fold_id in sorted(schedule[cv.FOLD_ID].unique().to_list()):
        fold = schedule.filter(pl.col(cv.FOLD_ID) == fold_id)
        train, test = role_mask(fold, panel[c.DATE], cv.TRAIN), role_mask(fold, panel[c.DATE], cv.TEST)
        if train.size == 0 or test.size == 0 or len(np.unique(y[train])) < 2:
            continue
        dates = panel[c.DATE][test].to_numpy().astype("datetime64[D]")
        parts = params.by_rows(dates) if isinstance(params, TunedParams) else [(np.ones(dates.size, dtype=bool), params)]
        p = np.empty(dates.size)
        for rows, part_params in parts:
            if rows.any():
                classifier = XGBClassifier(**vars(part_params), eval_metric="logloss").fit(x[train], y[train])
                p[rows] = classifier.predict_proba(x[test][rows])[:, 1]
                estimators.append(classifier)
        outputs.append(panel[test].select(c.DATE, c.TICKER, *keep, target).with_columns(
            pl.lit(fold_id, dtype=pl.Int64).alias(cv.FOLD_ID), pl.Series(probability, p)))
        scores.append({cv.FOLD_ID: fold_id, "n_train": int(train.size), "n_rows": int(test.size),
                       "base_rate": float(y[test].mean()), "mean_probability": float(p.mean()),
                       "probability_std": float(p.std()), "brier": float(np.mean((p - y[test]) ** 2)),
                       "auc": _auc(y[test], p)})
    if not outputs:
        raise ValueError(f"{target}: no walk-forward fold has training rows with both outcomes and test rows")
    return ClassifierResult(pl.concat(outputs), pl.DataFrame(scores), estimators)
