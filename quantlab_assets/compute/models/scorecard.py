"""The model scorecard: every base model and the stacked alpha, per horizon, per fold and over all folds.

Base models are scored on their out-of-fold predictions (label: the industry-relative log return);
the stacked alpha on its calibrated bp alpha against the same label in bp, on the rows it has (folds
1 onwards: fold 0 trains the first stack). Each number comes from metrics.score_predictions, so an
undefined IC stays null.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION, SCORE_COLUMNS, score_predictions
from quantlab_assets.compute.models.stacking import BP, alpha_column

STACKED: Final = "stacked"
MODEL: Final = "model"


def model_scores(predictions: pl.DataFrame, model: str, horizon: int) -> pl.DataFrame:
    """A model's scorecard rows at `horizon`: one per fold and the all-folds one (fold_id null)."""
    per_fold = score_predictions(predictions, by=[cv.FOLD_ID])
    overall = score_predictions(predictions).with_columns(pl.lit(None, dtype=pl.Int64).alias(cv.FOLD_ID))
    return pl.concat([per_fold, overall.select(per_fold.columns)]).with_columns(
        pl.lit(model).alias(MODEL), pl.lit(horizon, dtype=pl.Int64).alias(cv.HORIZON_DAYS)
    )


def build_scorecard(oof: dict[int, dict[str, pl.DataFrame]], alpha: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """(model, horizon_days, fold_id, SCORE_COLUMNS...); fold_id null on the all-folds row."""
    frames = []
    for horizon, by_model in sorted(oof.items()):
        for model, predictions in sorted(by_model.items()):
            frames.append(model_scores(predictions, model, horizon))
        folds_of_rows = next(iter(by_model.values())).select(c.DATE, c.TICKER, cv.FOLD_ID)
        stacked = (
            alpha.select(c.DATE, c.TICKER, pl.col(alpha_column(horizon)).alias(PREDICTION))
            .join(labels.select(c.DATE, c.TICKER, (pl.col(cv.label_column(horizon)) * BP).alias(LABEL)), on=[c.DATE, c.TICKER])
            .join(folds_of_rows, on=[c.DATE, c.TICKER])
        )
        frames.append(model_scores(stacked, STACKED, horizon))
    return pl.concat(frames).select(MODEL, cv.HORIZON_DAYS, cv.FOLD_ID, *SCORE_COLUMNS).sort(
        MODEL, cv.HORIZON_DAYS, cv.FOLD_ID, nulls_last=True
    )
