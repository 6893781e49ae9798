"""Tabular models: CV folds, out-of-fold predictions, the stacked alpha, scorecards, meta-labels, tuning
trials, and the schema of out-of-fold upper-barrier probabilities that every barrier classifier writes."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.base import finite_or_null


class CvFoldsSchema(pa.DataFrameModel):
    """Purged CV folds as date segments (compute/models/cv.py): one row per contiguous run of one role."""

    scheme: pl.String = pa.Field(isin=["walk_forward", "cpcv"])
    horizon_days: pl.Int64 = pa.Field(gt=0, description="The label horizon whose end dates were purged by.")
    fold_id: pl.Int64 = pa.Field(ge=0)
    role: pl.String = pa.Field(isin=["train", "test", "embargoed", "purged"])
    start: pl.Date
    end: pl.Date
    n_dates: pl.Int64 = pa.Field(gt=0, description="Trading dates (with a label) in the segment.")
    test_group: pl.Int64 = pa.Field(nullable=True, ge=0, description="Test segments: the date group tested.")
    path_id: pl.Int64 = pa.Field(nullable=True, ge=0, description="Test segments: the backtest path it belongs to.")

    class Config:
        strict = True


class OofPredictionsSchema(pa.DataFrameModel):
    """One base model's out-of-fold predictions of one horizon: each row predicted by the fold that tested it."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    prediction: pl.Float64 = pa.Field(description="Predicted industry-relative log return over the horizon.")
    label: pl.Float64 = pa.Field(description="The realised label of the row (what the prediction is scored on).")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.check("prediction", error="predictions must be finite")
    @classmethod
    def finite_prediction(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_finite())


class BaseModelFitsSchema(pa.DataFrameModel):
    """One base model of one horizon fitted on every labelled row (compute/models/live.py: fit_frame): one row."""

    model: pl.String = pa.Field(isin=["ridge", "xgboost", "lightgbm"])
    horizon_days: pl.Int64 = pa.Field(gt=0)
    as_of: pl.Date = pa.Field(description="The newest feature date; the live alpha uses the fit for this date only.")
    training_rows: pl.Int64 = pa.Field(gt=0, description="Rows whose label ended on or before as_of.")
    labels_ended_by: pl.Date = pa.Field(description="The latest label end among the training rows.")
    inputs: pl.List(pl.String) = pa.Field(description="The feature columns the model reads, in order.")
    per_date_inputs: pl.Boolean = pa.Field(description="The inputs were rank-gaussed per date (base_models.model_view).")
    estimator: pl.Binary = pa.Field(description="The fitted estimator, pickled.")

    class Config:
        strict = True


