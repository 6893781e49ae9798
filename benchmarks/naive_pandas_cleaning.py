"""A deliberately naive pandas port of `quantlab_assets.compute.data.cleaning.clean_bars`.

This is the yardstick of `benchmarks/ingest_clean.py`, not part of the lab. It applies the same rules,
in the same order and with the same parameters (`CleaningParams`), and must produce the same cleaned
bars and quarantine; but it is written the way the seed code wrote pandas, because the benchmark's
question is "what did moving this step to polars buy us", not "how fast can pandas go":

- row rules are boolean masks applied one after another, and the OHLC rule is a Python function
  called once per row through `DataFrame.apply(axis=1)`;
- each instrument is put on the trading calendar by `groupby(ticker).apply(...)` with `reindex` and
  `ffill(limit=...)`;
- returns, robust sigmas, the reverted-spike test and missing shares are
  `groupby(ticker).transform(lambda ...)` with `rolling(...).median()` / `.mean()` / `shift(-1)`;
- quarantine details are formatted row by row.

Null semantics follow the polars code: a comparison involving a missing value is False there
(`fill_null(False)` / `when(null)`), and a comparison with NaN is False in pandas and Python, so the
masks agree without special cases. Detail strings use Python's float repr and `round`, which may write
a value differently from polars' cast to text (e.g. 1e-05 against 1e-5); the benchmark counts such
differences but does not fail on them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import (
    ACTION_DROPPED,
    ACTION_FLAGGED,
    ACTION_REJECTED,
    ADJ_FACTOR_JUMP,
    CLEANED_COLUMNS,
    DUPLICATE_KEY,
    MAD_TO_SIGMA,
    QUARANTINE_SCHEMA,
    RETURN_OUTLIER,
    REVERTED_SPIKE,
    ROW_RULES,
    SERIES_RULES,
    CleaningParams,
)


@dataclass(frozen=True)
class NaiveCleaningResult:
    """The pandas counterpart of `CleaningResult` (cleaned bars and quarantine of the target window)."""

    cleaned: pd.DataFrame
    quarantine: pd.DataFrame
    rule_counts: dict[str, int]
    raw_rows: int


def read_raw_parquet(paths: Iterable[str]) -> pd.DataFrame:
    """Read raw-bar Parquet files the way the seed loader did: concatenate, then parse dates.

    pyarrow hands a Parquet date column to pandas as Python `datetime.date` objects; converting them
    to datetime64 belongs to loading (the polars side reads a typed Date column for free), so it is
    done here, outside the timed cleaning.
    """
    frame = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    frame[c.DATE] = pd.to_datetime(frame[c.DATE])
    return frame


def clean_bars_naive(
    raw: pd.DataFrame,
    universe_tickers: Iterable[str],
    *,
    window: tuple[dt.date, dt.date],
    as_of: dt.date,
    params: CleaningParams = CleaningParams(),
    holidays: Iterable[dt.date] = (),
    close_is_adjusted: bool = True,
) -> NaiveCleaningResult:
    """Clean `raw` (RAW_SCHEMA columns, `date` as datetime64) exactly as `clean_bars` does.

    The configuration errors of `clean_bars` (an undeclared `close_is_adjusted`, a split in declared raw
    closes) are not ported: the benchmark's synthetic market always sends adjusted closes.

    Rows are judged in received order, so `duplicated(keep="first")` keeps the first row received,
    like the polars code's arrival index.
    """
    first_day, last_day = pd.Timestamp(window[0]), pd.Timestamp(window[1])
    # A fresh 0..n-1 index: rows are later addressed by index label (a caller's index may repeat).
    bars = raw.reset_index(drop=True)
    bars[c.RULE] = None
    bars["file_adjusted"] = bars.groupby(c.SOURCE_FILE)[c.ADJ_CLOSE].transform(lambda adj: adj.notna().any())
    for rule, broken in _row_rule_masks(bars, set(universe_tickers), list(holidays), pd.Timestamp(as_of), params):
        bars.loc[bars[c.RULE].isna() & broken, c.RULE] = rule
    # Duplicates are judged among the rows no other rule rejects: a broken first copy is rejected by
    # its own rule and does not cost the day its valid second copy.
    passing = bars[bars[c.RULE].isna()]
    later_copies = passing.duplicated([c.DATE, c.TICKER], keep="first")
    bars.loc[later_copies[later_copies].index, c.RULE] = DUPLICATE_KEY

    rejected = bars[bars[c.RULE].notna()].copy()
    rejected[c.ACTION] = ACTION_REJECTED
    rejected[c.DETAIL] = _format_rows(rejected, _rejected_detail)
    valid = bars[bars[c.RULE].isna()].drop(columns=[c.RULE, c.PARSE_ERROR])
    valid[c.ADJ_FACTOR] = (valid[c.ADJ_CLOSE] / valid[c.CLOSE]).where(valid["file_adjusted"], 1.0)
    spikes, valid = _split_reverted_spikes(valid, params)

    series = _series_on_calendar(valid, params)
    outliers, factor_jumps, dropped, cleaned = _apply_series_rules(series, params)

    def in_window(frame: pd.DataFrame) -> pd.Series:
        return (frame[c.DATE] >= first_day) & (frame[c.DATE] <= last_day)

    quarantine = pd.concat(
        [frame[in_window(frame)].reindex(columns=list(QUARANTINE_SCHEMA)) for frame in (rejected, spikes, outliers, factor_jumps, dropped)],
        ignore_index=True,
    ).sort_values([c.DATE, c.TICKER, c.SOURCE_ROW], na_position="last", ignore_index=True)
    rule_counts = {rule: 0 for rule in ROW_RULES + SERIES_RULES}
    rule_counts.update({rule: int(count) for rule, count in quarantine[c.RULE].value_counts().items()})
    window_cleaned = cleaned[in_window(cleaned)][list(CLEANED_COLUMNS)].sort_values(
        [c.DATE, c.TICKER], ignore_index=True
    )
    return NaiveCleaningResult(
        cleaned=window_cleaned,
        quarantine=quarantine,
        rule_counts=rule_counts,
        raw_rows=int(in_window(raw).sum()),
    )


def _row_rule_masks(
    bars: pd.DataFrame, universe: set[str], holidays: list[dt.date], as_of: pd.Timestamp, params: CleaningParams
) -> Iterator[tuple[str, pd.Series]]:
    """(rule, rows it rejects) in ROW_RULES order, duplicate_key excepted (it needs the others' verdicts);
    the caller keeps the first rule that fires per row."""
    prices = list(c.PRICE_COLUMNS)
    yield "unparseable_value", bars[c.PARSE_ERROR].notna()
    yield "missing_key", bars[c.DATE].isna() | bars[c.TICKER].isna()
    yield "unknown_instrument", ~bars[c.TICKER].isin(universe)
    yield "non_trading_day", (bars[c.DATE].dt.weekday >= 5) | bars[c.DATE].isin(pd.to_datetime(holidays))
    yield "future_date", bars[c.DATE] > as_of
    yield "missing_close", bars[c.CLOSE].isna()
    yield "non_positive_price", (bars[prices] <= 0).any(axis=1)
    yield "invalid_adj_close", bars["file_adjusted"] & ~(bars[c.ADJ_CLOSE] > 0)
    yield "ohlc_inconsistent", bars[prices].apply(_ohlc_broken, axis=1, tolerance=params.ohlc_tolerance).astype(bool)
    yield "negative_volume", bars[c.VOLUME] < 0


def _ohlc_broken(row: pd.Series, tolerance: float) -> bool:
    """The OHLC rule for one row, seed style. `max`/`min` of open and close skip a missing one, as
    polars' max_horizontal/min_horizontal do; any comparison with NaN is False."""
    body = [value for value in (row[c.OPEN], row[c.CLOSE]) if not math.isnan(value)]
    upper = max(body, default=math.nan) * (1 - tolerance)
    lower = min(body, default=math.nan) * (1 + tolerance)
    return row[c.HIGH] < upper or row[c.LOW] > lower or row[c.LOW] > row[c.HIGH] * (1 + tolerance)


def _format_rows(frame: pd.DataFrame, formatter: Callable[[pd.Series], str]) -> pd.Series:
    """`formatter` applied row by row; an empty frame gives an empty column (apply would give a frame)."""
    if frame.empty:
        return pd.Series(index=frame.index, dtype=object)
    return frame.apply(formatter, axis=1)


def _rejected_detail(row: pd.Series) -> str:
    rule = row[c.RULE]
    if rule == "unparseable_value":
        return row[c.PARSE_ERROR]
    if rule in ("non_positive_price", "ohlc_inconsistent", "missing_close"):
        return " ".join(f"{name}={_shown(row[name])}" for name in c.PRICE_COLUMNS)
    if rule == "invalid_adj_close":
        return f"adj_close={_shown(row[c.ADJ_CLOSE])} close={_shown(row[c.CLOSE])} in a file that delivers adjusted closes"
    if rule == "negative_volume":
        return f"volume={_shown(row[c.VOLUME])}"
    if rule == DUPLICATE_KEY:
        return "a valid row for this (date, ticker) was received earlier"
    return rule


def _shown(value: float) -> str:
    return "null" if math.isnan(value) else str(value)


def _series_on_calendar(valid: pd.DataFrame, params: CleaningParams) -> pd.DataFrame:
    """Reindex each instrument on the calendar (dates with any valid bar) from its first bar, then
    forward-fill gaps of at most `ffill_limit` days with the last close (volume 0, `is_filled`)."""
    calendar = pd.DatetimeIndex(np.sort(valid[c.DATE].unique()), name=c.DATE)

    def on_calendar(bars: pd.DataFrame) -> pd.DataFrame:
        grid = bars.set_index(c.DATE).reindex(calendar[calendar >= bars[c.DATE].min()])
        observed = grid[c.CLOSE].notna()
        last_close = grid[c.CLOSE].ffill(limit=params.ffill_limit)
        fillable = ~observed & last_close.notna()
        for name in c.PRICE_COLUMNS:
            grid.loc[fillable, name] = last_close[fillable]
        grid.loc[fillable, c.ADJ_FACTOR] = grid[c.ADJ_FACTOR].ffill()[fillable]
        grid.loc[fillable, c.VOLUME] = 0.0
        grid["observed"] = observed
        grid[c.IS_FILLED] = fillable
        return grid

    return valid.groupby(c.TICKER).apply(on_calendar).reset_index()


def _robust_sigma(log_return: pd.Series, window: int, min_samples: int) -> pd.Series:
    """Sigma of the returns before t (the return being judged is excluded by the shift): MAD-based,
    the plain standard deviation where the MAD is 0 (stale prices), NaN (no cap) where both are 0."""
    past = log_return.shift(1)
    robust = MAD_TO_SIGMA * past.abs().rolling(window, min_periods=min_samples).median()
    plain = past.rolling(window, min_periods=min_samples).std()
    return robust.where(robust > 0, plain.where(plain > 0))


def _adjusted_return(bars: pd.DataFrame) -> pd.Series:
    adjusted = bars[c.CLOSE] * bars[c.ADJ_FACTOR]
    return adjusted.groupby(bars[c.TICKER]).transform(lambda close: np.log(close / close.shift(1)))


def _sigma(bars: pd.DataFrame, returns: str, params: CleaningParams) -> pd.Series:
    return bars.groupby(c.TICKER)[returns].transform(
        lambda r: np.fmax(
            _robust_sigma(r, params.short_sigma_window, params.min_sigma_observations),
            _robust_sigma(r, params.long_sigma_window, params.min_sigma_observations),
        )
    )


def _quarantined(rows: pd.DataFrame, rule: str, action: str, detail: Callable[[pd.Series], str]) -> pd.DataFrame:
    rows = rows.copy()
    rows[c.RULE] = rule
    rows[c.ACTION] = action
    rows[c.DETAIL] = _format_rows(rows, detail)
    return rows


def _split_reverted_spikes(valid: pd.DataFrame, params: CleaningParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reverted-spike quarantine rows, valid rows without them), judged on the received bars."""
    bars = valid.sort_values([c.TICKER, c.DATE])
    bars["raw_return"] = _adjusted_return(bars)
    bars["sigma"] = _sigma(bars, "raw_return", params)
    bars["next_return"] = bars.groupby(c.TICKER)["raw_return"].shift(-1)
    r, following = bars["raw_return"], bars["next_return"]
    reverted = (
        (r.abs() > params.outlier_sigma * bars["sigma"])
        & (r * following < 0)
        & ((r + following).abs() <= (1 - params.reversion_share) * r.abs())
    )
    spikes = _quarantined(
        bars[reverted], REVERTED_SPIKE, ACTION_REJECTED,
        lambda row: (
            f"log_return {round(row['raw_return'], 6)} beyond {params.outlier_sigma} x robust sigma "
            f"{round(row['sigma'], 6)}, undone by {round(row['next_return'], 6)} on the next bar"
        ),
    )
    return spikes, bars[~reverted].drop(columns=["raw_return", "sigma", "next_return"])


def _apply_series_rules(series: pd.DataFrame, params: CleaningParams) -> tuple[pd.DataFrame, ...]:
    """Return (outlier quarantine rows, factor-jump quarantine rows, dropped quarantine rows, cleaned rows)."""
    # Eligibility is judged on the whole calendar grid: unfilled gap days count as missing.
    by_ticker = series.groupby(c.TICKER)
    series["history_days"] = by_ticker.cumcount() + 1
    series["missing_share"] = by_ticker["observed"].transform(
        lambda observed: 1.0 - observed.astype(float).rolling(params.missing_window_days, min_periods=1).mean()
    )

    kept = series[series["observed"] | series[c.IS_FILLED]].copy()
    kept[c.LOG_RETURN] = _adjusted_return(kept)
    kept["factor_step"] = kept.groupby(c.TICKER)[c.ADJ_FACTOR].transform(lambda f: np.log(f / f.shift(1)))
    kept["sigma"] = _sigma(kept, c.LOG_RETURN, params)
    kept[c.IS_OUTLIER] = kept[c.LOG_RETURN].abs() > params.outlier_sigma * kept["sigma"]
    kept["factor_jump"] = (kept["factor_step"].abs() > params.max_factor_step) & (
        kept[c.LOG_RETURN].abs() > 0.5 * kept["factor_step"].abs()
    )

    kept[c.RULE] = None
    kept.loc[kept["history_days"] < params.min_history_days, c.RULE] = "insufficient_history"
    kept.loc[kept[c.RULE].isna() & (kept["missing_share"] > params.max_missing_share), c.RULE] = "high_missing_share"

    outliers = _quarantined(
        kept[kept[c.IS_OUTLIER] & kept[c.RULE].isna()], RETURN_OUTLIER, ACTION_FLAGGED,
        lambda row: (
            f"log_return {round(row[c.LOG_RETURN], 6)} beyond {params.outlier_sigma} x robust sigma "
            f"{round(row['sigma'], 6)} (kept as it happened)"
        ),
    )
    factor_jumps = _quarantined(
        kept[kept["factor_jump"] & kept[c.RULE].isna()], ADJ_FACTOR_JUMP, ACTION_FLAGGED,
        lambda row: (
            f"adj_factor moved by {round(row['factor_step'], 6)} (log) while the adjusted log_return is "
            f"{round(row[c.LOG_RETURN], 6)}: not offset by the traded price"
        ),
    )
    # Filled rows were never received, so dropping one loses nothing worth quarantining.
    dropped = kept[kept[c.RULE].notna() & kept["observed"]].copy()
    dropped[c.ACTION] = ACTION_DROPPED
    dropped[c.DETAIL] = _format_rows(
        dropped, lambda row: f"history_days={row['history_days']} missing_share={round(row['missing_share'], 4)}"
    )
    cleaned = kept[kept[c.RULE].isna()].copy()
    cleaned[c.RAW_CLOSE] = cleaned[c.CLOSE]
    for name in c.PRICE_COLUMNS:
        cleaned[name] = cleaned[name] * cleaned[c.ADJ_FACTOR]
    cleaned[c.VOLUME] = cleaned[c.VOLUME] / cleaned[c.ADJ_FACTOR]
    return outliers, factor_jumps, dropped, cleaned
