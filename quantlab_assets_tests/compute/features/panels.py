"""Panels for the feature tests: hand-built cleaned bars and a small cleaned synthetic market.

Plain functions (cached where building is costly) rather than conftest fixtures, so this directory's
conftest stays free for every test module that shares it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CLEANED_COLUMNS, CleaningParams, clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams, generate_synthetic_market
from quantlab_assets.compute.features.compute import FeatureParams, compute_features
from quantlab_assets_tests.compute.builders import weekdays

START = dt.date(2024, 1, 1)  # a Monday
CLEANED_SCHEMA = {
    c.DATE: pl.Date, c.TICKER: pl.String, c.OPEN: pl.Float64, c.HIGH: pl.Float64, c.LOW: pl.Float64,
    c.CLOSE: pl.Float64, c.VOLUME: pl.Float64, c.LOG_RETURN: pl.Float64, c.RAW_CLOSE: pl.Float64,
    c.ADJ_FACTOR: pl.Float64, c.IS_FILLED: pl.Boolean, c.IS_OUTLIER: pl.Boolean,
}
# No preprocessing variants: tests of raw features ask only for what they check.
RAW_ONLY = FeatureParams(industry_z_features=(), rolling_z_features=())


def bars_frame(
    closes: Mapping[str, Sequence[float]],
    *,
    opens: Mapping[str, Sequence[float | None]] | None = None,
    volumes: Mapping[str, Sequence[float | None]] | None = None,
    start: dt.date = START,
    offsets: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """Cleaned bars (CLEANED_COLUMNS) on consecutive weekdays from `start`, sorted by (date, ticker).

    log_return = ln(close / previous close), null on each instrument's first row (the cleaned bars'
    convention). Opens default to the close, volumes to 1000; `offsets` delays an instrument's first row.
    """
    rows = []
    for ticker, series in closes.items():
        offset = (offsets or {}).get(ticker, 0)
        days = weekdays(start, offset + len(series))[offset:]
        for i, (day, close) in enumerate(zip(days, series, strict=True)):
            open_ = (opens or {}).get(ticker, series)[i]
            volume = (volumes or {}).get(ticker, [1000.0] * len(series))[i]
            rows.append(
                {
                    c.DATE: day, c.TICKER: ticker, c.OPEN: open_, c.HIGH: close if open_ is None else max(open_, close),
                    c.LOW: close if open_ is None else min(open_, close), c.CLOSE: close,
                    c.VOLUME: volume, c.LOG_RETURN: math.log(close / series[i - 1]) if i else None,
                    c.RAW_CLOSE: close, c.ADJ_FACTOR: 1.0, c.IS_FILLED: False, c.IS_OUTLIER: False,
                }
            )
    return pl.DataFrame(rows, schema=CLEANED_SCHEMA).sort(c.DATE, c.TICKER)


def universe_frame(tickers: Sequence[str], industries: Mapping[str, str] | None = None) -> pl.DataFrame:
    """A universe table; every ticker in industry "all" unless `industries` says otherwise."""
    return pl.DataFrame(
        {
            c.TICKER: list(tickers),
            c.NAME: list(tickers),
            c.SECTOR: ["sector"] * len(tickers),
            c.INDUSTRY: [(industries or {}).get(ticker, "all") for ticker in tickers],
        }
    )


def random_walks(tickers: Sequence[str], rows: int, seed: int = 0, volatility: float = 0.02) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {t: (100.0 * np.exp(np.cumsum(rng.normal(0.0, volatility, rows)))).tolist() for t in tickers}


def features(
    bars: pl.DataFrame, names: Sequence[str], *, universe: pl.DataFrame | None = None, **kwargs: object
) -> pl.DataFrame:
    """compute_features(...).frame for just `names` (no preprocessing variants)."""
    universe = universe if universe is not None else universe_frame(bars[c.TICKER].unique().sort().to_list())
    params = FeatureParams(features=tuple(names), industry_z_features=(), rolling_z_features=())
    return compute_features(bars, universe, params=params, **kwargs).frame


def column(frame: pl.DataFrame, ticker: str, name: str) -> np.ndarray:
    """One instrument's feature in date order, nulls as NaN."""
    return frame.filter(pl.col(c.TICKER) == ticker).sort(c.DATE)[name].cast(pl.Float64).fill_null(np.nan).to_numpy()


SMALL_MARKET = SyntheticMarketParams(
    seed=7, n_instruments=8, start=dt.date(2019, 1, 1), end=dt.date(2020, 12, 31), late_listing_share=0.25,
    max_listing_delay_days=120, missing_day_probability=0.01, defect_probability=4e-3,
)


@cache
def synthetic_panel() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cleaned bars, universe) of an 8-instrument, 2-year synthetic market (late listings, missing days,
    forward fills, quarantined spikes), cleaned without the history rules so instruments start on day 1."""
    market = generate_synthetic_market(SMALL_MARKET)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(test)")
    result = clean_bars(
        raw, market.universe[c.TICKER].to_list(), window=(SMALL_MARKET.start, SMALL_MARKET.end), as_of=SMALL_MARKET.end,
        params=CleaningParams(min_history_days=1, max_missing_share=1.0),
    )
    return result.cleaned.select(CLEANED_COLUMNS), market.universe


@cache
def gap_free_panel() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cleaned bars, universe): 6 instruments, 320 days, no missing days, no late listings, no defects."""
    params = SyntheticMarketParams(
        seed=3, n_instruments=6, start=dt.date(2021, 1, 4), end=dt.date(2022, 3, 31), late_listing_share=0.0,
        delisting_share=0.0, missing_day_probability=0.0, defect_probability=0.0,
    )
    market = generate_synthetic_market(params)
    raw = as_raw_frame(market.bars, source="synthetic", source_file="synthetic(test)")
    result = clean_bars(
        raw, market.universe[c.TICKER].to_list(), window=(params.start, params.end), as_of=params.end,
        params=CleaningParams(min_history_days=1, max_missing_share=1.0, outlier_sigma=1e9),
    )
    return result.cleaned.select(CLEANED_COLUMNS), market.universe
