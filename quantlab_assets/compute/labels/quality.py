"""An independent restatement of the labels' window rule, for the asset check run on every materialisation.

A label at t with horizon k must end exactly k trading days later (the k-th next date of the bars'
calendar), and its forward return must be null exactly where that end date is. A label that ended
earlier or later would be using the wrong future; one with a value but no end date could not be purged.
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import LabelParams, forward_return_column, label_end_column

EXAMPLES = 3


def label_window_violations(bars: pl.DataFrame, labels: pl.DataFrame, params: LabelParams) -> list[str]:
    """Descriptions of label rows whose end date is not t + k trading days, or whose value and end disagree."""
    calendar = bars.select(pl.col(c.DATE).unique().sort()).with_row_index("day")
    indexed = labels.join(calendar, on=c.DATE, how="left")
    problems: list[str] = []
    for horizon in params.end_horizons:
        end, value = label_end_column(horizon), forward_return_column(horizon)
        expected = calendar.rename({c.DATE: "expected_end"}).with_columns(pl.col("day") - horizon)
        checked = indexed.join(expected, on="day", how="left")
        wrong_end = checked.filter(pl.col(end).is_not_null() & (pl.col(end) != pl.col("expected_end")))
        if value in labels.columns:
            wrong_end = pl.concat([wrong_end, checked.filter(pl.col(end).is_null() != pl.col(value).is_null())])
        for row in wrong_end.head(EXAMPLES).iter_rows(named=True):
            problems.append(
                f"{row[c.TICKER]} {row[c.DATE]}: {end}={row[end]}, expected {row['expected_end']} "
                f"({horizon} trading days later), {value}={row.get(value)}"
            )
    return problems
