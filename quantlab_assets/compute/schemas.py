"""Every pandera schema of the lab (polars backend), and the one validation entry point.

Each asset's frame is validated on write with `validate`, which raises a `SchemaViolation` naming the
asset, the partition, each failing column and rule, and example rows, so a violation can be found
without opening a debugger.
"""

from __future__ import annotations

import pandera.errors
import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.quality import OHLC_RELATIVE_TOLERANCE
from quantlab_assets.compute.data.cleaning import ACTION_DROPPED, ACTION_FLAGGED, ACTION_REJECTED, ROW_RULES, SERIES_RULES
from quantlab_assets.compute.data.membership import MEMBERSHIP_RULES
from quantlab_assets.compute.regimes.labels import REGIME_NAMES

EXAMPLE_ROWS = 5


class RawBarsSchema(pa.DataFrameModel):
    """Bars exactly as a source delivered them, with the file and row each came from.

    Nothing is checked beyond types and provenance: raw is a record of what was received, and the
    cleaning step judges it. Close-only sources (skfolio's S&P 500 sample) leave open/high/low/volume null.
    """

    date: pl.Date = pa.Field(description="Trading date as received.")
    ticker: pl.String = pa.Field(nullable=True, description="Instrument symbol as received (null if missing).")
    open: pl.Float64 = pa.Field(nullable=True)
    high: pl.Float64 = pa.Field(nullable=True)
    low: pl.Float64 = pa.Field(nullable=True)
    close: pl.Float64 = pa.Field(nullable=True)
    adj_close: pl.Float64 = pa.Field(nullable=True, description="Split/dividend adjusted close, if the source has one.")
    volume: pl.Float64 = pa.Field(nullable=True)
    source: pl.String = pa.Field(description="Source kind: synthetic, sp500_sample, csv, yfinance.")
    source_file: pl.String = pa.Field(description="File, package resource or request the row came from.")
    source_row: pl.Int64 = pa.Field(ge=0, description="Row number within source_file (CSV: line number).")
    parse_error: pl.String = pa.Field(nullable=True, description="Why a field could not be parsed, else null.")

    class Config:
        strict = True


def _ohlc_consistent(data: PolarsData) -> pl.LazyFrame:
    high_ok = pl.col(c.HIGH) >= pl.max_horizontal(c.OPEN, c.CLOSE, c.LOW) * (1 - OHLC_RELATIVE_TOLERANCE)
    low_ok = pl.col(c.LOW) <= pl.min_horizontal(c.OPEN, c.CLOSE, c.HIGH) * (1 + OHLC_RELATIVE_TOLERANCE)
    return data.lazyframe.select((high_ok & low_ok).fill_null(True).alias("ohlc_consistent"))


class CleanedBarsSchema(pa.DataFrameModel):
    """Validated daily bars on the universe's trading calendar, one row per (date, ticker).

    Total-return adjusted: open, high, low, close and log_return are split- and dividend-adjusted (every
    return that means money reads them); raw_close is the close as the source reported it.
    """

    date: pl.Date
    ticker: pl.String
    open: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted open (traded open x adj_factor); null for close-only sources.")
    high: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted high (traded high x adj_factor); null for close-only sources.")
    low: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted low (traded low x adj_factor); null for close-only sources.")
    close: pl.Float64 = pa.Field(gt=0, description="Split- and dividend-adjusted close (raw_close x adj_factor).")
    volume: pl.Float64 = pa.Field(
        ge=0, nullable=True,
        description="Split-continuous share volume (traded volume / adj_factor, so close x volume is the traded dollar volume); 0 on forward-filled days; null for close-only sources.",
    )
    log_return: pl.Float64 = pa.Field(
        nullable=True, description="ln(close_t / close_prev) of the adjusted close, never rewritten; null on an instrument's first row."
    )
    raw_close: pl.Float64 = pa.Field(gt=0, description="The close as the source reported it (traded, or as adjusted as the source delivers it).")
    adj_factor: pl.Float64 = pa.Field(gt=0, description="adj_close / close as received; 1 where the universe declares its closes adjusted.")
    is_filled: pl.Boolean = pa.Field(description="Forward-filled from the last close (gap of at most 5 days).")
    is_outlier: pl.Boolean = pa.Field(description="log_return lies beyond 10 robust sigmas: flagged for review, kept as it happened.")
    is_member: pl.Boolean = pa.Field(
        description="A member of the universe that day (listed..delisted); earlier bars are history only."
    )

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="high >= max(open, close, low) and low <= min(open, close, high)")
    @classmethod
    def ohlc_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        return _ohlc_consistent(data)

    @pa.check(c.LOG_RETURN, error="log_return must be finite")
    @classmethod
    def finite_return(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_finite().fill_null(True))


