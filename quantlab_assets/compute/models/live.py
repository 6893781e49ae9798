"""The live alpha: the stacked, calibrated, combined alpha of the newest cross-section, for trading on.

Out-of-fold predictions stop where labels stop: a 63-day label needs 63 more trading days, so the
stacked alpha ends about three months before the newest bar and says nothing about today. The live
alpha is what the same pipeline says about one date `as_of` (default: the newest feature date), with
everything fitted on what was known at the close of `as_of`:

1. each base model (Ridge, XGBoost, LightGBM; the OOF parameters) fitted per horizon on every row
   whose label window ended on or before `as_of` (`label_end_<h>d <= as_of`); no fold, purge or
   embargo is needed because no row of the fit is ever scored. `fit_base_model` is that fit; the
   pipeline makes it once per model x horizon next to the model's out-of-fold fits (`fit_known_rows`,
   in the same partition and on the same matrix, in parallel with the other five) and stores it, so
   the live alpha fits no base model itself;
2. the meta-learner, centred isotonic calibrator and residual variance (stacking.fit_stack: the calibrator and
   variance cross-fitted on inner out-of-fold meta scores) fitted on the out-of-fold predictions whose
   labels ended on or before `as_of`, the rows the stacked alpha's last fold would use, plus every later
   one known by then;
3. the base models' predictions at `as_of` stacked, calibrated and combined as in stacking.py.

Because every fit reads only labels that ended by `as_of` and features at dates up to `as_of`, the
live alpha at a past `as_of` is unchanged when anything after `as_of` changes (tested).

A stored fit travels as a one-row frame (`fit_frame` / `fit_from_frame`): the estimator pickled into a
binary column next to what it was fitted on. The live alpha refuses a fit made for another `as_of` or
on other input columns, so a stale fit cannot silently score today's cross-section.
"""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.models.base_models import MODELS, BaseModelParams, ModelRows, make_estimator, model_rows
from quantlab_assets.compute.models.metrics import LABEL, LABEL_END
from quantlab_assets.compute.models.oof import DesignPanel, design_panel, feature_columns
from quantlab_assets.compute.models.stacking import (
    BP,
    StackParams,
    alpha_column,
    combine_horizons,
    fit_stack,
    var_column,
    wide_oof,
    with_label_ends,
)

if TYPE_CHECKING:
    from sklearn.base import RegressorMixin

FIT_COLUMNS: Final = ("model", "horizon_days", "as_of", "training_rows", "labels_ended_by", "inputs", "estimator")


def fit_key(model: str, horizon: int) -> str:
    return f"{model}_{horizon}d"


@dataclass(frozen=True)
class BaseModelFit:
    """One base model of one horizon fitted on every row whose label ended by `as_of` (step 1)."""

    model: str
    horizon: int
    as_of: dt.date
    training_rows: int
    labels_ended_by: dt.date
    inputs: tuple[str, ...]
    per_date_inputs: bool  # the fit read model_view's per-date inputs: so must its predictions
    estimator: RegressorMixin = field(repr=False)


@dataclass(frozen=True)
class LiveHorizonFit:
    """What the live alpha of one horizon was fitted on: rows and the last label end read."""

    horizon: int
    base_training_rows: int
    stack_training_rows: int
    calibration_rows: int
    labels_ended_by: dt.date
    residual_var: float
    meta_coefficients: tuple[float, ...]


@dataclass(frozen=True)
class LiveAlpha:
    """alpha: STACKED_COLUMNS at `as_of` only; fits: per horizon."""

    as_of: dt.date
    alpha: pl.DataFrame
    fits: list[LiveHorizonFit]


def _as_of(features: pl.DataFrame, as_of: dt.date | None) -> dt.date:
    return as_of or features[c.DATE].max()


def _known_labels(labels: pl.DataFrame, horizon: int, as_of: dt.date) -> pl.DataFrame:
    known = labels.filter(pl.col(label_end_column(horizon)) <= as_of)
    if known.is_empty():
        raise ValueError(f"live alpha {horizon}d: no label ended on or before {as_of}")
    return known


def fit_base_model(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    model: str,
    horizon: int,
    as_of: dt.date | None = None,
    params: BaseModelParams = BaseModelParams(),
) -> BaseModelFit:
    """Step 1 for one model x horizon: `model` fitted on every row of features up to `as_of` (default: the
    newest feature date) whose `horizon` label ended by `as_of`."""
    as_of = _as_of(features, as_of)
    return fit_known_rows(design_panel(features.filter(pl.col(c.DATE) <= as_of), labels, horizon), model, horizon,
                          as_of, params)


def fit_known_rows(design: DesignPanel, model: str, horizon: int, as_of: dt.date,
                   params: BaseModelParams = BaseModelParams(), rows: ModelRows | None = None) -> BaseModelFit:
    """`fit_base_model` on a design panel of `horizon` (oof.design_panel): `model` fitted on its rows whose
    label ended by `as_of`. `rows`, the panel's model_rows when the caller built them for its out-of-fold
    fits, are reused when every row is known by `as_of` (the pipeline's case: the panel ends where the
    features do), so a partition builds its matrix once; otherwise the known rows are ranked anew, since a
    per-date rank depends on which of the date's rows are in."""
    known = (design.frame[LABEL_END] <= as_of).fill_null(False)
    if not known.any():
        raise ValueError(f"live alpha {horizon}d: no label ended on or before {as_of}")
    if rows is None or not known.all():
        design = design.with_frame(design.frame.filter(known))
        rows = model_rows(design.frame, design.inputs, model, params.per_date_trees)
    estimator = make_estimator(model, params).fit(rows.x, rows.y)
    return BaseModelFit(model=model, horizon=horizon, as_of=as_of, training_rows=design.frame.height,
                        labels_ended_by=design.frame[LABEL_END].max(), inputs=design.inputs,
                        per_date_inputs=params.per_date_trees, estimator=estimator)


