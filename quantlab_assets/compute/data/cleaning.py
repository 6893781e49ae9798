"""The cleaning pipeline: raw bars in, total-return-adjusted cleaned bars and a quarantine of every rejected
or flagged row out.

Rules, in the order they are applied (the first that fires names the row's fate):

Row rules (the row is *rejected*: kept in the quarantine, absent from cleaned bars)
  unparseable_value   the source could not parse a field (CSV text where a number belongs)
  missing_key         no date or no ticker
  unknown_instrument  ticker not in the universe
  non_trading_day     a weekend or a listed holiday of the universe's calendar
  future_date         dated after `as_of` (a vendor's timestamp bug, or a clock problem)
  missing_close       no close (or NaN)
  non_positive_price  open/high/low/close <= 0
  invalid_adj_close   adj_close missing, NaN or <= 0 in a file that delivers adjusted closes (a one-day
                      hole in the adjusted series: its return cannot be known)
  ohlc_inconsistent   high < max(open, close), low > min(open, close) or low > high
  negative_volume     volume < 0
  duplicate_key       a second row for the same (date, ticker) that passes every rule above; the first
                      received is kept (a broken first copy is rejected by its own rule instead)

Total-return adjustment
  Every money figure downstream (labels, features, FFD, barriers, P&L) reads cleaned bars, so they are
  adjusted here, once. Per row, adj_factor = adj_close / close where the row's file delivers adjusted
  closes; open, high, low and close are multiplied by it and volume is divided by it (split-continuous
  share volume: close * volume stays the traded dollar volume), and log_return is taken from the
  adjusted close. `raw_close` keeps the close as the source reported it. A file with no adjusted close
  at all is read through the universe's `close_is_adjusted` key: true, the close already is the total-
  return price (factor 1); false, the close is a raw traded price, booked as it is (price returns:
  dividends are missing) except that a one-day move by a common split ratio stops the run, naming the
  instrument, date, file and row, since it cannot be told from an unadjusted split; undeclared, the run
  stops with a configuration error instead of guessing.

Series rules (per instrument, over the universe's trading calendar)
  reverted_spike      a received bar whose return lies beyond `outlier_sigma` robust sigmas and whose next
                      received bar undoes at least `reversion_share` of it with a return of opposite sign
                      (|r_t + r_t+1| <= (1 - reversion_share) * |r_t|) is a bad print: *rejected*, and the
                      day is then forward-filled like any missing day. This rule looks one bar ahead, on
                      purpose: a bad print is a fact about the data, not a forecast, and it can only be
                      recognised once the next bar shows the price never went there. The newest bar of an
                      instrument has no next bar yet: it stays (flagged by return_outlier if beyond the
                      bound) until a later cleaning sees the bar after it.
  forward fill        a missing day within `ffill_limit` days of the last good bar is filled with the
                      last close (open = high = low = close, volume 0, `is_filled`); longer gaps stay gaps
  return_outlier      a log return beyond `outlier_sigma` robust sigmas is *flagged* (`is_outlier`, and a
                      quarantine row with action "flagged"); the return stays exactly as it happened: a
                      real crash is never rewritten
  adj_factor_jump     adj_factor moves by more than `max_factor_step` (in log) while the adjusted return
                      is larger than half that move, i.e. the traded price did not move the opposite way
                      as it does on a split or an ex-dividend day: a vendor adjustment error, *flagged*
  insufficient_history  fewer than `min_history_days` trading days since the instrument's first bar
  high_missing_share  more than `max_missing_share` of the last `missing_window_days` days had no bar
                      (both *drop* the row: the instrument is not yet, or no longer, fit to trade)

The outlier yardstick and the history and missing-share rules use data up to t only (a causal version of
the seed's "remove instruments with < 252 days / > 20 % missing"): deciding on the whole sample would use
the future, e.g. keep an instrument because it later turns out to have a long clean history.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.quality import OHLC_RELATIVE_TOLERANCE
from quantlab_assets.compute.data.raw import RAW_SCHEMA
from quantlab_assets.compute.universe import UniverseConfigError


@dataclass(frozen=True)
class CleaningParams:
    """The seed's cleaning parameters (seed 003, CleaningConfig)."""

    ffill_limit: int = 5
    outlier_sigma: float = 10.0
    min_history_days: int = 252
    max_missing_share: float = 0.20
    missing_window_days: int = 252
    # The outlier yardstick is the larger of two robust (median-absolute-return) scales: a short one
    # that widens within days when a genuine volatility regime arrives, and a long one that a run of
    # calm days cannot shrink. A data spike cannot inflate either (medians ignore it).
    # A bar beyond the outlier bound is a bad print when the next bar undoes at least this share of it
    # (None: no bar is judged a bad print, every outlier is only flagged).
    reversion_share: float | None = 0.9
    # A log move of adj_factor larger than this, not offset by the traded price, is flagged.
    max_factor_step: float = 0.1
    short_sigma_window: int = 21
    long_sigma_window: int = 252
    min_sigma_observations: int = 10
    # Relative tolerance of the OHLC rules: vendors round high/low and close independently.
    ohlc_tolerance: float = OHLC_RELATIVE_TOLERANCE


