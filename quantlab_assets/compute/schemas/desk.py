"""The desk's frames: decided targets (today's and every recorded day's), orders, the live track record."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.portfolio import TargetWeightsSchema

STRATEGY = "strategy"


class DecidedTargetsSchema(TargetWeightsSchema):
    """Target weights of each strategy decided on a date (target_portfolio: one date; decision_ledger: every
    recorded date). A strategy not listed on a date was not decided that day; a listed instrument absent holds 0.
    TargetWeightsSchema's columns and look-ahead rule, with a strategy column and the budget per strategy."""

    strategy: pl.String
    weight: pl.Float64 = pa.Field(ge=-1, le=1, description="Fraction of equity (negative: short).")

    class Config:
        strict = True
        unique = [c.DATE, STRATEGY, c.TICKER]

    @pa.dataframe_check(error="a strategy's net weights of a date must sum to at most 1 (no leverage)")
    @classmethod
    def budget(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("weight").sum().over(c.DATE, STRATEGY) <= 1 + 1e-9).alias("budget"))


class OrdersSchema(pa.DataFrameModel):
    """Trades of one decision date: from each decided strategy's drifted holdings to its targets."""

    date: pl.Date = pa.Field(description="Decision date of the targets the trade reaches.")
    strategy: pl.String
    ticker: pl.String
    current_weight: pl.Float64 = pa.Field(description="Weight held: the last decision's targets, drifted since its trade.")
    target_weight: pl.Float64
    trade: pl.Float64 = pa.Field(description="target_weight - current_weight (fraction of equity; negative: sell).")
    estimated_cost: pl.Float64 = pa.Field(ge=0, description="|trade| x the backtest cost model's rate.")

    class Config:
        strict = True
        unique = [c.DATE, STRATEGY, c.TICKER]

    @pa.dataframe_check(error="trade must be target_weight - current_weight")
    @classmethod
    def trade_closes_the_gap(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            ((pl.col("target_weight") - pl.col("current_weight") - pl.col("trade")).abs() < 1e-12).alias("trade"))


class LiveTrackRecordSchema(pa.DataFrameModel):
    """Each strategy's scored days: the recorded decisions' returns after them, net of the cost model."""

    strategy: pl.String
    date: pl.Date
    gross_return: pl.Float64
    cost: pl.Float64 = pa.Field(ge=0)
    net_return: pl.Float64
    equity: pl.Float64 = pa.Field(gt=0, description="Growth of 1 from the first scored day.")

    class Config:
        strict = True
        unique = [STRATEGY, c.DATE]