class QuarantinedBarsSchema(pa.DataFrameModel):
    """Rows the cleaning step rejected, flagged or dropped, with the rule that fired and where they came from."""

    date: pl.Date
    ticker: pl.String = pa.Field(nullable=True)
    open: pl.Float64 = pa.Field(nullable=True)
    high: pl.Float64 = pa.Field(nullable=True)
    low: pl.Float64 = pa.Field(nullable=True)
    close: pl.Float64 = pa.Field(nullable=True)
    adj_close: pl.Float64 = pa.Field(nullable=True)
    volume: pl.Float64 = pa.Field(nullable=True)
    source: pl.String = pa.Field(nullable=True, description="Null only for a forward-filled row (never received).")
    source_file: pl.String = pa.Field(nullable=True)
    source_row: pl.Int64 = pa.Field(nullable=True)
    rule: pl.String = pa.Field(isin=list(ROW_RULES + SERIES_RULES + MEMBERSHIP_RULES))
    action: pl.String = pa.Field(isin=[ACTION_REJECTED, ACTION_FLAGGED, ACTION_DROPPED])
    detail: pl.String

    class Config:
        strict = True


class UniverseSchema(pa.DataFrameModel):
    """Instruments of a universe with the sector and industry that later assets group and neutralise by."""

    ticker: pl.String = pa.Field(unique=True)
    name: pl.String
    sector: pl.String
    industry: pl.String
    tradable: pl.Boolean = pa.Field(description="False for indices and benchmark ETFs: never a holding, training row or alpha.")
    listed: pl.Date = pa.Field(nullable=True, description="First day of membership; null: from the first bar.")
    delisted: pl.Date = pa.Field(nullable=True, description="Last trading day as a member; null: still listed.")
    delisting_return: pl.Float64 = pa.Field(nullable=True, gt=-1, description="Proceeds of the delisting vs the last close.")

    class Config:
        strict = True


HORIZONS = (1, 5, 10, 20, 21, 63)


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
        features = pl.col(FEATURE_NAME_PATTERN)
        return data.lazyframe.select(pl.all_horizontal(features.is_finite().fill_null(True)).alias("finite"))


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


class TargetWeightsSchema(pa.DataFrameModel):
    """A strategy's target weights per decision date (issue 6); absent instruments hold 0, the rest is cash."""

    date: pl.Date = pa.Field(description="Decision date: traded at its close + the execution delay.")
    ticker: pl.String
    weight: pl.Float64 = pa.Field(ge=0, le=1)
    signal_date: pl.Date = pa.Field(description="Date of the information used; never after `date`.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="signal_date must not be after the decision date")
    @classmethod
    def no_lookahead(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("signal_date") <= pl.col(c.DATE))

    @pa.dataframe_check(error="weights of a date must sum to at most 1 (long-only, no leverage)")
    @classmethod
    def budget(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("weight").sum().over(c.DATE) <= 1 + 1e-9).alias("budget"))


class BacktestDailySchema(pa.DataFrameModel):
    """One strategy's backtest per trading day (issue 6): returns, costs, equity, turnover, concentration."""

    date: pl.Date = pa.Field(unique=True)
    gross_return: pl.Float64
    cost: pl.Float64 = pa.Field(ge=0, description="Fraction of equity paid at this close (linear in traded notional).")
    net_return: pl.Float64
    equity: pl.Float64 = pa.Field(gt=0)
    turnover: pl.Float64 = pa.Field(ge=0, description="Traded notional / equity at this close.")
    invested: pl.Float64 = pa.Field(ge=0, le=1 + 1e-9)
    n_positions: pl.Int32 = pa.Field(ge=0)
    max_weight: pl.Float64 = pa.Field(ge=0)
    hhi: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True


