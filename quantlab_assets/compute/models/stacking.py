"""Stacking, calibration and horizon combination of the base models' out-of-fold predictions (seed 004).

Per horizon k and walk-forward fold f (nested: everything fitted for fold f sees only OOF rows on fold
f's *training* dates, i.e. earlier test windows less the purge and the 63-date embargo before f):

1. meta-learner: Ridge(alpha=3.0) of the label on the base models' OOF predictions, fitted on those rows,
   its weights non-negative (`meta_positive`, a documented deviation from the seed's unconstrained Ridge:
   Breiman's stacked regressions). Unconstrained, a member that missed on the early folds got a negative
   weight and the later folds bet against it: on the default market the 63-day stack's rank IC was negative
   or undefined (constant) in every fold where all three members' were positive (docs/studies.md, "A
   non-negative meta-learner");
2. isotonic calibration mapping the meta score to the label in basis points, bounded to
   [-1000, 1000] bp (the seed's range), centred (`IsotonicCalibrator`, `centred_calibration`, a documented
   deviation): the isotonic fit's steps are replaced by straight lines through each step's centre, so two
   names with different meta scores keep different, ordered alphas; flat outside the outermost centres.
   The seed's step function tied every name of a step: on the default market its 2 to 25 levels tied most
   of a date's members, and the strategies that rank names read those ties (docs/studies.md, "A centred
   isotonic calibrator");
3. residual variance var_k: the variance of label_bp - calibrated.

Steps 2 and 3 are cross-fitted: they read no meta score of a row the scoring meta-learner was fitted
on. The rows of step 1 are cut into `calibration_folds` contiguous groups of dates (cv.py's
`purged_kfold`: purged by the labels' end dates, the 63-date embargo on both sides of each group); a
Ridge fitted on the other groups' rows scores each group, and the calibrator and var_k are fitted on
those inner out-of-fold scores (var_k is the calibrator's residual on them). The calibrator then maps
the step-1 meta-learner's scores of fold f's test rows. Every inner fit reads only fold f's training
rows, so nothing fitted for fold f sees a row of fold f, its purge window or anything later. Fold 0 has
no earlier OOF rows, and a fold whose training rows are too few for any inner group to keep training
rows past the embargo, no calibration rows: neither gets a stacked alpha.

Combination: alpha_combined = sum_k w_k alpha_k with w_k proportional to 1 / var_k, on the rows where
both horizons have a stacked alpha. Optional style neutralisation replaces each alpha column by its
residual from a per-date OLS with intercept on style exposures (beta, size, momentum; a null exposure
counts as the date's mean), so each date's alpha then has mean 0 and no style exposure; clipped back
into the bp bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import label_end_column
from quantlab_assets.compute.labels.compute import relative_label_column as label_column
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import MODELS, SEED
from quantlab_assets.compute.models.metrics import LABEL, LABEL_END, PREDICTION
from quantlab_assets.compute.models.oof import role_mask
from quantlab_assets.compute.params import described

if TYPE_CHECKING:
    from sklearn.linear_model import Ridge

BP: Final = 1e4
ALPHA_BOUND_BP: Final = 1000.0
ALPHA_COMBINED: Final = "alpha_combined"
STACKED_COLUMNS: Final = (c.DATE, c.TICKER, "alpha_21d", "alpha_63d", ALPHA_COMBINED, "var_21d", "var_63d")


def alpha_column(horizon: int) -> str:
    return f"alpha_{horizon}d"


def var_column(horizon: int) -> str:
    return f"var_{horizon}d"


@dataclass(frozen=True)
class StackParams:
    """Seed 004: Ridge(alpha=3.0) meta-learner (with non-negative weights: `meta_positive`); style
    neutralisation off unless configured."""

    meta_alpha: float = described(3.0, "Ridge penalty of the meta-learner (seed 004: 3.0).")
    meta_positive: bool = described(
        True, "Non-negative meta-learner weights (Breiman's stacked regressions): a member that missed on the "
              "earlier folds gets weight 0 instead of being bet against; false: seed 004's unconstrained Ridge.")
    centred_calibration: bool = described(
        True, "Centred isotonic calibration: the meta score's order kept between the steps' centres; false: seed "
              "004's isotonic step function, which gives every name of a step the same alpha.")
    calibration_folds: int = described(
        5, "Inner purged folds whose out-of-fold meta scores the calibrator and residual variance are fitted on.")
    calibration_embargo_days: int = described(
        cv.CvParams().embargo_days, "Trading dates embargoed on each side of an inner calibration fold (as the CV folds).")
    style_neutral: bool = described(False, "Neutralise the alpha to the style exposures (beta, size, momentum).")
    # Seed 004's styles: beta, size, momentum, as the feature columns that measure them.
    style_exposures: tuple[str, ...] = ("beta_63d", "log_dollar_volume_21d", "mom_12_1")


@dataclass(frozen=True)
class IsotonicCalibrator:
    """A monotone map from meta score to bp: straight lines between `knots` (scores) and their `levels`,
    flat outside them (sklearn's `out_of_bounds="clip"`).

    Both variants start from the isotonic least-squares fit. Centred (Oron and Flournoy 2017, "Centered
    isotonic regression"): one knot per step of the fit (a run of scores fitted to one level), at the
    step's mean score; between the first and last knot the map is strictly increasing, so it keeps the
    meta score's order. The step function (seed 004, sklearn's IsotonicRegression): knots at each step's
    first and last score, so every score of a step gets the same level. One step: a constant."""

    knots: np.ndarray
    levels: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, target: np.ndarray, low: float, high: float, centred: bool = True) -> IsotonicCalibrator:
        """The calibrator of `target` on `scores`, its levels within [low, high]."""
        # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
        from sklearn.isotonic import IsotonicRegression

        step_function = IsotonicRegression(y_min=low, y_max=high, increasing=True, out_of_bounds="clip").fit(scores, target)
        if not centred:
            return cls(step_function.X_thresholds_, step_function.y_thresholds_)
        ordered = np.sort(scores)
        fitted = step_function.predict(ordered)
        starts = np.r_[True, fitted[1:] != fitted[:-1]]
        step = np.cumsum(starts) - 1
        return cls(np.bincount(step, weights=ordered) / np.bincount(step), fitted[starts])

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.knots, self.levels)


@dataclass(frozen=True)
class FoldStack:
    """What was fitted for one (horizon, fold): meta-learner, calibrator, residual variance and row counts
    (calibration_rows: the training rows that got an inner out-of-fold meta score)."""

    horizon: int
    fold_id: int
    meta: Ridge
    calibrator: IsotonicCalibrator
    residual_var: float
    train_rows: int
    test_rows: int
    calibration_rows: int


@dataclass(frozen=True)
class StackResult:
    """alpha: STACKED_COLUMNS; per_horizon: (date, ticker, fold_id, prediction = calibrated bp, label in bp)
    per horizon for scoring; fits: every FoldStack."""

    alpha: pl.DataFrame
    per_horizon: dict[int, pl.DataFrame]
    fits: list[FoldStack] = field(repr=False)
    clipped_rows: int


def wide_oof(oof_by_model: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per predicted (date, ticker): fold_id, label and each base model's prediction as a column."""
    missing = set(MODELS) - set(oof_by_model)
    if missing:
        raise ValueError(f"stacking needs the OOF predictions of every base model; missing {sorted(missing)}")
    first, *rest = MODELS
    wide = oof_by_model[first].select(c.DATE, c.TICKER, cv.FOLD_ID, LABEL, pl.col(PREDICTION).alias(first))
    for model in rest:
        wide = wide.join(oof_by_model[model].select(c.DATE, c.TICKER, pl.col(PREDICTION).alias(model)),
                         on=[c.DATE, c.TICKER], how="inner")
    return wide.sort(c.DATE, c.TICKER)


@dataclass(frozen=True)
class StackFit:
    """Steps 1-3 on one set of rows: the meta-learner, the calibrator and residual variance cross-fitted on
    `calibration_rows` inner out-of-fold meta scores."""

    meta: Ridge
    calibrator: IsotonicCalibrator
    residual_var: float
    calibration_rows: int

    def alpha_bp(self, x: np.ndarray) -> np.ndarray:
        """The calibrated alpha in bp of base predictions `x` (columns in MODELS order)."""
        return self.calibrator.predict(self.meta.predict(x))


def meta_learner(params: StackParams) -> Ridge:
    """Step 1's unfitted Ridge of the label in bp on the members' predictions."""
    # Imported here: sklearn takes about 0.3 s to import, and every Dagster run process imports this module.
    from sklearn.linear_model import Ridge

    return Ridge(alpha=params.meta_alpha, positive=params.meta_positive, random_state=SEED)


def inner_oof_scores(
    x: np.ndarray, y_bp: np.ndarray, dates: pl.Series, label_ends: pl.Series, horizon: int, params: StackParams
) -> np.ndarray:
    """Each row's meta score from a Ridge fitted on the other inner groups' rows (cv.py's purged_kfold over
    the rows' dates, purged by `label_ends`); NaN where its group kept no training row past the embargo."""
    calendar = pl.DataFrame({c.DATE: dates, label_column(horizon): y_bp, label_end_column(horizon): label_ends})
    folds = cv.make_folds(calendar, cv.CvParams(
        embargo_days=params.calibration_embargo_days, kfold_groups=params.calibration_folds, horizons=(horizon,),
        schemes=(cv.PURGED_KFOLD,)))
    scores = np.full(len(y_bp), np.nan)
    for _, fold in folds.group_by(cv.FOLD_ID):
        train, test = role_mask(fold, dates, cv.TRAIN), role_mask(fold, dates, cv.TEST)
        if train.size and test.size:
            scores[test] = meta_learner(params).fit(x[train], y_bp[train]).predict(x[test])
    return scores


def fit_stack(
    x: np.ndarray, y_bp: np.ndarray, dates: pl.Series, label_ends: pl.Series, horizon: int, params: StackParams
) -> StackFit | None:
    """Steps 1-3 on one set of rows (base predictions `x` in MODELS order, labels in bp, their dates and label
    end dates); None when no inner group could be scored."""
    scores = inner_oof_scores(x, y_bp, dates, label_ends, horizon, params)
    scored = ~np.isnan(scores)
    if not scored.any():
        return None
    calibrator = IsotonicCalibrator.fit(scores[scored], y_bp[scored], -ALPHA_BOUND_BP, ALPHA_BOUND_BP,
                                        params.centred_calibration)
    residual_var = float(np.var(y_bp[scored] - calibrator.predict(scores[scored])))
    meta = meta_learner(params).fit(x, y_bp)
    return StackFit(meta, calibrator, residual_var, int(scored.sum()))


def with_label_ends(wide: pl.DataFrame, labels: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """`wide` (wide_oof) with each row's label end date of `horizon` as column `label_end`."""
    return wide.join(labels.select(c.DATE, c.TICKER, pl.col(label_end_column(horizon)).alias(LABEL_END)),
                     on=[c.DATE, c.TICKER], how="left", maintain_order="left")


def stack_horizon(
    wide: pl.DataFrame, folds: pl.DataFrame, horizon: int, params: StackParams = StackParams()
) -> tuple[pl.DataFrame, list[FoldStack]]:
    """Nested stacking + calibration of one horizon from `wide` (with_label_ends): (date, ticker, fold_id,
    alpha bp, label bp, var), fits."""
    x = wide.select(MODELS).to_numpy()
    y_bp = wide[LABEL].to_numpy() * BP
    schedule = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == horizon))
    outputs, fits = [], []
    for fold_id in sorted(schedule[cv.FOLD_ID].unique().to_list()):
        fold = schedule.filter(pl.col(cv.FOLD_ID) == fold_id)
        train, test = role_mask(fold, wide[c.DATE], cv.TRAIN), role_mask(fold, wide[c.DATE], cv.TEST)
        if train.size == 0 or test.size == 0:
            continue
        fit = fit_stack(x[train], y_bp[train], wide[c.DATE][train], wide[LABEL_END][train], horizon, params)
        if fit is None:
            continue
        fits.append(FoldStack(horizon, fold_id, fit.meta, fit.calibrator, fit.residual_var, int(train.size),
                              int(test.size), fit.calibration_rows))
        outputs.append(
            wide[test].select(c.DATE, c.TICKER, cv.FOLD_ID).with_columns(
                pl.Series(PREDICTION, fit.alpha_bp(x[test])),
                pl.Series(LABEL, y_bp[test]),
                pl.lit(fit.residual_var).alias(var_column(horizon)),
            )
        )
    if not outputs:
        raise ValueError(f"stacking {horizon}d: no walk-forward fold has enough OOF rows on its training dates")
    return pl.concat(outputs), fits


