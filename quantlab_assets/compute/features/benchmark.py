"""The benchmark series cross-asset features are measured against: the universe's market proxy.

- A benchmark ticker (the universe YAML's `benchmark`, e.g. SPY or ^GSPC): its cleaned daily log return,
  null on a date without its bar, so features whose window holds such a date are null (sp500_sample's
  ^GSPC covers 1999-2018 only: its stocks have no beta or correlation before 1999 or after 2018).
- No benchmark configured (the synthetic universe): the equal-weighted mean of the daily log returns of
  the tradable members with a return that date (membership.py's cross-section: an index row or a bar
  before an instrument's listing is not part of the market). The instruments' own returns are part of
  that mean (1/N).

The rule depends on the universe only, never on which bars a partition happens to load: a fallback to the
equal-weighted mean where the benchmark's bars are missing would give the same date different betas in
two partitions (one whose window reaches the benchmark's first bar, one whose window does not), and
would splice two different series inside one window. Either way the value for date t uses returns of
date t only.
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import IN_CROSS_SECTION, cross_section_expr

BENCHMARK_RETURN = "benchmark_return"
EQUAL_WEIGHT = "equal_weight"


def benchmark_source(benchmark_ticker: str | None) -> str:
    """'ticker:<benchmark>' when the universe names one, else 'equal_weight'."""
    return EQUAL_WEIGHT if benchmark_ticker is None else f"ticker:{benchmark_ticker}"


def benchmark_return_expr(source: str) -> pl.Expr:
    """The benchmark's log return as an aggregate over one date's rows (use in agg or with .over(date)).

    The equal-weighted proxy reads the rows' IN_CROSS_SECTION column (membership.cross_section_expr).
    """
    if source == EQUAL_WEIGHT:
        return pl.col(c.LOG_RETURN).filter(pl.col(IN_CROSS_SECTION)).mean()
    if not source.startswith("ticker:"):
        raise ValueError(f"unknown benchmark source {source!r}")
    ticker = source.removeprefix("ticker:")
    # (date, ticker) is unique in cleaned bars: at most one value per date, so max() just picks it.
    return pl.when(pl.col(c.TICKER) == ticker).then(pl.col(c.LOG_RETURN)).max()


def benchmark_returns(bars: pl.DataFrame, universe: pl.DataFrame, benchmark_ticker: str | None) -> pl.DataFrame:
    """(date, benchmark_return) for every date of `bars`, sorted by date (see the module docstring)."""
    source = benchmark_source(benchmark_ticker)
    return (
        bars.lazy()
        .with_columns(cross_section_expr(bars.columns, universe))
        .group_by(c.DATE)
        .agg(benchmark_return_expr(source).alias(BENCHMARK_RETURN))
        .sort(c.DATE)
        .collect()
    )