def empty_frame(schema: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A frame with the schema's columns and no rows."""
    return pl.DataFrame(schema={name: column.dtype.type for name, column in schema.to_schema().columns.items()})


def conform(frame: pl.DataFrame, schema: type[pa.DataFrameModel]) -> pl.DataFrame:
    """`frame`, or an empty frame of `schema` where storage held no file for it (no columns at all)."""
    return frame if frame.width else empty_frame(schema)


class SchemaViolation(ValueError):
    """A frame broke its schema; the message names asset, partition, columns, rules and example rows."""


def schema_failures(
    schema: type[pa.DataFrameModel], frame: pl.DataFrame, *, asset: str, partition: str | None
) -> str | None:
    """A description of every way `frame` breaks `schema`, or None if it conforms."""
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return describe_failures(errors.failure_cases, asset=asset, partition=partition)
    return None


def validate(schema: type[pa.DataFrameModel], frame: pl.DataFrame, *, asset: str, partition: str | None) -> pl.DataFrame:
    """Return `frame` if it conforms to `schema` (all checks run), else raise `SchemaViolation`."""
    failures = schema_failures(schema, frame, asset=asset, partition=partition)
    if failures:
        raise SchemaViolation(failures)
    return frame


def describe_failures(failure_cases: pl.DataFrame, *, asset: str, partition: str | None) -> str:
    """One line per (column, rule) with its count and a few failing values and row indices."""
    lines = [f"asset {asset!r}, partition {partition!r} violates its schema:"]
    grouped = (
        failure_cases.with_columns(pl.col("failure_case").cast(pl.String), pl.col("column").cast(pl.String))
        .group_by("column", "check", maintain_order=True)
        .agg(pl.len().alias("n"), pl.col("failure_case").head(EXAMPLE_ROWS), pl.col("index").head(EXAMPLE_ROWS))
    )
    for row in grouped.iter_rows(named=True):
        lines.append(
            f"  column {row['column']!r} rule {row['check']!r}: {row['n']} failing; "
            f"examples {row['failure_case']} at rows {row['index']}"
        )
    return "\n".join(lines)


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
        return data.lazyframe.select(pl.all_horizontal(pl.exclude(c.DATE, c.TICKER).is_finite()).alias("finite"))


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


class BarrierProbabilitiesSchema(pa.DataFrameModel):
    """Seed 002's primary model, tabular: out-of-fold probability that the upper triple barrier is touched first."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    barrier_probability: pl.Float64 = pa.Field(ge=0, le=1)
    hits_upper: pl.Int8 = pa.Field(isin=[0, 1], description="1 if the upper barrier was touched first.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]


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
        return data.lazyframe.select(pl.all_horizontal(pl.col(pl.Float64).is_finite().fill_null(True)).alias("finite"))


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
        return data.lazyframe.select((pl.col("fit_end") < pl.col(c.DATE)).alias("fitted_before"))

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
        return data.lazyframe.select((pl.col("fit_end") < pl.col(c.DATE)).alias("fitted_before"))



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


# --- Issue 12: the TFT's interpretation -------------------------------------------------------------


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


# --- Issue 10: hyper-parameter search trials ---------------------------------------------------------


class HyperparameterTrialsSchema(pa.DataFrameModel):
    """One row per trial of a search on purged folds of the research span (compute/models/tuning.py)."""

    trial: pl.Int64 = pa.Field(ge=0, unique=True)
    state: pl.String = pa.Field(isin=["complete", "pruned"])
    mean_log_loss: pl.Float64 = pa.Field(ge=0, nullable=True, description="Mean over its folds; null when pruned.")
    folds_evaluated: pl.Int64 = pa.Field(ge=0)
    fold_log_losses: pl.String = pa.Field(description="JSON list: the log loss of every fold evaluated, in order.")
    params: pl.String = pa.Field(description="JSON object: the trial's parameters.")
    is_default: pl.Boolean = pa.Field(description="The seed's default configuration (trial 0).")

    class Config:
        strict = True


# --- issue 8: invariant deep-hedging study (seed 000) ---------------------------------------------------


class HedgingPathsSchema(pa.DataFrameModel):
    """One simulated environment: spot and cost rate per path and step (compute/hedging/environments.py)."""

    environment: pl.String
    path: pl.Int32 = pa.Field(ge=0)
    step: pl.Int32 = pa.Field(ge=0)
    spot: pl.Float64 = pa.Field(gt=0, description="Underlying price at the step's close.")
    cost_rate: pl.Float64 = pa.Field(ge=0, description="Proportional cost of a trade at the step (squeezes multiply it).")
    premium: pl.Float64 = pa.Field(gt=0, description="The call's price at t = 0 (Black-Scholes at the diffusion vol).")

    class Config:
        strict = True


class HedgePolicySchema(pa.DataFrameModel):
    """One trained policy: the selected checkpoint and what it saw (compute/hedging/training.py)."""

    policy: pl.String = pa.Field(unique=True)
    method: pl.String = pa.Field(isin=["erm", "irm_head", "vrex"])
    strength: pl.Float64 = pa.Field(ge=0)
    seed: pl.Int64 = pa.Field(ge=0)
    state: pl.Binary = pa.Field(description="torch.save of the selected state_dict.")
    state_sha: pl.String
    erm_state_sha: pl.String = pa.Field(nullable=True, description="irm_head: the ERM checkpoint it started from.")
    best_iteration: pl.Int64 = pa.Field(ge=0)
    validation_cvar: pl.Float64 = pa.Field(description="CVaR-95 on `high` of the selected checkpoint.")
    seen_environments: pl.String = pa.Field(description="JSON {environment: fingerprint} of training + selection data.")
    history: pl.String = pa.Field(description="JSON rows: iteration, objective, penalty, per-environment risk, validation CVaR.")
    config_hash: pl.String

    class Config:
        strict = True


class HedgingMetricsSchema(pa.DataFrameModel):
    """Per policy x environment evaluation (compute/hedging/evaluation.py); null where undefined."""

    policy: pl.String
    method: pl.String
    strength: pl.Float64
    seed: pl.Int64
    environment: pl.String
    cvar95: pl.Float64
    var95: pl.Float64
    mean_pnl: pl.Float64
    std_pnl: pl.Float64 = pa.Field(ge=0)
    sharpe: pl.Float64 = pa.Field(nullable=True)
    turnover: pl.Float64 = pa.Field(ge=0)
    msi: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)

    class Config:
        strict = True


# --- issue 10: seed 001's multi-horizon quantile forecaster -------------------------------------------
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


class TbmProbabilitiesSchema(pa.DataFrameModel):
    """Seed 002's triple-barrier classifier on sequence windows (focal loss): out-of-fold P(upper barrier first)."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    tbm_probability: pl.Float64 = pa.Field(ge=0, le=1)
    hits_upper: pl.Int8 = pa.Field(isin=[0, 1], description="1 if the upper barrier was touched first.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]


# --- Masked encoder and embeddings (issue 12, seed 003 phase 3) ---------------------------------------


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


# --- issue 10: seed 002's supervised-contrastive encoder and its linear probe ---------------------------


class SupconCurveSchema(pa.DataFrameModel):
    """Per walk-forward fold and epoch of SupCon pre-training: mean training and validation SupCon loss."""

    fold_id: pl.Int64 = pa.Field(ge=0)
    epoch: pl.Int64 = pa.Field(ge=0)
    train_loss: pl.Float64 = pa.Field(ge=0, nullable=True)
    val_loss: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["fold_id", "epoch"]


class SupconProbabilitiesSchema(pa.DataFrameModel):
    """Out-of-fold P(upper barrier first) of a linear probe on a fold's SupCon-pre-trained encoder."""

    date: pl.Date
    ticker: pl.String
    fold_id: pl.Int64 = pa.Field(ge=0)
    supcon_probability: pl.Float64 = pa.Field(ge=0, le=1)
    hits_upper: pl.Int8 = pa.Field(isin=[0, 1], description="1 if the upper barrier was touched first.")

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]