def neutralise(frame: pl.DataFrame, columns: list[str], exposures: list[str]) -> pl.DataFrame:
    """Replace each of `columns` by its residual from a per-date OLS (with intercept) on `exposures`; row order kept."""
    demeaned = frame.with_columns(
        (pl.col(name).fill_null(pl.col(name).mean().over(c.DATE)) - pl.col(name).mean().over(c.DATE)).fill_null(0.0)
        .alias(f"_x{i}") for i, name in enumerate(exposures)
    )
    xs = [f"_x{i}" for i in range(len(exposures))]
    # Per date X'X and X'y from one group_by of products; the small systems are solved as one stack.
    sums = demeaned.group_by(c.DATE, maintain_order=True).agg(
        *[(pl.col(a) * pl.col(b)).sum().alias(f"_xx{i}_{j}") for i, a in enumerate(xs) for j, b in enumerate(xs)],
        *[(pl.col(a) * (pl.col(y) - pl.col(y).mean())).sum().alias(f"_xy{i}_{y}") for i, a in enumerate(xs) for y in columns],
    )
    k = len(xs)
    xtx = sums.select([f"_xx{i}_{j}" for i in range(k) for j in range(k)]).to_numpy().reshape(-1, k, k)
    pinv = np.linalg.pinv(xtx)  # a date whose exposures are collinear or constant still gets a solution
    coefficients = {}
    for y in columns:
        xty = sums.select([f"_xy{i}_{y}" for i in range(k)]).to_numpy()[:, :, None]
        coefficients[y] = (pinv @ xty)[:, :, 0]
    betas = sums.select(c.DATE).with_columns(
        pl.Series(f"_b{i}_{y}", coefficients[y][:, i]) for y in columns for i in range(k)
    )
    with_betas = demeaned.join(betas, on=c.DATE, how="left", maintain_order="left")
    return with_betas.with_columns(
        (pl.col(y) - pl.col(y).mean().over(c.DATE) - pl.sum_horizontal(pl.col(f"_b{i}_{y}") * pl.col(x) for i, x in enumerate(xs))).alias(y)
        for y in columns
    ).select(frame.columns)


