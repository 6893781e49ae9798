"""One entry point that fetches a universe's raw bars for a date range, whatever its source."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.csv_source import CsvLayout, read_bar_files, resolve_paths
from quantlab_assets.compute.data.packaged_sources import read_sp500_sample
from quantlab_assets.compute.data.partition_span import split_by_span
from quantlab_assets.compute.data.raw import as_raw_frame, empty_raw_frame
from quantlab_assets.compute.data.synthetic import generate_synthetic_market
from quantlab_assets.compute.data.yfinance_source import YFinanceParams, download_yfinance_bars
from quantlab_assets.compute.universe import UniverseConfigError, UniverseSpec, synthetic_params


@dataclass(frozen=True)
class FetchedBars:
    """Raw bars dated in the requested range, and notes on the fetch for asset metadata."""

    bars: pl.DataFrame
    notes: dict[str, Any] = field(default_factory=dict)
    # Rows the source delivered dated outside every partition (see compute/data/partition_span.py).
    outside: pl.DataFrame = field(default_factory=empty_raw_frame)


def _fetched(
    frame: pl.DataFrame, first_day: dt.date, last_day: dt.date, span: tuple[dt.date, dt.date] | None,
    notes: dict[str, Any] | None = None,
) -> FetchedBars:
    """The rows of `frame` dated in [first_day, last_day], and those outside `span` (no partition holds them)."""
    inside_window = frame.filter(pl.col(c.DATE).is_between(first_day, last_day, closed="both"))
    outside = split_by_span(frame, span)[1] if span else empty_raw_frame()
    return FetchedBars(inside_window, notes or {}, outside)


def fetch_raw_bars(
    spec: UniverseSpec, first_day: dt.date, last_day: dt.date, *, as_of: dt.date, http_session: Any = None,
    span: tuple[dt.date, dt.date] | None = None,
) -> FetchedBars:
    """Bars of `spec` dated in [first_day, last_day], exactly as the source sends them.

    `as_of` bounds the synthetic market (it has a bar for every business day up to as_of, so the daily
    refresh sees a new day arrive); live and file sources return what they hold. `span` is the range of
    dates the partitions cover: rows the source holds outside it come back in `outside`, since no run
    for any partition would otherwise see them.
    """
    if spec.source == "synthetic":
        params = synthetic_params(spec)
        end = min(last_day, as_of)
        if end < max(first_day, params.start):
            return FetchedBars(empty_raw_frame(), {"synthetic_seed": params.seed})
        market = generate_synthetic_market(dataclasses.replace(params, end=end))
        label = f"synthetic(seed={params.seed}, n_instruments={params.n_instruments}, start={params.start})"
        bars = as_raw_frame(market.bars, source="synthetic", source_file=label)
        return _fetched(bars, first_day, last_day, span, {"synthetic_seed": params.seed})
    if spec.source == "sp500_sample":
        return _fetched(read_sp500_sample(), first_day, last_day, span)
    if spec.source == "csv":
        options = dict(spec.options)
        patterns = options.pop("paths", None)
        if not patterns:
            raise UniverseConfigError(f"{spec.config_path}: a csv universe needs csv.paths")
        known = {f.name for f in dataclasses.fields(CsvLayout)}
        if set(options) - known:
            raise UniverseConfigError(
                f"{spec.config_path}: unknown csv option(s) {sorted(set(options) - known)}; known: paths, {sorted(known)}"
            )
        layout = CsvLayout(**options)
        paths = resolve_paths(patterns, spec.config_path.parent)
        bars = read_bar_files(paths, layout)
        return _fetched(bars, first_day, last_day, span, {"files": [str(p) for p in paths]})
    if spec.source == "yfinance":
        params = YFinanceParams(**spec.options)
        tickers = spec.instruments[c.TICKER].to_list()
        download = download_yfinance_bars(tickers, first_day, last_day, params, session=http_session)
        notes = {"unknown_tickers": list(download.unknown_tickers), "failed_batches": list(download.failed_batches),
                 "retries": download.retries}
        return _fetched(download.bars, first_day, last_day, span, notes)
    raise UniverseConfigError(f"{spec.config_path}: unknown source {spec.source!r}")
