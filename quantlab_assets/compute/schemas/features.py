"""Features (raw and normalised), fractional-differencing orders, and the labels built from future bars."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.base import finite_or_null


# Feature names are snake_case with at least one underscore (ret_1d, rsi_14, mom_12_1__wz), which
# tells them from the keys; polars selectors have no look-ahead to say "anything but date and ticker".
FEATURE_NAME_PATTERN = "^[a-z0-9]+_[a-z0-9_]+$"


class FeaturesSchema(pa.DataFrameModel):
    """One row per cleaned bar: date, ticker and every registered feature (Float64), raw and normalised.

    Raw features keep their registry name; `__wz` marks winsorised [1 %, 99 %] + industry z-scored per
    date, `__rz` a 252-day rolling z-score per instrument; `ffd_log_close` is the fractionally
    differenced log price at the lab's fixed d (FfdParams.d). Nulls only where a window is not full.
    """

    date: pl.Date
    ticker: pl.String
    feature: pl.Float64 = pa.Field(nullable=True, alias=FEATURE_NAME_PATTERN, regex=True)

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="features must be finite (null, not inf or NaN, where undefined)")
    @classmethod
    def finite(cls, data: PolarsData) -> pl.LazyFrame:
        return finite_or_null(data, pl.col(FEATURE_NAME_PATTERN))


class FfdOrdersSchema(pa.DataFrameModel):
    """Per instrument, the fractional-differencing order its training span would choose (a diagnostic of the fixed d)."""

    ticker: pl.String = pa.Field(unique=True)
    d: pl.Float64 = pa.Field(nullable=True, ge=0, le=1, description="Smallest grid d whose FFD log price passes ADF.")
    adf_stat: pl.Float64 = pa.Field(nullable=True)
    p_value: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    n_obs: pl.Int64 = pa.Field(ge=0)
    status: pl.String = pa.Field(isin=["stationary", "no_d_passes", "insufficient_history", "constant_price"])
    train_end: pl.Date

    class Config:
        strict = True


def _after_date(data: PolarsData) -> pl.LazyFrame:
    """End dates of label windows lie strictly after the label's own date."""
    ends = [name for name in data.lazyframe.collect_schema().names() if name.startswith("label_end_") or name == "tb_end"]
    return data.lazyframe.select(
        pl.all_horizontal((pl.col(name) > pl.col(c.DATE)).fill_null(True) for name in ends).alias("ends_after_date")
    )


class LabelsSchema(pa.DataFrameModel):
    """Labels at t built from bars t+1 .. t+k only; each records the last date it uses (for purging).

    fwd_return_{k}d: sum of log returns t+1..t+k; label_{21,63}d: minus the industry's (leave-one-out)
    equal-weighted return; direction_{k}d in {-1, 0, 1}; triple barrier +-1.5 ATR(14) with a 10-day
    vertical barrier. Null where the future is not (yet) long enough.
    """

    date: pl.Date
    ticker: pl.String
    fwd_return_1d: pl.Float64 = pa.Field(nullable=True)
    fwd_return_5d: pl.Float64 = pa.Field(nullable=True)
    fwd_return_10d: pl.Float64 = pa.Field(nullable=True)
    fwd_return_20d: pl.Float64 = pa.Field(nullable=True)
    fwd_return_21d: pl.Float64 = pa.Field(nullable=True)
    fwd_return_63d: pl.Float64 = pa.Field(nullable=True)
    label_21d: pl.Float64 = pa.Field(nullable=True, description="Industry-relative forward return, 21 days.")
    label_63d: pl.Float64 = pa.Field(nullable=True, description="Industry-relative forward return, 63 days.")
    direction_1d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    direction_5d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    direction_10d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    direction_20d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    direction_21d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    direction_63d: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    label_end_1d: pl.Date = pa.Field(nullable=True)
    label_end_5d: pl.Date = pa.Field(nullable=True)
    label_end_10d: pl.Date = pa.Field(nullable=True)
    label_end_20d: pl.Date = pa.Field(nullable=True)
    label_end_21d: pl.Date = pa.Field(nullable=True)
    label_end_63d: pl.Date = pa.Field(nullable=True)
    tb_label: pl.Int8 = pa.Field(nullable=True, isin=[-1, 0, 1])
    tb_barrier: pl.Enum(["lower", "vertical", "upper", "both"]) = pa.Field(nullable=True)
    tb_touch_date: pl.Date = pa.Field(nullable=True)
    tb_end: pl.Date = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="every label_end_* and tb_end lies after the label's date")
    @classmethod
    def ends_after_date(cls, data: PolarsData) -> pl.LazyFrame:
        return _after_date(data)