DUPLICATE_KEY = "duplicate_key"
ROW_RULES = (
    "unparseable_value",
    "missing_key",
    "unknown_instrument",
    "non_trading_day",
    "future_date",
    "missing_close",
    "non_positive_price",
    "invalid_adj_close",
    "ohlc_inconsistent",
    "negative_volume",
    DUPLICATE_KEY,
)
REVERTED_SPIKE = "reverted_spike"
RETURN_OUTLIER = "return_outlier"
ADJ_FACTOR_JUMP = "adj_factor_jump"
SERIES_RULES = (REVERTED_SPIKE, RETURN_OUTLIER, ADJ_FACTOR_JUMP, "insufficient_history", "high_missing_share")
# Rules whose rows are absent from cleaned bars because the row itself is wrong.
REJECTING_RULES = (*ROW_RULES, REVERTED_SPIKE)
ACTION_REJECTED = "rejected"
ACTION_FLAGGED = "flagged"
ACTION_DROPPED = "dropped"
# One-day price ratios that a split (or reverse split) of these ratios produces, and how far (in log)
# a split day's own move may take the ratio off them.
SPLIT_RATIOS = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0)
SPLIT_RATIO_TOLERANCE = 0.03

# Order in which rows were received: the first of duplicate rows wins.
ARRIVAL = "_arrival"
# Whether the row's file delivers adjusted closes (any non-null adj_close in it).
FILE_ADJUSTED = "_file_adjusted"
# 1.4826 * median(|x|) estimates sigma for a Gaussian with zero median.
MAD_TO_SIGMA = 1.4826

CLEANED_COLUMNS = (
    c.DATE, c.TICKER, c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.VOLUME, c.LOG_RETURN, c.RAW_CLOSE, c.ADJ_FACTOR,
    c.IS_FILLED, c.IS_OUTLIER,
)
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in RAW_SCHEMA.items() if name != c.PARSE_ERROR},
    c.RULE: pl.String(),
    c.ACTION: pl.String(),
    c.DETAIL: pl.String(),
}


class UnadjustedSplitError(ValueError):
    """Raw closes (close_is_adjusted: false, no adjusted column) move by a split ratio in one day."""


@dataclass(frozen=True)
class CleaningResult:
    """Cleaned bars and quarantine for the target window, and per-rule counts for asset metadata."""

    cleaned: pl.DataFrame
    quarantine: pl.DataFrame
    rule_counts: dict[str, int]
    raw_rows: int
    filled_rows: int
    raw_rows_by_month: dict[str, int]

    @property
    def rejected_share(self) -> float:
        """Share of the window's raw rows that were rejected outright (flagged/dropped rows excluded)."""
        rejected = sum(self.rule_counts.get(rule, 0) for rule in REJECTING_RULES)
        return rejected / self.raw_rows if self.raw_rows else 0.0

    def rejected_share_by_month(self) -> dict[str, float]:
        """Rejected share per calendar month ('YYYY-MM'): one bad month must not hide in a long window."""
        rejected = (
            self.quarantine.filter(pl.col(c.ACTION) == ACTION_REJECTED)
            .group_by(pl.col(c.DATE).dt.strftime("%Y-%m").alias("month"))
            .len()
        )
        counts = dict(zip(rejected["month"].to_list(), rejected["len"].to_list(), strict=True))
        return {month: counts.get(month, 0) / rows for month, rows in self.raw_rows_by_month.items() if rows}


