"""The three base models of Model 2 with their parameters (seed 004), as scikit-learn estimators.

Missing features: the trees (XGBoost, LightGBM) take NaN natively and learn a default direction per
split; Ridge cannot, so its pipeline imputes each feature's median *of the fold's training rows* and
standardises with the training rows' mean and std (both fitted inside the fold, so no test row
informs them). Rows whose label is null are never training or test rows (oof.py). The median imputer is
ours (imputer.py: `MedianImputer`, and why not scikit-learn's).

Inputs and labels per date: the trees (PER_DATE_MODELS) read every input and train on a label
rank-gaussed within its date (features/preprocessing.py: rank_gauss_per_date), the way the peers'
cross-sectional processors (Qlib's CSRankNorm / CSZScoreNorm) feed LightGBM: a tree split on a raw
feature is a threshold fixed in time, so on a 20-year panel a split can separate calm years from
volatile ones; on per-date ranks a split separates the day's leaders from its laggards, and a label
ranked per date weighs every day's cross-section alike instead of the crisis days' big moves. This is
a documented deviation from seed 004, which names raw inputs; the trees' own parameters are unchanged.
Predictions are scored against the raw label (rank IC, per date: a per-date monotone transform of the
label leaves it unchanged). Ridge keeps raw inputs and labels (its median imputation and scaling, below):
per date it scored better alone but made the stack worse (docs/studies.md, "Tree models on per-date
inputs").

Determinism: every model is seeded (42) and runs on a fixed number of threads; XGBoost's `hist` and
LightGBM with `deterministic=True, force_row_wise=True` give bit-identical models for the same
inputs and thread count (tested: run twice, compare bits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.preprocessing import rank_gauss_per_date
from quantlab_assets.compute.models.metrics import LABEL
# The names live in a light module (the partitions read them); re-exported here, where the models are.
from quantlab_assets.compute.models.names import LIGHTGBM, MODELS, PER_DATE_MODELS, RIDGE, XGBOOST  # noqa: F401
from quantlab_assets.compute.params import described

if TYPE_CHECKING:
    from sklearn.base import RegressorMixin

SEED: Final = 42
# A fixed thread count keeps the trees' float sums in one order. One thread: on the lab's 2-core
# machines, shared with other jobs, 2 OpenMP threads made XGBoost and LightGBM about 10x *slower*
# (measured: 50 trees on 17,000 x 74 rows, 1.4 s vs 14.4 s and 1.1 s vs 11.9 s).
THREADS: Final = 1


@dataclass(frozen=True)
class RidgeParams:
    """Seed 004: Ridge(alpha=3.0, random_state=42)."""

    alpha: float = described(3.0, "Ridge L2 penalty (seed 004: 3.0).")
    random_state: int = described(SEED, "Ridge's random state.")


@dataclass(frozen=True)
class XGBoostParams:
    """Seed 004: max_depth 6, 400 trees, eta 0.05, subsample and colsample 0.8, random_state 42."""

    max_depth: int = described(6, "Maximum tree depth (seed 004: 6).")
    n_estimators: int = described(400, "Boosted trees (seed 004: 400).")
    learning_rate: float = described(0.05, "Shrinkage per tree (eta; seed 004: 0.05).")
    subsample: float = described(0.8, "Share of rows sampled per tree.")
    colsample_bytree: float = described(0.8, "Share of columns sampled per tree.")
    random_state: int = described(SEED, "XGBoost's random seed.")
    n_jobs: int = described(THREADS, "Threads per fit (1: faster than 2 on a shared 2-core machine, measured).")
    tree_method: str = described("hist", "XGBoost's tree construction algorithm.")


@dataclass(frozen=True)
class LightGBMParams:
    """Our documented default (the seed names none): the XGBoost budget in LightGBM's terms.

    400 trees at learning rate 0.05 and the same row/column subsampling as XGBoost, so the two tree
    models differ in growth (leaf-wise, 31 leaves) rather than in budget; min_child_samples 100 because
    daily cross-sections are noisy and a leaf of 20 rows (LightGBM's default) fits noise.
    """

    n_estimators: int = described(400, "Boosted trees (the XGBoost budget).")
    learning_rate: float = described(0.05, "Shrinkage per tree.")
    num_leaves: int = described(31, "Maximum leaves per tree (leaf-wise growth).")
    min_child_samples: int = described(100, "Minimum rows per leaf (100: daily cross-sections are noisy).")
    subsample: float = described(0.8, "Share of rows sampled per bagging round.")
    subsample_freq: int = described(1, "Bagging every this many iterations.")
    colsample_bytree: float = described(0.8, "Share of columns sampled per tree.")
    random_state: int = described(SEED, "LightGBM's random seed.")
    n_jobs: int = described(THREADS, "Threads per fit.")
    deterministic: bool = described(True, "LightGBM's deterministic mode (same model on every run).")
    force_row_wise: bool = described(True, "Row-wise histogram construction (deterministic, no start-up test).")
    verbose: int = described(-1, "LightGBM's log level (-1: silent).")


@dataclass(frozen=True)
class BaseModelParams:
    ridge: RidgeParams = RidgeParams()
    xgboost: XGBoostParams = XGBoostParams()
    lightgbm: LightGBMParams = LightGBMParams()
    per_date_trees: bool = described(True, "Rank-gauss the trees' inputs and training label within each date "
                                           "(model_view); false: the seed's raw inputs.")

    def of(self, model: str) -> RidgeParams | XGBoostParams | LightGBMParams:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known: {MODELS}")
        return getattr(self, model)

    def as_dict(self, model: str) -> dict[str, Any]:
        return dataclasses.asdict(self.of(model))


def __getattr__(name: str) -> Any:
    # Ridge fits stored before MedianImputer moved to imputer.py were pickled under this module's name.
    if name == "MedianImputer":
        from quantlab_assets.compute.models.imputer import MedianImputer

        return MedianImputer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_view(frame: pl.DataFrame, inputs: Sequence[str], model: str, per_date: bool = True) -> pl.DataFrame:
    """The rows of a design frame as `model` fits and predicts them: for PER_DATE_MODELS (when `per_date`,
    BaseModelParams.per_date_trees) every input and the label (when the frame has one) rank-gaussed within
    the date; for the others the frame as is.

    `frame` holds one date's members per date (a design panel: members with a label, or today's members
    for a live prediction), so each score reads its own date's cross-section only. The fit reads the
    label of the view; predictions are scored against the design frame's raw label.
    """
    if not per_date or model not in PER_DATE_MODELS:
        return frame
    return rank_gauss_per_date(frame, [*inputs, *([LABEL] if LABEL in frame.columns else [])])


# XGBoost stores its inputs as float32 whatever it is given, so a float32 matrix is the same model at half the
# memory (tested); LightGBM bins float32 inputs differently from float64 (measured: other trees).
XGBOOST_INPUT: Final = np.float32
# Rank-gaussing this many inputs at a time bounds the copy of the panel that model_rows holds at once.
COLUMNS_PER_BLOCK: Final = 8


def input_matrix(frame: pl.DataFrame, inputs: Sequence[str], dtype: type[np.floating] = np.float64) -> np.ndarray:
    """`inputs` of `frame` as one (rows, inputs) array of `dtype`, nulls as NaN. Row-major, so a run of rows is
    a C-contiguous view that the models read without copying."""
    width = pl.Float32 if dtype == np.float32 else pl.Float64
    return frame.select(pl.col(list(inputs)).cast(width)).to_numpy(order="c")


@dataclass(frozen=True)
class ModelRows:
    """A design frame as one model reads it: `x` the (rows, inputs) matrix, C-ordered, so that a run of rows
    is a view the models read without copying; `y` the training target (None for a frame without a label)."""

    x: np.ndarray
    y: np.ndarray | None


def model_rows(frame: pl.DataFrame, inputs: Sequence[str], model: str, per_date: bool = True) -> ModelRows:
    """`model_view` of `frame` as arrays, without holding the view: the per-date inputs are filled
    COLUMNS_PER_BLOCK at a time, so a tree partition holds the design panel and one matrix instead of the
    panel, a rank-gaussed copy and a matrix (1.6 GB each at 500 instruments x 20 years). XGBoost's per-date
    matrix is XGBOOST_INPUT (float32); LightGBM's and Ridge's are float64."""
    names = list(inputs)
    target = frame[LABEL] if LABEL in frame.columns else None
    if not per_date or model not in PER_DATE_MODELS:
        return ModelRows(input_matrix(frame, names), None if target is None else target.to_numpy())
    x = np.empty((frame.height, len(names)), dtype=XGBOOST_INPUT if model == XGBOOST else np.float64)
    for start in range(0, len(names), COLUMNS_PER_BLOCK):
        block = names[start:start + COLUMNS_PER_BLOCK]
        ranked = model_view(frame.select(c.DATE, *block), block, model)
        x[:, start:start + len(block)] = ranked.select(block).to_numpy()
    y = None if target is None else model_view(frame.select(c.DATE, LABEL), (), model)[LABEL].to_numpy()
    return ModelRows(x, y)


def make_estimator(model: str, params: BaseModelParams = BaseModelParams()) -> RegressorMixin:
    """An unfitted estimator of `model` with `params`."""
    kwargs = params.as_dict(model)
    # Imported here: sklearn, xgboost and lightgbm together take about 0.35 s to import, and every Dagster run
    # process imports this module.
    if model == RIDGE:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        from quantlab_assets.compute.models.imputer import MedianImputer

        return Pipeline(
            # The imputer returns a new array, so scaling and Ridge's centring may work in place on it.
            [("impute", MedianImputer()), ("scale", StandardScaler(copy=False)), ("ridge", Ridge(**kwargs, copy_X=False))]
        )
    if model == XGBOOST:
        from xgboost import XGBRegressor

        return XGBRegressor(**kwargs)
    from lightgbm import LGBMRegressor

    return LGBMRegressor(**kwargs)


def feature_importance(model: str, estimator: RegressorMixin) -> np.ndarray:
    """Per feature: total split gain for the trees, |standardised coefficient| for Ridge."""
    if model == RIDGE:
        return np.abs(estimator.named_steps["ridge"].coef_)
    if model == XGBOOST:
        booster = estimator.get_booster()
        gains = booster.get_score(importance_type="total_gain")
        return np.array([gains.get(f"f{i}", 0.0) for i in range(estimator.n_features_in_)])
    return estimator.booster_.feature_importance(importance_type="gain").astype(float)
