"""The cleaning pipeline: raw bars in, cleaned bars and a quarantine of every rejected or changed row out.

Rules, in the order they are applied (the first that fires names the row's fate):

Row rules (the row is *rejected*: kept in the quarantine, absent from cleaned bars)
  unparseable_value   the source could not parse a field (CSV text where a number belongs)
  missing_key         no date or no ticker
  unknown_instrument  ticker not in the universe
  non_trading_day     a weekend or a listed holiday of the universe's calendar
  future_date         dated after `as_of` (a vendor's timestamp bug, or a clock problem)
  missing_close       no close (or NaN)
  non_positive_price  open/high/low/close <= 0
  ohlc_inconsistent   high < max(open, close), low > min(open, close) or low > high
  negative_volume     volume < 0
  duplicate_key       a second row for the same (date, ticker) that passes every rule above; the first
                      received is kept (a broken first copy is rejected by its own rule instead)

Series rules (per instrument, over the universe's trading calendar; each uses data up to t only)
  forward fill        a missing day within `ffill_limit` days of the last good bar is filled with the
                      last close (open = high = low = close, volume 0, `is_filled`); longer gaps stay gaps
  return_outlier      a log return beyond `outlier_sigma` robust sigmas is *capped* (`is_capped`); the
                      row stays, the quarantine records the original and capped return
  insufficient_history  fewer than `min_history_days` trading days since the instrument's first bar
  high_missing_share  more than `max_missing_share` of the last `missing_window_days` days had no bar
                      (both *drop* the row: the instrument is not yet, or no longer, fit to trade)

The history and missing-share rules are evaluated per date (a causal version of the seed's
"remove instruments with < 252 days / > 20 % missing"): deciding on the whole sample would use the
future, e.g. keep an instrument because it later turns out to have a long clean history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.quality import OHLC_RELATIVE_TOLERANCE
from quantlab_assets.compute.data.raw import RAW_SCHEMA


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
    "ohlc_inconsistent",
    "negative_volume",
    DUPLICATE_KEY,
)
SERIES_RULES = ("return_outlier", "insufficient_history", "high_missing_share")
ACTION_REJECTED = "rejected"
ACTION_CAPPED = "capped"
ACTION_DROPPED = "dropped"

# Order in which rows were received: the first of duplicate rows wins.
ARRIVAL = "_arrival"
# 1.4826 * median(|x|) estimates sigma for a Gaussian with zero median.
MAD_TO_SIGMA = 1.4826

CLEANED_COLUMNS = (
    c.DATE, c.TICKER, c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.ADJ_CLOSE, c.VOLUME, c.LOG_RETURN, c.IS_FILLED,
    c.IS_CAPPED,
)
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in RAW_SCHEMA.items() if name != c.PARSE_ERROR},
    c.RULE: pl.String(),
    c.ACTION: pl.String(),
    c.DETAIL: pl.String(),
}


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
        """Share of the window's raw rows that were rejected outright (capped/dropped rows excluded)."""
        rejected = sum(self.rule_counts.get(rule, 0) for rule in ROW_RULES)
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
) -> CleaningResult:
    """Clean `raw` (the target window plus any lookback before it) and return the target window.

    `raw` follows RAW_SCHEMA. Rows before `window[0]` are history for the series rules (forward fill,
    outlier scale, history length, missing share); only rows dated inside `window` are returned.
    """
    first_day, last_day = window
    tickers = pl.Series(c.TICKER, list(universe_tickers), dtype=pl.String)
    holidays = list(holidays)
    # rechunk: polars 2.1 panics ("assertion failed: i < self.len()") on the row rules over a frame
    # concatenated from many Parquet files; one contiguous copy avoids it and costs milliseconds.
    raw = raw.rechunk().with_row_index(ARRIVAL).with_columns(pl.col(name).fill_nan(None) for name in c.BAR_COLUMNS)
    judged = raw.with_columns(_row_rule_expr(tickers, holidays, as_of, params.ohlc_tolerance))
    judged = judged.with_columns(_duplicate_rule_expr())  # rows are in arrival order
    rejected = judged.filter(pl.col(c.RULE).is_not_null()).with_columns(
        _row_detail_expr(), pl.lit(ACTION_REJECTED).alias(c.ACTION)
    )
    valid = judged.filter(pl.col(c.RULE).is_null()).drop(c.RULE, c.PARSE_ERROR, ARRIVAL)

    series = _series_on_calendar(valid, params)
    outliers, dropped, cleaned = _apply_series_rules(series, params)

    in_window = pl.col(c.DATE).is_between(first_day, last_day, closed="both")
    # A rejected row with no date cannot belong to any window: sources refuse to emit those.
    quarantine = pl.concat(
        [
            frame.filter(in_window).select(
                pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
                for name, dtype in QUARANTINE_SCHEMA.items()
            )
            for frame in (rejected, outliers, dropped)
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


def _series_on_calendar(valid: pl.DataFrame, params: CleaningParams) -> pl.DataFrame:
    """Place each instrument's valid bars on the universe's trading calendar and forward-fill short gaps.

    The calendar is the set of dates on which any instrument of the universe has a valid bar. Each
    instrument's grid runs from its first valid bar to the calendar's last day, so a gap right after an
    instrument's last bar is filled up to the limit exactly as a live system would (it cannot know yet
    that the instrument stopped trading).
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
        pl.when(fillable).then(pl.col(c.ADJ_CLOSE).forward_fill().over(c.TICKER)).otherwise(pl.col(c.ADJ_CLOSE)).alias(c.ADJ_CLOSE),
        pl.when(fillable).then(pl.lit(0.0)).otherwise(pl.col(c.VOLUME)).alias(c.VOLUME),
    )


def _robust_sigma(log_return: pl.Expr, window: int, min_samples: int) -> pl.Expr:
    """Sigma of the returns *before* t (the yardstick never includes the return it judges).

    MAD-based, so a data spike cannot inflate it. Where most past returns are exactly zero (stale or
    illiquid prices) the MAD is 0 and would "cap" every real move to nothing: there the plain standard
    deviation of the same window is used, and where that is 0 too the scale is unknown (null: no cap).
    """
    past = log_return.shift(1)
    robust = MAD_TO_SIGMA * past.abs().rolling_median(window, min_samples=min_samples)
    plain = past.rolling_std(window, min_samples=min_samples)
    return pl.when(robust > 0).then(robust).when(plain > 0).then(plain).otherwise(None)


def _apply_series_rules(series: pl.DataFrame, params: CleaningParams) -> tuple[pl.DataFrame, ...]:
    """Return (capped-outlier quarantine rows, dropped quarantine rows, cleaned rows)."""
    kept = series.filter(pl.col("observed") | pl.col(c.IS_FILLED))
    raw_return = (pl.col(c.CLOSE) / pl.col(c.CLOSE).shift(1)).log()
    kept = kept.with_columns(raw_return.over(c.TICKER).alias("raw_return"))
    sigma = pl.max_horizontal(
        _robust_sigma(pl.col("raw_return"), params.short_sigma_window, params.min_sigma_observations),
        _robust_sigma(pl.col("raw_return"), params.long_sigma_window, params.min_sigma_observations),
    ).over(c.TICKER)
    bound = params.outlier_sigma * pl.col("sigma")
    is_capped = (pl.col("raw_return").abs() > bound).fill_null(False)  # unknown scale: no cap
    kept = kept.with_columns(sigma.alias("sigma")).with_columns(
        is_capped.alias(c.IS_CAPPED),
        pl.when(is_capped).then(pl.col("raw_return").clip(-bound, bound)).otherwise(pl.col("raw_return")).alias(c.LOG_RETURN),
    )

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

    outliers = kept.filter(pl.col(c.IS_CAPPED) & pl.col(c.RULE).is_null()).with_columns(
        pl.lit("return_outlier").alias(c.RULE),
        pl.lit(ACTION_CAPPED).alias(c.ACTION),
        pl.format(
            "log_return {} capped to {} ({} x robust sigma {})",
            pl.col("raw_return").round(6), pl.col(c.LOG_RETURN).round(6), pl.lit(params.outlier_sigma), pl.col("sigma").round(6),
        ).alias(c.DETAIL),
    )
    # Filled rows were never received, so dropping one loses nothing worth quarantining.
    dropped = kept.filter(pl.col(c.RULE).is_not_null() & pl.col("observed")).with_columns(
        pl.lit(ACTION_DROPPED).alias(c.ACTION),
        pl.format("history_days={} missing_share={}", "history_days", pl.col("missing_share").round(4)).alias(c.DETAIL),
    )
    cleaned = kept.filter(pl.col(c.RULE).is_null())
    return outliers, dropped, cleaned
