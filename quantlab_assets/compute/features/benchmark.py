"""The benchmark series cross-asset features are measured against: the universe's market proxy.

- A benchmark ticker (the universe YAML's `benchmark`, e.g. SPY or ^GSPC) that has bars in the input:
  its cleaned daily log return (null on a date without its bar).
- Otherwise (no benchmark configured, as for the synthetic universe, or none of its bars loaded): the
  equal-weighted mean of the daily log returns of every instrument with a return that date. The
  instruments' own returns are part of that mean (1/N of it).

Either way the value for date t uses returns of date t only.
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c

BENCHMARK_RETURN = "benchmark_return"
EQUAL_WEIGHT = "equal_weight"


def benchmark_source(bars: pl.DataFrame, benchmark_ticker: str | None) -> str:
    """'ticker:<benchmark>' when that ticker has bars in `bars`, else 'equal_weight'."""
    if benchmark_ticker is not None and bars.height and (bars[c.TICKER] == benchmark_ticker).any():
        return f"ticker:{benchmark_ticker}"
    return EQUAL_WEIGHT


def benchmark_return_expr(source: str) -> pl.Expr:
    """The benchmark's log return as an aggregate over one date's rows (use in agg or with .over(date))."""
    if source == EQUAL_WEIGHT:
        return pl.col(c.LOG_RETURN).mean()
    if not source.startswith("ticker:"):
        raise ValueError(f"unknown benchmark source {source!r}")
    ticker = source.removeprefix("ticker:")
    # (date, ticker) is unique in cleaned bars: at most one value per date, so max() just picks it.
    return pl.when(pl.col(c.TICKER) == ticker).then(pl.col(c.LOG_RETURN)).max()


def benchmark_returns(bars: pl.DataFrame, benchmark_ticker: str | None) -> pl.DataFrame:
    """(date, benchmark_return) for every date of `bars`, sorted by date (see the module docstring)."""
    source = benchmark_source(bars, benchmark_ticker)
    return (
        bars.lazy()
        .group_by(c.DATE)
        .agg(benchmark_return_expr(source).alias(BENCHMARK_RETURN))
        .sort(c.DATE)
        .collect()
    )