class StackedAlphaSchema(pa.DataFrameModel):
    """Seed 004's output: calibrated alpha in bp per horizon, combined by inverse residual variance."""

    date: pl.Date
    ticker: pl.String = pa.Field(description="The instrument (seed 004's `instrument`).")
    alpha_21d: pl.Float64 = pa.Field(ge=-1000, le=1000)
    alpha_63d: pl.Float64 = pa.Field(ge=-1000, le=1000)
    alpha_combined: pl.Float64 = pa.Field(ge=-1000, le=1000)
    var_21d: pl.Float64 = pa.Field(gt=0, description="Residual variance (bp^2) of the 21d calibrated alpha.")
    var_63d: pl.Float64 = pa.Field(gt=0, description="Residual variance (bp^2) of the 63d calibrated alpha.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="every alpha and variance must be finite")
    @classmethod
    def finite(cls, data: PolarsData) -> pl.LazyFrame:
        return finite_or_null(data, pl.exclude(c.DATE, c.TICKER))


class ModelScorecardSchema(pa.DataFrameModel):
    """Per model x horizon x fold (fold_id null: all folds): the honest diagnostics of compute/models/metrics.py.

    Every IC-like number is null where undefined (constant predictions), never 0.
    """

    model: pl.String
    horizon_days: pl.Int64
    fold_id: pl.Int64 = pa.Field(nullable=True)
    n_rows: pl.UInt32
    n_dates: pl.UInt32 = pa.Field(nullable=True)
    n_dates_ic_defined: pl.UInt32 = pa.Field(nullable=True)
    ic: pl.Float64 = pa.Field(nullable=True)
    ic_std: pl.Float64 = pa.Field(nullable=True)
    icir: pl.Float64 = pa.Field(nullable=True)
    rank_ic: pl.Float64 = pa.Field(nullable=True)
    rank_icir: pl.Float64 = pa.Field(nullable=True)
    hit_rate: pl.Float64 = pa.Field(nullable=True)
    prediction_std: pl.Float64 = pa.Field(nullable=True)
    mean_daily_prediction_std: pl.Float64 = pa.Field(nullable=True)
    quintile_spread: pl.Float64 = pa.Field(nullable=True)
    calibration_slope: pl.Float64 = pa.Field(nullable=True)
    calibration_intercept: pl.Float64 = pa.Field(nullable=True)

    class Config:
        strict = True


class MetaLabelsSchema(pa.DataFrameModel):
    """Seed 002's auditor: out-of-fold probability that the stacked alpha's trade hits its profit barrier."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    side: pl.Int8 = pa.Field(isin=[-1, 1], description="Sign of alpha_combined: the primary signal's trade.")
    meta_probability: pl.Float64 = pa.Field(ge=0, le=1)
    meta_label: pl.Int8 = pa.Field(isin=[0, 1], description="1 if the triple barrier was first touched on the side's profit barrier.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]


def upper_barrier_probabilities_schema(
    probability_column: str, *, name: str, model: str
) -> type[pa.DataFrameModel]:
    """The schema of a barrier classifier's out-of-fold P(upper triple barrier touched first), one row per
    (date, ticker), with the realised outcome. The tabular, TBM and SupCon classifiers all write it; only the
    probability column's name differs, so their outputs can sit side by side. `model` describes the classifier."""
    # pandera reads a model's columns from its class annotations, so a column named by a parameter needs the
    # class built here (the same class statement, written as a call).
    annotations = {
        c.DATE: pl.Date, c.TICKER: pl.String, "fold_id": pl.Int64, probability_column: pl.Float64,
        "hits_upper": pl.Int8,
    }
    namespace = {
        "__annotations__": annotations,
        "__doc__": f"{model}: out-of-fold probability ({probability_column}) that the upper triple barrier is "
                   "touched first.",
        "__module__": __name__,
        "fold_id": pa.Field(ge=0),
        probability_column: pa.Field(ge=0, le=1),
        "hits_upper": pa.Field(isin=[0, 1], description="1 if the upper barrier was touched first."),
        "Config": type("Config", (), {"strict": True, "unique": [c.DATE, c.TICKER]}),
    }
    return type(name, (pa.DataFrameModel,), namespace)


BarrierProbabilitiesSchema = upper_barrier_probabilities_schema(
    "barrier_probability", name="BarrierProbabilitiesSchema", model="Seed 002's primary model, tabular"
)


class HyperparameterTrialsSchema(pa.DataFrameModel):
    """One row per trial of a search on purged folds of the research span (compute/models/tuning.py)."""

    trial: pl.Int64 = pa.Field(ge=0, unique=True)
    state: pl.String = pa.Field(isin=["complete", "pruned"])
    mean_log_loss: pl.Float64 = pa.Field(ge=0, nullable=True, description="Mean over its folds; null when pruned.")
    folds_evaluated: pl.Int64 = pa.Field(ge=0)
    fold_log_losses: pl.String = pa.Field(description="JSON list: the log loss of every fold evaluated, in order.")
    params: pl.String = pa.Field(description="JSON object: the trial's parameters.")
    is_default: pl.Boolean = pa.Field(description="The seed's default configuration (trial 0).")
    tuned_through: pl.Date = pa.Field(
        description="The last date of the span the search read (validation_end): its parameters predict only later rows.")

    class Config:
        strict = True
