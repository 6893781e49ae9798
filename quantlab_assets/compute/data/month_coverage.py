"""Which months of a month-partitioned output came out empty, lost rows, or were computed on a cut window.

A month of features, labels or market state is computed from a window of upstream months (the features'
lookback, the market state's). The IO manager refuses a window with a hole inside the upstream's stored
span, and reads months beyond that span as empty: that is how the first months of a source work (no
history exists before them). But the upstream's stored span can also start late although the data goes
further back (cleaned bars stored from 2024-01 while raw bars are stored from 2005): the window is then
cut, and the month's output is computed on a short history without any error. A month is complete when
it holds every row its upstream says it should and its window is not cut that way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from quantlab_assets.compute import columns as c


def month_key(day: dt.date) -> str:
    """The month partition key of a date ('2024-03-15' -> '2024-03-01')."""
    return f"{day.year:04d}-{day.month:02d}-01"


def shift_month(key: str, months: int) -> str:
    """The month key `months` months after `key` (negative: before)."""
    first = dt.date.fromisoformat(key)
    index = first.year * 12 + first.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


def window_months(month: str, before: int) -> list[str]:
    """The month keys a month's window reads: `before` months before it, and itself."""
    return [shift_month(month, offset) for offset in range(-before, 1)]


def rows_by_month(frame: pl.DataFrame) -> dict[str, int]:
    """Month key -> rows of `frame` (by its date column) in that month."""
    if frame.height == 0:
        return {}
    counts = frame.group_by(pl.col(c.DATE).dt.truncate("1mo").alias("month")).len()
    return {month_key(month): rows for month, rows in counts.iter_rows()}


def cut_months(window: Iterable[str], stored_upstream: set[str], stored_source: set[str]) -> list[str]:
    """Months of `window` before the upstream's first stored month that the source holds: the window is cut.

    stored_upstream: month keys of the input the window reads; stored_source: month keys of that input's own
    source (the raw bars for cleaned bars): a month the source holds could have been computed and stored.
    """
    if not stored_upstream:
        return []
    first = min(stored_upstream)
    return sorted(month for month in window if month < first and month in stored_source)


def month_coverage_failures(
    months: Sequence[str],
    output_rows: Mapping[str, int],
    expected_rows: Mapping[str, int],
    stored_upstream: set[str],
    stored_source: set[str],
    *,
    upstream: str,
    source: str,
    universe: str,
    before: int,
) -> dict[str, str]:
    """Month key -> why that month of the output is incomplete; months that are complete are absent.

    output_rows / expected_rows: rows per month of the output and of what the upstream says it should hold
    (the cross-section rows of the cleaned bars, or their dates); stored_upstream / stored_source: the month
    keys stored for this universe of `upstream` and of its own source; before: the months before a month
    that its window reads.
    """
    failures = {}
    for month in months:
        reasons = []
        got, expected = output_rows.get(month, 0), expected_rows.get(month, 0)
        if expected and got < expected:
            reasons.append("came out empty" if got == 0 else f"lost rows: {got:,} of {expected:,}")
            reasons[-1] += f" (the {upstream} rows of that month: {expected:,})"
        if cut := cut_months(window_months(month, before), stored_upstream, stored_source):
            reasons.append(f"its {before}-month window was cut: {upstream} is not stored for {cut[0][:7]}..{cut[-1][:7]} "
                           f"although {source} is; materialise {upstream} [{cut[0]}...{cut[-1]}|{universe}] first")
        if reasons:
            failures[month] = f"{month[:7]}|{universe}: " + "; ".join(reasons)
    return failures