def stack_and_combine(
    oof: dict[int, dict[str, pl.DataFrame]],
    folds: pl.DataFrame,
    labels: pl.DataFrame,
    exposures: pl.DataFrame | None = None,
    params: StackParams = StackParams(),
) -> StackResult:
    """The stacked, calibrated, combined alpha (STACKED_COLUMNS) from OOF predictions {horizon: {model: frame}}.

    `labels` gives each row's label end date (the inner calibration folds are purged by it); `exposures`
    (date, ticker and the style columns) is required when `params.style_neutral`.
    """
    per_horizon, fits, frames = {}, [], {}
    for horizon in sorted(oof):
        wide = with_label_ends(wide_oof(oof[horizon]), labels, horizon)
        stacked, horizon_fits = stack_horizon(wide, folds, horizon, params)
        per_horizon[horizon] = stacked.select(c.DATE, c.TICKER, cv.FOLD_ID, PREDICTION, LABEL)
        fits += horizon_fits
        frames[horizon] = stacked.select(c.DATE, c.TICKER, pl.col(PREDICTION).alias(alpha_column(horizon)), var_column(horizon))
    alpha, clipped = combine_horizons(frames, exposures, params)
    return StackResult(alpha=alpha, per_horizon=per_horizon, fits=fits, clipped_rows=clipped)