def _row_rule_expr(universe_tickers: pl.Series, holidays: Iterable[dt.date], as_of: dt.date,
                   tolerance: float) -> pl.Expr:
    prices = [pl.col(name) for name in c.PRICE_COLUMNS]
    upper = pl.max_horizontal(pl.col(c.OPEN), pl.col(c.CLOSE)) * (1 - tolerance)
    lower = pl.min_horizontal(pl.col(c.OPEN), pl.col(c.CLOSE)) * (1 + tolerance)
    ohlc_broken = (
        (pl.col(c.HIGH) < upper) | (pl.col(c.LOW) > lower) | (pl.col(c.LOW) > pl.col(c.HIGH) * (1 + tolerance))
    ).fill_null(False)
    conditions = (
        pl.col(c.PARSE_ERROR).is_not_null(),
        pl.col(c.DATE).is_null() | pl.col(c.TICKER).is_null(),
        ~pl.col(c.TICKER).is_in(universe_tickers.implode()),
        (pl.col(c.DATE).dt.weekday() > 5) | pl.col(c.DATE).is_in(pl.lit(list(holidays), dtype=pl.List(pl.Date))),
        pl.col(c.DATE) > as_of,
        pl.col(c.CLOSE).is_null(),
        pl.any_horizontal(p <= 0 for p in prices).fill_null(False),
        pl.col(FILE_ADJUSTED) & ~(pl.col(c.ADJ_CLOSE) > 0).fill_null(False),
        ohlc_broken,
        (pl.col(c.VOLUME) < 0).fill_null(False),
    )
    own_rules = [rule for rule in ROW_RULES if rule != DUPLICATE_KEY]
    own = pl.lit(None, dtype=pl.String)
    for rule, condition in reversed(list(zip(own_rules, conditions, strict=True))):
        own = pl.when(condition).then(pl.lit(rule)).otherwise(own)
    return own.alias(c.RULE)


def _duplicate_rule_expr() -> pl.Expr:
    """Among the rows no other rule rejects, the first received for a (date, ticker) is kept.

    A broken first copy therefore does not cost the day its valid second copy. Rows are in arrival
    order; `is_first_distinct` over the valid rows' keys is one hash pass (a grouped count over
    millions of (date, ticker) groups costs minutes).
    """
    valid = pl.col(c.RULE).is_null()
    later_copy = valid & ~pl.when(valid).then(pl.struct(c.DATE, c.TICKER)).is_first_distinct()
    return pl.when(later_copy).then(pl.lit(DUPLICATE_KEY)).otherwise(pl.col(c.RULE)).alias(c.RULE)


def _shown(name: str) -> pl.Expr:
    """A value as text for a detail message; pl.format would turn the whole message null on a null."""
    return pl.col(name).cast(pl.String).fill_null("null")


def _row_detail_expr() -> pl.Expr:
    return (
        pl.when(pl.col(c.RULE) == "unparseable_value").then(pl.col(c.PARSE_ERROR))
        .when(pl.col(c.RULE).is_in(["non_positive_price", "ohlc_inconsistent", "missing_close"]))
        .then(pl.format("open={} high={} low={} close={}", *[_shown(name) for name in c.PRICE_COLUMNS]))
        .when(pl.col(c.RULE) == "invalid_adj_close")
        .then(pl.format("adj_close={} close={} in a file that delivers adjusted closes", _shown(c.ADJ_CLOSE), _shown(c.CLOSE)))
        .when(pl.col(c.RULE) == "negative_volume").then(pl.format("volume={}", _shown(c.VOLUME)))
        .when(pl.col(c.RULE) == DUPLICATE_KEY).then(pl.lit("a valid row for this (date, ticker) was received earlier"))
        .otherwise(pl.col(c.RULE))
        .alias(c.DETAIL)
    )


