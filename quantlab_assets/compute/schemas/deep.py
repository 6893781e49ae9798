"""Deep models: forecasters' training diagnostics and the TFT's interpretation, quantile forecasts, the TBM
and SupCon barrier classifiers, and the masked encoder's pre-training curve and embeddings."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.models import upper_barrier_probabilities_schema


class TrainingDiagnosticsSchema(pa.DataFrameModel):
    """Per fold x epoch x head of a deep forecaster: the instruments seed 001's post-mortem lacked."""

    fold_id: pl.Int64 = pa.Field(ge=0)
    epoch: pl.Int64 = pa.Field(ge=0)
    head: pl.String = pa.Field(isin=["mean", "direction", "volatility"])
    prediction_std: pl.Float64 = pa.Field(ge=0, description="Std of the head's output over the validation windows.")
    grad_norm: pl.Float64 = pa.Field(ge=0, description="Mean gradient norm of the head's parameters over the epoch.")
    representation_std: pl.Float64 = pa.Field(ge=0, description="Std of the encoder's [CLS] output (mean over dims).")
    train_loss: pl.Float64 = pa.Field(nullable=True)
    val_loss: pl.Float64

    class Config:
        strict = True
        unique = ["fold_id", "epoch", "head"]


def _weights_sum_to_one(data: PolarsData) -> pl.LazyFrame:
    """Within a fold and kind the mean weights sum to 1, as every window's softmax weights do."""
    total = pl.col("weight").sum().over("fold_id", "kind")
    return data.lazyframe.select(((total - 1).abs() < 1e-6).alias("weights_sum_to_one"))


class TftInterpretationSchema(pa.DataFrameModel):
    """Per walk-forward fold of forecaster_tft, over its test windows: the mean variable-selection weight
    of every input feature and the mean attention weight of every lag (compute/torch_runtime/interpretation.py)."""

    fold_id: pl.Int64 = pa.Field(ge=0)
    kind: pl.String = pa.Field(isin=["variable_selection", "attention"])
    name: pl.String = pa.Field(description="Feature name, or lag_k (k days before the forecast day).")
    weight: pl.Float64 = pa.Field(ge=0, le=1)

    class Config:
        strict = True
        unique = ["fold_id", "kind", "name"]

    @pa.dataframe_check(error="weights of a fold and kind sum to 1")
    @classmethod
    def weights_sum_to_one(cls, data: PolarsData) -> pl.LazyFrame:
        return _weights_sum_to_one(data)


QUANTILE_HORIZONS = [1, 5, 10, 20]


class QuantilePredictionsSchema(pa.DataFrameModel):
    """Out-of-fold quantile forecasts, one row per test window x horizon; units: the cross-sectionally
    z-scored forward return of the horizon (the training target), which `label` holds too."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    horizon_days: pl.Int64 = pa.Field(isin=QUANTILE_HORIZONS)
    q10: pl.Float64
    q50: pl.Float64
    q90: pl.Float64
    prediction: pl.Float64 = pa.Field(description="The point forecast: the median (q50).")
    label: pl.Float64 = pa.Field(description="The realised z-scored forward return (what it is scored on).")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER, "horizon_days"]

    @pa.dataframe_check(error="quantiles are finite, ordered, and the prediction is the median")
    @classmethod
    def ordered(cls, data: PolarsData) -> pl.LazyFrame:
        finite = pl.all_horizontal(pl.col("q10", "q50", "q90").is_finite())
        return data.lazyframe.select(
            (finite & (pl.col("q10") <= pl.col("q50")) & (pl.col("q50") <= pl.col("q90"))
             & (pl.col("prediction") == pl.col("q50"))).alias("ordered"))


class QuantileDiagnosticsSchema(pa.DataFrameModel):
    """Per fold x epoch x horizon of the quantile forecaster (compute/torch_runtime/quantile_training.py)."""

    fold_id: pl.Int64 = pa.Field(ge=0)
    epoch: pl.Int64 = pa.Field(ge=0)
    horizon_days: pl.Int64 = pa.Field(isin=QUANTILE_HORIZONS)
    prediction_std: pl.Float64 = pa.Field(ge=0, description="Std of the median over the validation windows.")
    coverage: pl.Float64 = pa.Field(ge=0, le=1, description="Share of validation targets inside [q10, q90].")
    grad_norm: pl.Float64 = pa.Field(ge=0, description="Mean gradient norm of the horizon's head, all parameters.")
    weight_grad_norm: pl.Float64 = pa.Field(ge=0, description="The same, weight matrices only (0: a dead head).")
    encoder_grad_norm: pl.Float64 = pa.Field(ge=0, description="Mean gradient norm of the encoder.")
    representation_std: pl.Float64 = pa.Field(ge=0, description="Std of the encoder's [CLS] output (mean over dims).")
    train_loss: pl.Float64 = pa.Field(nullable=True)
    val_loss: pl.Float64

    class Config:
        strict = True
        unique = ["fold_id", "epoch", "horizon_days"]


TbmProbabilitiesSchema = upper_barrier_probabilities_schema(
    "tbm_probability", name="TbmProbabilitiesSchema", model="Seed 002's triple-barrier classifier on sequence windows (focal loss)"
)


class PretrainingCurveSchema(pa.DataFrameModel):
    """Per epoch of the masked encoder's pre-training: mean training loss and validation loss (MSE on masked patches)."""

    epoch: pl.Int64 = pa.Field(ge=0, unique=True)
    train_loss: pl.Float64 = pa.Field(ge=0, nullable=True)
    val_loss: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True


class EmbeddingsSchema(pa.DataFrameModel):
    """Per (date, ticker) with a complete window: the masked encoder's pooled output emb_0..emb_{d-1} of the
    window ending at `date` (the instrument's feature rows of the seq_len trading days up to and including
    `date`, nothing later). d is the encoder's d_model (128 by default)."""

    date: pl.Date = pa.Field(description="Last day of the window the embedding encodes.")
    ticker: pl.String
    emb: pl.Float32 = pa.Field(alias=r"^emb_\d+$", regex=True, description="Embedding dimensions, emb_0 first.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]


class SupconCurveSchema(pa.DataFrameModel):
    """Per walk-forward fold and epoch of SupCon pre-training: mean training and validation SupCon loss."""

    fold_id: pl.Int64 = pa.Field(ge=0)
    epoch: pl.Int64 = pa.Field(ge=0)
    train_loss: pl.Float64 = pa.Field(ge=0, nullable=True)
    val_loss: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["fold_id", "epoch"]


SupconProbabilitiesSchema = upper_barrier_probabilities_schema(
    "supcon_probability", name="SupconProbabilitiesSchema", model="A linear probe on a fold's SupCon-pre-trained encoder"
)
