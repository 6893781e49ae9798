"""Strategies' target weights and the daily backtest of each."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c


class TargetWeightsSchema(pa.DataFrameModel):
    """A strategy's target weights per decision date; absent instruments hold 0, the rest is cash. A negative
    weight is a short (only the strategies in compute/portfolio/names.py: SHORT_SELLING hold any)."""

    date: pl.Date = pa.Field(description="Decision date: traded at its close + the execution delay.")
    ticker: pl.String
    weight: pl.Float64 = pa.Field(ge=-1, le=1)
    signal_date: pl.Date = pa.Field(description="Date of the information used; never after `date`.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="signal_date must not be after the decision date")
    @classmethod
    def no_lookahead(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("signal_date") <= pl.col(c.DATE))

    @pa.dataframe_check(error="weights of a date must sum to at most 1 (net exposure: no leverage on the long side)")
    @classmethod
    def budget(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("weight").sum().over(c.DATE) <= 1 + 1e-9).alias("budget"))


class BacktestDailySchema(pa.DataFrameModel):
    """One strategy's backtest per trading day: returns, costs, equity, turnover, concentration."""

    date: pl.Date = pa.Field(unique=True)
    gross_return: pl.Float64
    borrow_cost: pl.Float64 = pa.Field(ge=0, description="Fraction of the day's starting value paid to borrow the shorts held.")
    cost: pl.Float64 = pa.Field(ge=0, description="Fraction of equity paid at this close (linear in traded notional).")
    net_return: pl.Float64
    equity: pl.Float64 = pa.Field(gt=0)
    turnover: pl.Float64 = pa.Field(ge=0, description="Traded notional / equity at this close.")
    invested: pl.Float64 = pa.Field(le=1 + 1e-9, description="Net exposure: the sum of the end-of-day weights.")
    gross_exposure: pl.Float64 = pa.Field(ge=0, description="Sum of |end-of-day weights|.")
    n_positions: pl.Int32 = pa.Field(ge=0)
    max_weight: pl.Float64 = pa.Field(ge=0)
    hhi: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True