def clean_bars(
    raw: pl.DataFrame,
    universe_tickers: Iterable[str],
    *,
    window: tuple[dt.date, dt.date],
    as_of: dt.date,
    params: CleaningParams = CleaningParams(),
    holidays: Iterable[dt.date] = (),
    close_is_adjusted: bool | None = None,
    universe: str = "the universe",
) -> CleaningResult:
    """Clean `raw` (the target window plus any lookback before it) and return the target window.

    `raw` follows RAW_SCHEMA. Rows before `window[0]` are history for the series rules (forward fill,
    outlier scale, history length, missing share); only rows dated inside `window` are returned.
    `close_is_adjusted` is the universe's declaration for files without an adjusted close (see the
    module docstring); `universe` names the universe (and its YAML) in the errors about it.
    """
    first_day, last_day = window
    tickers = pl.Series(c.TICKER, list(universe_tickers), dtype=pl.String)
    holidays = list(holidays)
    # rechunk: polars 2.1 panics ("assertion failed: i < self.len()") on the row rules over a frame
    # concatenated from many Parquet files; one contiguous copy avoids it and costs milliseconds.
    raw = raw.rechunk().with_row_index(ARRIVAL).with_columns(pl.col(name).fill_nan(None) for name in c.BAR_COLUMNS)
    raw = raw.with_columns(pl.col(c.ADJ_CLOSE).is_not_null().any().over(c.SOURCE_FILE).alias(FILE_ADJUSTED))
    judged = raw.with_columns(_row_rule_expr(tickers, holidays, as_of, params.ohlc_tolerance))
    judged = judged.with_columns(_duplicate_rule_expr())  # rows are in arrival order
    rejected = judged.filter(pl.col(c.RULE).is_not_null()).with_columns(
        _row_detail_expr(), pl.lit(ACTION_REJECTED).alias(c.ACTION)
    )
    valid = judged.filter(pl.col(c.RULE).is_null()).drop(c.RULE, c.PARSE_ERROR, ARRIVAL)
    valid = _with_adjustment_factor(valid, close_is_adjusted, universe)
    spikes, valid = _split_reverted_spikes(valid, params) if params.reversion_share is not None else (valid.clear(), valid)
    if close_is_adjusted is False:
        _refuse_unadjusted_splits(valid, params, universe)

    series = _series_on_calendar(valid, params)
    outliers, factor_jumps, dropped, cleaned = _apply_series_rules(series, params)

    in_window = pl.col(c.DATE).is_between(first_day, last_day, closed="both")
    # A rejected row with no date cannot belong to any window: sources refuse to emit those.
    quarantine = pl.concat(
        [
            frame.filter(in_window).select(
                pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
                for name, dtype in QUARANTINE_SCHEMA.items()
            )
            for frame in (rejected, spikes, outliers, factor_jumps, dropped)
        ]
    ).sort(c.DATE, c.TICKER, c.SOURCE_ROW, nulls_last=True)
    counts = quarantine.group_by(c.RULE).len()
    rule_counts = {rule: 0 for rule in ROW_RULES + SERIES_RULES}
    rule_counts.update(dict(zip(counts[c.RULE].to_list(), counts["len"].to_list(), strict=True)))
    window_cleaned = cleaned.filter(in_window).select(CLEANED_COLUMNS).sort(c.DATE, c.TICKER)
    return CleaningResult(
        cleaned=window_cleaned,
        quarantine=quarantine,
        rule_counts=rule_counts,
        raw_rows=raw.filter(in_window).height,
        raw_rows_by_month=dict(
            raw.filter(in_window).group_by(pl.col(c.DATE).dt.strftime("%Y-%m").alias("month")).len().sort("month").iter_rows()
        ),
        filled_rows=int(window_cleaned[c.IS_FILLED].sum()),
    )


