"""The live alpha: the stacked, calibrated, combined alpha of the newest cross-section, for trading on.

Out-of-fold predictions stop where labels stop: a 63-day label needs 63 more trading days, so the
stacked alpha ends about three months before the newest bar and says nothing about today. The live
alpha is what the same pipeline says about one date `as_of` (default: the newest feature date), with
everything fitted on what was known at the close of `as_of`:

1. each base model (Ridge, XGBoost, LightGBM; the OOF parameters) refitted per horizon on every row
   whose label window ended on or before `as_of` (`label_end_<h>d <= as_of`); no fold, purge or
   embargo is needed because no row of the fit is ever scored;
2. the meta-learner, isotonic calibrator and residual variance (stacking.fit_stack) fitted on the
   out-of-fold predictions whose labels ended on or before `as_of`, the rows the stacked alpha's last
   fold would use, plus every later one known by then;
3. the base models' predictions at `as_of` stacked, calibrated and combined as in stacking.py.

Because every fit reads only labels that ended by `as_of` and features at dates up to `as_of`, the
live alpha at a past `as_of` is unchanged when anything after `as_of` changes (tested).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.base import RegressorMixin

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.models.base_models import MODELS, BaseModelParams, make_estimator
from quantlab_assets.compute.models.metrics import LABEL
from quantlab_assets.compute.models.oof import design_matrix, design_panel
from quantlab_assets.compute.models.stacking import (
    BP,
    StackParams,
    alpha_column,
    combine_horizons,
    fit_stack,
    var_column,
    wide_oof,
)


@dataclass(frozen=True)
class LiveHorizonFit:
    """What the live alpha of one horizon was fitted on: rows and the last label end read."""

    horizon: int
    base_training_rows: int
    stack_training_rows: int
    labels_ended_by: dt.date
    residual_var: float
    meta_coefficients: tuple[float, ...]


@dataclass(frozen=True)
class LiveAlpha:
    """alpha: STACKED_COLUMNS at `as_of` only; fits: per horizon; estimators: '<model>_<h>d' -> fitted model."""

    as_of: dt.date
    alpha: pl.DataFrame
    fits: list[LiveHorizonFit]
    estimators: dict[str, RegressorMixin] = field(repr=False)


def fit_live_alpha(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    oof: dict[int, dict[str, pl.DataFrame]],
    as_of: dt.date | None = None,
    model_params: BaseModelParams = BaseModelParams(),
    stack_params: StackParams = StackParams(),
) -> LiveAlpha:
    """The live alpha at `as_of` (default: the newest date of `features`); see the module docstring."""
    as_of = as_of or features[c.DATE].max()
    today = features.filter(pl.col(c.DATE) == as_of)
    if today.is_empty():
        raise ValueError(f"live alpha: no feature row on {as_of}")
    by_horizon, fits, estimators = {}, [], {}
    for horizon in sorted(oof):
        known = labels.filter(pl.col(label_end_column(horizon)) <= as_of)
        if known.is_empty():
            raise ValueError(f"live alpha {horizon}d: no label ended on or before {as_of}")
        design = design_panel(features.filter(pl.col(c.DATE) <= as_of), known, horizon)
        x_train, y_train = design_matrix(design), design.frame[LABEL].to_numpy()
        x_today = design_matrix(design.with_frame(today))
        base_today = np.empty((today.height, len(MODELS)))
        for j, model in enumerate(MODELS):
            estimator = make_estimator(model, model_params).fit(x_train, y_train)
            estimators[f"{model}_{horizon}d"] = estimator
            base_today[:, j] = estimator.predict(x_today)
        stack_rows = wide_oof(oof[horizon]).join(known.select(c.DATE, c.TICKER), on=[c.DATE, c.TICKER], how="semi")
        if stack_rows.is_empty():
            raise ValueError(f"live alpha {horizon}d: no out-of-fold prediction has a label ended by {as_of}")
        meta, calibrator, residual_var = fit_stack(
            stack_rows.select(MODELS).to_numpy(), stack_rows[LABEL].to_numpy() * BP, stack_params)
        by_horizon[horizon] = today.select(c.DATE, c.TICKER).with_columns(
            pl.Series(alpha_column(horizon), calibrator.predict(meta.predict(base_today))),
            pl.lit(residual_var).alias(var_column(horizon)),
        )
        fits.append(LiveHorizonFit(
            horizon=horizon, base_training_rows=design.frame.height, stack_training_rows=stack_rows.height,
            labels_ended_by=known[label_end_column(horizon)].max(), residual_var=residual_var,
            meta_coefficients=tuple(float(w) for w in meta.coef_),
        ))
    alpha, _ = combine_horizons(by_horizon, today, stack_params)
    return LiveAlpha(as_of=as_of, alpha=alpha, fits=fits, estimators=estimators)
