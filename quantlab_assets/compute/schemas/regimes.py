"""The market state and the regime models read from it: HMM probabilities and parameters, clusters, labels."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.regimes.labels import REGIME_NAMES
from quantlab_assets.compute.schemas.base import finite_or_null


class MarketStateSchema(pa.DataFrameModel):
    """One row per date: the market-level aggregates the regime models read (compute/regimes/market_state.py)."""

    date: pl.Date = pa.Field(unique=True)
    constituents: pl.Int64 = pa.Field(ge=0, description="Constituents (tradable members) with a ret_1d that date.")
    market_return_1d: pl.Float64 = pa.Field(nullable=True, description="Equal-weighted mean of the constituents' ret_1d.")
    market_return_21d: pl.Float64 = pa.Field(nullable=True, description="Sum of market_return_1d over the last 21 dates.")
    market_vol_21d: pl.Float64 = pa.Field(nullable=True, ge=0, description="Annualised std of market_return_1d, 21 dates.")
    average_vol_21d: pl.Float64 = pa.Field(nullable=True, ge=0, description="Mean of the constituents' vol_21d.")
    average_correlation_21d: pl.Float64 = pa.Field(nullable=True, ge=-1, le=1, description="Implied average pairwise correlation.")
    vol_ratio_21d_126d: pl.Float64 = pa.Field(nullable=True, ge=0, description="Median of the constituents' vol_21d / vol_126d.")
    breadth_ma_21d: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    breadth_above_ma50: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    volume_shock_21d: pl.Float64 = pa.Field(nullable=True, description="Median volume_shock_21d of instruments with volume.")

    class Config:
        strict = True

    @pa.dataframe_check(error="market state values must be finite (null, not inf or NaN, where undefined)")
    @classmethod
    def finite(cls, data: PolarsData) -> pl.LazyFrame:
        return finite_or_null(data, pl.col(pl.Float64))


def _fitted_before(data: PolarsData) -> pl.LazyFrame:
    """A model fitted on rows dated up to fit_end only assigns dates after it: no look-ahead."""
    return data.lazyframe.select((pl.col("fit_end") < pl.col(c.DATE)).alias("fitted_before"))


class RegimeHmmSchema(pa.DataFrameModel):
    """Filtered HMM state probabilities P(state_t | market state up to t), for dates after train_end only.

    `refit` names the model (regime_hmm_params) that produced the row; it was fitted on rows dated up to
    `fit_end`, which is before the row's date. `state` is the most probable state.
    """

    date: pl.Date = pa.Field(unique=True)
    refit: pl.Int64 = pa.Field(ge=0)
    fit_end: pl.Date
    state: pl.Int64 = pa.Field(ge=0)
    p_state: pl.Float64 = pa.Field(ge=0, le=1, alias="^p_state_[0-9]+$", regex=True)

    class Config:
        strict = True

    @pa.dataframe_check(error="each model was fitted on data dated before the rows it filters")
    @classmethod
    def fitted_before(cls, data: PolarsData) -> pl.LazyFrame:
        return _fitted_before(data)

    @pa.dataframe_check(error="state probabilities of a date sum to 1")
    @classmethod
    def sums_to_one(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(((pl.sum_horizontal(pl.col("^p_state_[0-9]+$")) - 1.0).abs() < 1e-9).alias("sums_to_one"))


class RegimeHmmParamsSchema(pa.DataFrameModel):
    """Every refit of the regime HMM, one row per (refit, state): spans, fit diagnostics and parameters.

    center/scale standardise the (log-)features as in the fit span; mean and covariance (flattened
    row-major F x F) are in those standard units; transition is the state's row of the transition matrix.
    """

    refit: pl.Int64 = pa.Field(ge=0)
    state: pl.Int64 = pa.Field(ge=0)
    fit_start: pl.Date
    fit_end: pl.Date
    fit_rows: pl.Int64 = pa.Field(gt=0)
    applies_from: pl.Date
    applies_to: pl.Date
    converged: pl.Boolean
    iterations: pl.Int64 = pa.Field(ge=0)
    fit_log_likelihood: pl.Float64
    features: pl.List(pl.String)
    log_features: pl.List(pl.String)
    center: pl.List(pl.Float64)
    scale: pl.List(pl.Float64)
    startprob: pl.Float64 = pa.Field(ge=0, le=1)
    transition: pl.List(pl.Float64)
    mean: pl.List(pl.Float64)
    covariance: pl.List(pl.Float64)

    class Config:
        strict = True
        unique = ["refit", "state"]

    @pa.dataframe_check(error="a model applies only after its fit span")
    @classmethod
    def applies_after_fit(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            ((pl.col("fit_end") < pl.col("applies_from")) & (pl.col("applies_from") <= pl.col("applies_to"))).alias("ok")
        )

    @pa.dataframe_check(error="each transition row sums to 1")
    @classmethod
    def transition_rows_sum_to_one(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(((pl.col("transition").list.sum() - 1.0).abs() < 1e-6).alias("rows_sum_to_one"))


class RegimeClustersSchema(pa.DataFrameModel):
    """KMeans, Gaussian-mixture and HDBSCAN clusters of the market state, fitted up to fit_end, for later dates.

    Cluster numbers are ordered by their training members' mean market volatility (0 the calmest);
    hdbscan_cluster -1 is noise (no training cluster within its core distance).
    """

    date: pl.Date = pa.Field(unique=True)
    fit_end: pl.Date
    kmeans_cluster: pl.Int64 = pa.Field(ge=0)
    gmm_cluster: pl.Int64 = pa.Field(ge=0)
    gmm_probability: pl.Float64 = pa.Field(ge=0, le=1)
    hdbscan_cluster: pl.Int64 = pa.Field(ge=-1)

    class Config:
        strict = True

    @pa.dataframe_check(error="clusters are fitted on dates before the ones they assign")
    @classmethod
    def fitted_before(cls, data: PolarsData) -> pl.LazyFrame:
        return _fitted_before(data)


class RegimeLabelsSchema(pa.DataFrameModel):
    """Per date after train_end: the seed's regime label from the filtered HMM probabilities.

    p_<label>: the filtered probability of the states carrying that label (compute/regimes/labels.py);
    regime/regime_id: the most probable label (ids 0 Low-Vol Bull, 1 High-Vol Bull, 2 Bear, 3 Crisis,
    4 Transition, fixed across refits).
    """

    date: pl.Date = pa.Field(unique=True)
    refit: pl.Int64 = pa.Field(ge=0)
    state: pl.Int64 = pa.Field(ge=0)
    regime_id: pl.Int8 = pa.Field(isin=list(range(len(REGIME_NAMES))))
    regime: pl.Enum(list(REGIME_NAMES))
    p_low_vol_bull: pl.Float64 = pa.Field(ge=0, le=1)
    p_high_vol_bull: pl.Float64 = pa.Field(ge=0, le=1)
    p_bear: pl.Float64 = pa.Field(ge=0, le=1)
    p_crisis: pl.Float64 = pa.Field(ge=0, le=1)
    p_transition: pl.Float64 = pa.Field(ge=0, le=1)

    class Config:
        strict = True

    @pa.dataframe_check(error="label probabilities of a date sum to 1")
    @classmethod
    def sums_to_one(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            ((pl.sum_horizontal("p_low_vol_bull", "p_high_vol_bull", "p_bear", "p_crisis", "p_transition") - 1.0).abs()
             < 1e-9).alias("sums_to_one")
        )