def _with_adjustment_factor(valid: pl.DataFrame, close_is_adjusted: bool | None, universe: str) -> pl.DataFrame:
    """`valid` with adj_factor: adj_close / close where the file has adjusted closes, else 1 as declared."""
    if close_is_adjusted is None:
        unadjusted = valid.filter(~pl.col(FILE_ADJUSTED))
        if unadjusted.height:
            first = unadjusted.row(0, named=True)
            files = sorted(set(unadjusted[c.SOURCE_FILE].to_list()))
            raise UniverseConfigError(
                f"{universe}: {unadjusted.height} bar(s) come without an adjusted close (e.g. {first[c.TICKER]} "
                f"{first[c.DATE]}, {first[c.SOURCE_FILE]} row {first[c.SOURCE_ROW]}; files {files[:3]}) and the "
                "universe does not declare close_is_adjusted: set it to true if these closes are already "
                "split- and dividend-adjusted, to false if they are raw traded prices, or map an adj_close column"
            )
    factor = pl.when(pl.col(FILE_ADJUSTED)).then(pl.col(c.ADJ_CLOSE) / pl.col(c.CLOSE)).otherwise(pl.lit(1.0))
    return valid.with_columns(factor.alias(c.ADJ_FACTOR))


def _adjusted_return() -> pl.Expr:
    """ln(adjusted close_t / adjusted close_prev) over the frame's row order (call with .over(ticker))."""
    adjusted = pl.col(c.CLOSE) * pl.col(c.ADJ_FACTOR)
    return (adjusted / adjusted.shift(1)).log()


def _received_returns(valid: pl.DataFrame, params: CleaningParams) -> pl.DataFrame:
    """`valid` by (ticker, date) with each received bar's adjusted return and its outlier yardstick.

    Received bars, not the calendar grid: a day filled after a spike would repeat the spike's price and
    hide its reversal on the next received bar.
    """
    ordered = valid.sort(c.TICKER, c.DATE).with_columns(_adjusted_return().over(c.TICKER).alias("raw_return"))
    return ordered.with_columns(_outlier_bound(pl.col("raw_return"), params).over(c.TICKER).alias("sigma"))