def combine_horizons(
    by_horizon: dict[int, pl.DataFrame], exposures: pl.DataFrame | None, params: StackParams
) -> tuple[pl.DataFrame, int]:
    """STACKED_COLUMNS from {horizon: (date, ticker, alpha_<h>d, var_<h>d)} of 21d and 63d: the
    inverse-variance combination, style-neutralised when configured; and the number of clipped rows."""
    if sorted(by_horizon) != [21, 63]:
        raise ValueError(f"the stacked alpha combines the 21d and 63d horizons; got {sorted(by_horizon)}")
    alpha = by_horizon[21].join(by_horizon[63], on=[c.DATE, c.TICKER], how="inner")
    inverse = [1.0 / pl.col(var_column(h)) for h in (21, 63)]
    alpha = alpha.with_columns(
        (sum(pl.col(alpha_column(h)) * w for h, w in zip((21, 63), inverse, strict=True)) / sum(inverse)).alias(ALPHA_COMBINED)
    )
    alpha_columns = [alpha_column(21), alpha_column(63), ALPHA_COMBINED]
    clipped = 0
    if params.style_neutral:
        if exposures is None:
            raise ValueError("style neutralisation needs the style exposures (features)")
        joined = alpha.join(exposures.select(c.DATE, c.TICKER, *params.style_exposures), on=[c.DATE, c.TICKER], how="left")
        alpha = neutralise(joined, alpha_columns, list(params.style_exposures)).select(alpha.columns)
        outside = pl.any_horizontal(pl.col(alpha_columns).abs() > ALPHA_BOUND_BP)
        clipped = alpha.filter(outside).height
        alpha = alpha.with_columns(pl.col(alpha_columns).clip(-ALPHA_BOUND_BP, ALPHA_BOUND_BP))
    return alpha.select(STACKED_COLUMNS).sort(c.DATE, c.TICKER), clipped