def fit_frame(fit: BaseModelFit) -> pl.DataFrame:
    """A fit as one row of FIT_COLUMNS (the estimator pickled), for storage next to the OOF predictions."""
    return pl.DataFrame(
        {"model": [fit.model], "horizon_days": [fit.horizon], "as_of": [fit.as_of], "training_rows": [fit.training_rows],
         "labels_ended_by": [fit.labels_ended_by], "inputs": [list(fit.inputs)],
         "per_date_inputs": [fit.per_date_inputs], "estimator": [pickle.dumps(fit.estimator, protocol=pickle.HIGHEST_PROTOCOL)]},
        schema={"model": pl.String, "horizon_days": pl.Int64, "as_of": pl.Date, "training_rows": pl.Int64,
                "labels_ended_by": pl.Date, "inputs": pl.List(pl.String), "per_date_inputs": pl.Boolean,
                "estimator": pl.Binary},
    )


def fit_from_frame(frame: pl.DataFrame) -> BaseModelFit:
    """The fit stored by `fit_frame` (the lab's own storage: its pickles are trusted as its code is)."""
    if frame.height != 1:
        raise ValueError(f"a stored base-model fit is one row; got {frame.height}")
    row = frame.row(0, named=True)
    return BaseModelFit(model=row["model"], horizon=row["horizon_days"], as_of=row["as_of"],
                        training_rows=row["training_rows"], labels_ended_by=row["labels_ended_by"],
                        inputs=tuple(row["inputs"]), per_date_inputs=row["per_date_inputs"],
                        estimator=pickle.loads(row["estimator"]))


def fit_live_alpha(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    oof: dict[int, dict[str, pl.DataFrame]],
    base_fits: dict[str, BaseModelFit],
    as_of: dt.date | None = None,
    stack_params: StackParams = StackParams(),
) -> LiveAlpha:
    """The live alpha at `as_of` (default: the newest date of `features`) from the stored base-model fits
    `base_fits` ('<model>_<h>d' -> fit_base_model at the same `as_of`); see the module docstring."""
    as_of = _as_of(features, as_of)
    today = features.filter(pl.col(c.DATE) == as_of)
    if today.is_empty():
        raise ValueError(f"live alpha: no feature row on {as_of}")
    inputs = tuple(feature_columns(features))
    by_horizon, fits = {}, []
    for horizon in sorted(oof):
        known = _known_labels(labels, horizon, as_of)
        base_today = np.empty((today.height, len(MODELS)))
        for j, model in enumerate(MODELS):
            fit = _usable_fit(base_fits, model, horizon, as_of, inputs)
            base_today[:, j] = fit.estimator.predict(model_rows(today, inputs, model, fit.per_date_inputs).x)
        stack_rows = with_label_ends(wide_oof(oof[horizon]), known, horizon).drop_nulls(LABEL_END)
        stack = fit_stack(stack_rows.select(MODELS).to_numpy(), stack_rows[LABEL].to_numpy() * BP, stack_rows[c.DATE],
                          stack_rows[LABEL_END], horizon, stack_params) if stack_rows.height else None
        if stack is None:
            raise ValueError(f"live alpha {horizon}d: too few out-of-fold predictions with a label ended by {as_of} "
                             "to cross-fit the calibration")
        by_horizon[horizon] = today.select(c.DATE, c.TICKER).with_columns(
            pl.Series(alpha_column(horizon), stack.alpha_bp(base_today)),
            pl.lit(stack.residual_var).alias(var_column(horizon)),
        )
        fits.append(LiveHorizonFit(
            horizon=horizon, base_training_rows=base_fits[fit_key(MODELS[0], horizon)].training_rows,
            stack_training_rows=stack_rows.height, calibration_rows=stack.calibration_rows,
            labels_ended_by=known[label_end_column(horizon)].max(), residual_var=stack.residual_var,
            meta_coefficients=tuple(float(w) for w in stack.meta.coef_),
        ))
    alpha, _ = combine_horizons(by_horizon, today, stack_params)
    return LiveAlpha(as_of=as_of, alpha=alpha, fits=fits)


def constant_alphas(alpha: pl.DataFrame, columns: Sequence[str], min_std: float) -> list[str]:
    """One problem per column of `columns` whose spread across the frame's instruments (population std) is
    null or below `min_std`: a constant alpha ranks nothing. The calibrator is flat beyond its outermost steps,
    so the extreme names may tie by design: a spread, not a share of distinct values, is required."""
    problems = []
    for column in columns:
        spread = alpha[column].std(ddof=0)
        if not spread or spread < min_std:
            problems.append(f"{column} std across {alpha.height} instruments is {spread}: a constant alpha")
    return problems


def _usable_fit(base_fits: dict[str, BaseModelFit], model: str, horizon: int, as_of: dt.date,
                inputs: tuple[str, ...]) -> BaseModelFit:
    """The stored fit of `model` x `horizon`, refused when it was made for another date or other inputs."""
    key = fit_key(model, horizon)
    if key not in base_fits:
        raise ValueError(f"live alpha: no stored base-model fit {key}; fit it with its out-of-fold predictions first")
    fit = base_fits[key]
    if fit.as_of != as_of:
        raise ValueError(f"live alpha: the stored fit {key} is as of {fit.as_of}, not {as_of}: refit it with its "
                         "out-of-fold predictions on the current features and labels")
    if fit.inputs != inputs:
        raise ValueError(f"live alpha: the stored fit {key} read other input columns than today's features")
    return fit
