"""Per-instrument trailing-window expressions for the frame sorted by (ticker, date).

Every window is trailing: the value at t reads rows t - w + 1 .. t of the same instrument, nothing
later. Rolling statistics run per instrument (`.over(TICKER_ID)`; the key is a sorted integer, so the
groups are contiguous slices and cost little); running sums therefore carry rounding state only from the
instrument's own earlier rows, never from another instrument or from the future.

The numpy kernels (kernels.py) run once on the whole column instead, and their rows are masked where
the instrument has fewer than w rows up to t: each kernel value depends on the window's own rows only,
so the windows that would span two instruments are exactly the masked ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import polars as pl

from quantlab_assets.compute.features.base import POS, TICKER_ID

# A kernels.py function: (whole column, window lengths) -> one array per window.
MultiKernel = Callable[[np.ndarray, Sequence[int]], list[np.ndarray]]


def full_window(window: int) -> pl.Expr:
    """True where the instrument has at least `window` rows up to and including t."""
    return pl.col(POS) >= window - 1


def rolling_sum(x: pl.Expr, window: int) -> pl.Expr:
    """Sum over the instrument's last `window` rows; null unless all of them are non-null."""
    return x.rolling_sum(window, min_samples=window).over(TICKER_ID)


def rolling_mean(x: pl.Expr, window: int) -> pl.Expr:
    """Mean over the instrument's last `window` rows; null unless all of them are non-null."""
    return x.rolling_mean(window, min_samples=window).over(TICKER_ID)


def rolling_max(x: pl.Expr, window: int) -> pl.Expr:
    return x.rolling_max(window, min_samples=window).over(TICKER_ID)


def rolling_std(x: pl.Expr, window: int, min_samples: int | None = None) -> pl.Expr:
    """Sample standard deviation (ddof 1) over the last `window` rows, from `min_samples` values (default: all)."""
    return x.rolling_std(window, min_samples=window if min_samples is None else min_samples).over(TICKER_ID)


def rolling_var(x: pl.Expr, window: int) -> pl.Expr:
    return x.rolling_var(window, min_samples=window).over(TICKER_ID)


def rolling_median(x: pl.Expr, window: int) -> pl.Expr:
    return x.rolling_median(window, min_samples=window).over(TICKER_ID)


def _apply_kernels(series: pl.Series, kernel: MultiKernel, windows: tuple[int, ...]) -> pl.Series:
    values = kernel(series.cast(pl.Float64).to_numpy(), windows)
    return pl.struct(
        *(pl.Series(f"w{window}", column, dtype=pl.Float64) for window, column in zip(windows, values, strict=True)),
        eager=True,
    ).alias(series.name)


def kernel_struct(x: pl.Expr, kernel: MultiKernel, windows: Sequence[int]) -> pl.Expr:
    """A multi-window kernel over the whole column: a struct with one field `w<window>` per window.

    Rows whose instrument has fewer than `window` rows hold values of windows spanning two instruments:
    read the fields through `kernel_field`, which masks them. Store the struct as a (hidden) column
    so the kernel runs once, however many features read it.
    """
    windows = tuple(windows)
    dtype = pl.Struct({f"w{window}": pl.Float64 for window in windows})
    return x.map_batches(partial(_apply_kernels, kernel=kernel, windows=windows), return_dtype=dtype)


def kernel_field(struct_column: str, window: int) -> pl.Expr:
    """Field `w<window>` of a kernel_struct column, null where the window is not full (or the kernel gave NaN)."""
    return pl.when(full_window(window)).then(pl.col(struct_column).struct.field(f"w{window}")).fill_nan(None)


def safe_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null where the denominator is 0 (or null)."""
    return pl.when(denominator != 0).then(numerator / denominator)


def safe_log_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """log(numerator / denominator), null unless both are positive."""
    return pl.when((numerator > 0) & (denominator > 0)).then((numerator / denominator).log())