def _split_reverted_spikes(valid: pl.DataFrame, params: CleaningParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(quarantine rows of reverted spikes, the valid rows without them), judged on received bars only."""
    ordered = _received_returns(valid, params).with_columns(
        pl.col("raw_return").shift(-1).over(c.TICKER).alias("next_return")
    )
    beyond = pl.col("raw_return").abs() > params.outlier_sigma * pl.col("sigma")
    undone = (pl.col("raw_return") + pl.col("next_return")).abs() <= (1 - params.reversion_share) * pl.col("raw_return").abs()
    reverted = (beyond & (pl.col("raw_return") * pl.col("next_return") < 0) & undone).fill_null(False)
    ordered = ordered.with_columns(reverted.alias("reverted"))
    spikes = ordered.filter("reverted").with_columns(
        pl.lit(REVERTED_SPIKE).alias(c.RULE),
        pl.lit(ACTION_REJECTED).alias(c.ACTION),
        pl.format(
            "log_return {} beyond {} x robust sigma {}, undone by {} on the next bar",
            pl.col("raw_return").round(6), pl.lit(params.outlier_sigma), pl.col("sigma").round(6), pl.col("next_return").round(6),
        ).alias(c.DETAIL),
    )
    return spikes, ordered.filter(~pl.col("reverted")).select(valid.columns)


def _refuse_unadjusted_splits(valid: pl.DataFrame, params: CleaningParams, universe: str) -> None:
    """Raise if raw closes (no adjusted column) move by a split ratio beyond the outlier bound in one day."""
    ordered = _received_returns(valid, params)
    size = pl.col("raw_return").abs()
    split_like = pl.any_horizontal((size - math.log(ratio)).abs() <= SPLIT_RATIO_TOLERANCE for ratio in SPLIT_RATIOS)
    suspects = ordered.filter(
        ~pl.col(FILE_ADJUSTED) & (size > params.outlier_sigma * pl.col("sigma")).fill_null(False) & split_like
    )
    if suspects.height:
        listed = "; ".join(
            f"{row[c.TICKER]} {row[c.DATE]} (close x {math.exp(row['raw_return']):.4f}, {row[c.SOURCE_FILE]} row {row[c.SOURCE_ROW]})"
            for row in suspects.head(5).iter_rows(named=True)
        )
        raise UnadjustedSplitError(
            f"{universe} declares close_is_adjusted: false and has no adjusted close, yet {suspects.height} bar(s) "
            f"move by a split ratio in one day: {listed}. Supply split-adjusted closes (an adj_close column) "
            "or remove the bars around the split"
        )


def _series_on_calendar(valid: pl.DataFrame, params: CleaningParams) -> pl.DataFrame:
    """Place each instrument's valid bars on the universe's trading calendar and forward-fill short gaps.

    The calendar is the set of dates on which any instrument of the universe has a valid bar. Each
    instrument's grid runs from its first valid bar to the calendar's last day, so a gap right after an
    instrument's last bar is filled up to the limit exactly as a live system would (it cannot know yet
    that the instrument stopped trading). Prices stay as received here; a filled day repeats the last
    close and the last adjustment factor.
    """
    calendar = valid.select(pl.col(c.DATE).unique().sort())
    first_seen = valid.group_by(c.TICKER).agg(pl.col(c.DATE).min().alias("first_seen"))
    grid = (
        first_seen.join(calendar, how="cross")
        .filter(pl.col(c.DATE) >= pl.col("first_seen"))
        .drop("first_seen")
        .join(valid, on=[c.DATE, c.TICKER], how="left")
        .sort(c.TICKER, c.DATE)
    )
    position = pl.int_range(pl.len()).over(c.TICKER)
    observed = pl.col(c.CLOSE).is_not_null()
    grid = grid.with_columns(
        observed.alias("observed"),
        position.alias("position"),
        pl.when(observed).then(position).otherwise(None).forward_fill().over(c.TICKER).alias("last_observed"),
    )
    gap_length = pl.col("position") - pl.col("last_observed")
    last_close = pl.col(c.CLOSE).forward_fill().over(c.TICKER)
    fillable = ~pl.col("observed") & (gap_length <= params.ffill_limit)
    return grid.with_columns(
        fillable.alias(c.IS_FILLED),
        *[pl.when(fillable).then(last_close).otherwise(pl.col(name)).alias(name) for name in c.PRICE_COLUMNS],
        pl.when(fillable).then(pl.col(c.ADJ_FACTOR).forward_fill().over(c.TICKER)).otherwise(pl.col(c.ADJ_FACTOR)).alias(c.ADJ_FACTOR),
        pl.when(fillable).then(pl.lit(0.0)).otherwise(pl.col(c.VOLUME)).alias(c.VOLUME),
    )


def _robust_sigma(log_return: pl.Expr, window: int, min_samples: int) -> pl.Expr:
    """Sigma of the returns *before* t (the yardstick never includes the return it judges).

    MAD-based, so a data spike cannot inflate it. Where most past returns are exactly zero (stale or
    illiquid prices) the MAD is 0 and would flag every real move: there the plain standard deviation
    of the same window is used, and where that is 0 too the scale is unknown (null: no flag).
    """
    past = log_return.shift(1)
    robust = MAD_TO_SIGMA * past.abs().rolling_median(window, min_samples=min_samples)
    plain = past.rolling_std(window, min_samples=min_samples)
    return pl.when(robust > 0).then(robust).when(plain > 0).then(plain).otherwise(None)


def _outlier_bound(log_return: pl.Expr, params: CleaningParams) -> pl.Expr:
    """The outlier yardstick (one sigma; the bound is `outlier_sigma` of it); call with .over(ticker)."""
    return pl.max_horizontal(
        _robust_sigma(log_return, params.short_sigma_window, params.min_sigma_observations),
        _robust_sigma(log_return, params.long_sigma_window, params.min_sigma_observations),
    )


def _apply_series_rules(series: pl.DataFrame, params: CleaningParams) -> tuple[pl.DataFrame, ...]:
    """Return (outlier quarantine rows, factor-jump quarantine rows, dropped quarantine rows, cleaned rows)."""
    kept = series.filter(pl.col("observed") | pl.col(c.IS_FILLED))
    factor_step = (pl.col(c.ADJ_FACTOR) / pl.col(c.ADJ_FACTOR).shift(1)).log()
    kept = kept.with_columns(
        _adjusted_return().over(c.TICKER).alias(c.LOG_RETURN), factor_step.over(c.TICKER).alias("factor_step")
    )
    kept = kept.with_columns(_outlier_bound(pl.col(c.LOG_RETURN), params).over(c.TICKER).alias("sigma"))
    is_outlier = (pl.col(c.LOG_RETURN).abs() > params.outlier_sigma * pl.col("sigma")).fill_null(False)  # unknown scale: no flag
    unexplained = (pl.col("factor_step").abs() > params.max_factor_step) & (
        pl.col(c.LOG_RETURN).abs() > 0.5 * pl.col("factor_step").abs()
    )
    kept = kept.with_columns(is_outlier.alias(c.IS_OUTLIER), unexplained.fill_null(False).alias("factor_jump"))

    # Causal eligibility on the full calendar grid (gaps count as missing days).
    eligibility = series.select(
        c.DATE,
        c.TICKER,
        (pl.col("position") + 1).alias("history_days"),
        (1.0 - pl.col("observed").cast(pl.Float64).rolling_mean(params.missing_window_days, min_samples=1))
        .over(c.TICKER)
        .alias("missing_share"),
    )
    kept = kept.join(eligibility, on=[c.DATE, c.TICKER], how="left")
    drop_rule = (
        pl.when(pl.col("history_days") < params.min_history_days).then(pl.lit("insufficient_history"))
        .when(pl.col("missing_share") > params.max_missing_share).then(pl.lit("high_missing_share"))
        .otherwise(None)
    )
    kept = kept.with_columns(drop_rule.alias(c.RULE))

    retained = pl.col(c.RULE).is_null()
    outliers = kept.filter(pl.col(c.IS_OUTLIER) & retained).with_columns(
        pl.lit(RETURN_OUTLIER).alias(c.RULE),
        pl.lit(ACTION_FLAGGED).alias(c.ACTION),
        pl.format(
            "log_return {} beyond {} x robust sigma {} (kept as it happened)",
            pl.col(c.LOG_RETURN).round(6), pl.lit(params.outlier_sigma), pl.col("sigma").round(6),
        ).alias(c.DETAIL),
    )
    factor_jumps = kept.filter(pl.col("factor_jump") & retained).with_columns(
        pl.lit(ADJ_FACTOR_JUMP).alias(c.RULE),
        pl.lit(ACTION_FLAGGED).alias(c.ACTION),
        pl.format(
            "adj_factor moved by {} (log) while the adjusted log_return is {}: not offset by the traded price",
            pl.col("factor_step").round(6), pl.col(c.LOG_RETURN).round(6),
        ).alias(c.DETAIL),
    )
    # Filled rows were never received, so dropping one loses nothing worth quarantining.
    dropped = kept.filter(pl.col(c.RULE).is_not_null() & pl.col("observed")).with_columns(
        pl.lit(ACTION_DROPPED).alias(c.ACTION),
        pl.format("history_days={} missing_share={}", "history_days", pl.col("missing_share").round(4)).alias(c.DETAIL),
    )
    cleaned = kept.filter(retained).with_columns(
        pl.col(c.CLOSE).alias(c.RAW_CLOSE),
        *[(pl.col(name) * pl.col(c.ADJ_FACTOR)).alias(name) for name in c.PRICE_COLUMNS],
        (pl.col(c.VOLUME) / pl.col(c.ADJ_FACTOR)).alias(c.VOLUME),
    )
    return outliers, factor_jumps, dropped, cleaned
