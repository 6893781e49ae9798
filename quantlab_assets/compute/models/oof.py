"""Out-of-fold predictions of one base model for one horizon over the purged walk-forward folds.

The design panel is features joined to labels on (date, ticker). Rows with a null label are dropped
(their future is not stored yet, or the instrument has a gap in it): they can neither train a model
nor score one. Missing *features* are kept; each model handles them inside the fold (base_models.py).
For each walk-forward fold the model is fitted on the fold's training dates (purged and embargoed,
cv.py) and predicts the fold's test dates only; a row is predicted by exactly one fold, and dates
before the first test window get no prediction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.models.base_models import (
    BaseModelParams,
    ModelRows,
    feature_importance,
    input_matrix,
    make_estimator,
    model_rows,
)
from quantlab_assets.compute.models.metrics import LABEL, LABEL_END, PREDICTION, score_predictions
from quantlab_assets.compute.schemas.features import FEATURE_NAME_PATTERN

if TYPE_CHECKING:
    from sklearn.base import RegressorMixin

MODEL: Final = "model"
FEATURE: Final = "feature"
IMPORTANCE: Final = "importance"
OOF_COLUMNS: Final = (c.DATE, c.TICKER, cv.FOLD_ID, PREDICTION, LABEL)


@dataclass(frozen=True)
class OofResult:
    """predictions: (date, ticker, fold_id, prediction, label) on test dates only; fold_scores: the
    scorecard per fold; importance: (fold_id, feature, importance); estimators: the fitted model of each fold."""

    predictions: pl.DataFrame
    fold_scores: pl.DataFrame
    importance: pl.DataFrame
    estimators: list[RegressorMixin] = field(repr=False)
    fit_seconds: list[float]
    feature_names: list[str]


def feature_columns(features: pl.DataFrame) -> list[str]:
    """The feature columns of a features frame (everything named like a feature), in frame order."""
    return features.select(pl.col(FEATURE_NAME_PATTERN)).columns


@dataclass(frozen=True)
class DesignPanel:
    """The rows a model fits and predicts, and the names of the columns it reads.

    `inputs` are named before anything is joined to the features, so a label or target never becomes an
    input whatever it is called (the meta-label target matched the feature-name pattern once: AUC 1.0).
    """

    frame: pl.DataFrame
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        missing = set(self.inputs) - set(self.frame.columns)
        if missing:
            raise ValueError(f"design panel: inputs {sorted(missing)} are not columns of the frame")

    def with_frame(self, frame: pl.DataFrame) -> DesignPanel:
        """The same inputs over other rows or another target (e.g. shuffled labels for a leakage canary)."""
        return DesignPanel(frame, self.inputs)


def design_panel(features: pl.DataFrame, labels: pl.DataFrame, horizon: int) -> DesignPanel:
    """Features with the horizon's label as `label` and its window's last date as `label_end`, rows with a
    null label dropped, sorted by date, ticker."""
    frame = (
        features.join(
            labels.select(c.DATE, c.TICKER, pl.col(cv.label_column(horizon)).alias(LABEL),
                          pl.col(label_end_column(horizon)).alias(LABEL_END)),
            on=[c.DATE, c.TICKER], how="inner",
        )
        .drop_nulls(LABEL)
        .sort(c.DATE, c.TICKER)
    )
    return DesignPanel(frame, tuple(feature_columns(features)))


def design_matrix(design: DesignPanel, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """The panel's inputs as one (rows, inputs) array of `dtype` (base_models.input_matrix)."""
    return input_matrix(design.frame, design.inputs, dtype)


def role_mask(fold: pl.DataFrame, dates: pl.Series, role: str) -> np.ndarray:
    """Boolean mask of the `dates` that lie in a segment of `role` of one fold."""
    return cv.dates_with_role(fold, dates.to_frame(c.DATE).with_row_index("row"), role)["row"].to_numpy()


def _rows(row_numbers: np.ndarray) -> slice | np.ndarray:
    """Increasing row numbers as a slice when they are one contiguous run (a walk-forward fold's training
    and test dates are): rows read through it are a view of the design matrix, not a 1 GB copy per fold
    at 500 instruments x 20 years."""
    if row_numbers.size and int(row_numbers[-1]) - int(row_numbers[0]) + 1 == row_numbers.size:
        return slice(int(row_numbers[0]), int(row_numbers[-1]) + 1)
    return row_numbers


def fit_oof(
    design: DesignPanel,
    folds: pl.DataFrame,
    model: str,
    horizon: int,
    params: BaseModelParams = BaseModelParams(),
    rows: ModelRows | None = None,
) -> OofResult:
    """Fit `model` per walk-forward fold of `horizon` on a design panel and predict its test dates.

    The model sees its own view of the rows (base_models.model_rows: per-date ranks for the trees; pass
    `rows` when the caller built them already); the predictions are scored against the panel's raw label."""
    panel, names = design.frame, list(design.inputs)
    if rows is None:
        rows = model_rows(panel, design.inputs, model, params.per_date_trees)
    x, y = rows.x, rows.y
    schedule = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == horizon))
    predictions, importances, estimators, seconds = [], [], [], []
    for fold_id in sorted(schedule[cv.FOLD_ID].unique().to_list()):
        fold = schedule.filter(pl.col(cv.FOLD_ID) == fold_id)
        train, test = role_mask(fold, panel[c.DATE], cv.TRAIN), role_mask(fold, panel[c.DATE], cv.TEST)
        if train.size == 0 or test.size == 0:
            continue
        train, test = _rows(train), _rows(test)
        started = time.perf_counter()
        estimator = make_estimator(model, params).fit(x[train], y[train])
        seconds.append(time.perf_counter() - started)
        estimators.append(estimator)
        predictions.append(
            panel[test].select(c.DATE, c.TICKER, LABEL).with_columns(
                pl.lit(fold_id, dtype=pl.Int64).alias(cv.FOLD_ID),
                pl.Series(PREDICTION, estimator.predict(x[test]).astype(np.float64)),
            )
        )
        importances.append(
            pl.DataFrame({cv.FOLD_ID: fold_id, FEATURE: names, IMPORTANCE: feature_importance(model, estimator)},
                         schema_overrides={cv.FOLD_ID: pl.Int64})
        )
    if not predictions:
        raise ValueError(f"{model} {horizon}d: no walk-forward fold has both training and test rows")
    frame = pl.concat(predictions).select(OOF_COLUMNS)
    return OofResult(
        predictions=frame,
        fold_scores=score_predictions(frame, by=[cv.FOLD_ID]),
        importance=pl.concat(importances),
        estimators=estimators,
        fit_seconds=seconds,
        feature_names=names,
    )
