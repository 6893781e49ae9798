"""A long (date, ticker) frame laid out as a dense (dates x tickers) grid, and back.

Labels look a fixed number of *trading days* ahead. On a grid whose rows are the universe's trading
calendar, "k days ahead" is "k rows down" for every instrument at once, so a label is a handful of
whole-matrix numpy operations instead of per-ticker windows. A cell where the instrument has no bar
(before its listing, after its delisting, inside a gap cleaning did not fill) holds NaN, which then
propagates into every label whose window touches it.

Reading the grid back in row-major order yields rows sorted by (date, ticker) without sorting strings:
tickers are numbered in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c


@dataclass(frozen=True)
class DensePanel:
    """Where the rows of a long frame sit on the (calendar x tickers) grid.

    calendar: the sorted distinct dates of the frame (the universe's trading calendar) as days since
    1970-01-01; tickers: the sorted distinct tickers; date_index/ticker_index: each input row's cell;
    cells: the occupied cells as flat indices in row-major order, i.e. the output rows sorted by
    (date, ticker).
    """

    calendar: np.ndarray
    tickers: pl.Series
    date_index: np.ndarray
    ticker_index: np.ndarray
    cells: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame) -> DensePanel:
        """The grid of `frame` (columns date and ticker, one row per (date, ticker), any row order)."""
        days = frame[c.DATE].to_physical().to_numpy()
        calendar = np.unique(days)
        tickers = frame[c.TICKER].unique().sort()
        date_index = np.searchsorted(calendar, days)
        ticker_index = frame[c.TICKER].cast(pl.Enum(tickers)).to_physical().to_numpy().astype(np.int64)
        cells = np.sort(date_index * len(tickers) + ticker_index)
        if cells.size and (np.diff(cells) == 0).any():
            raise ValueError("labels need one row per (date, ticker); the bars hold duplicates")
        return cls(calendar=calendar, tickers=tickers, date_index=date_index, ticker_index=ticker_index, cells=cells)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.calendar), len(self.tickers)

    def dense(self, values: np.ndarray) -> np.ndarray:
        """Values given per input row (NaN for missing) on the grid; cells without a row are NaN."""
        grid = np.full(self.shape, np.nan)
        grid[self.date_index, self.ticker_index] = values
        return grid

    def long(self, grid: np.ndarray) -> np.ndarray:
        """The occupied cells of `grid`, in output order (date, ticker)."""
        return grid.reshape(-1)[self.cells]

    def keys(self) -> pl.DataFrame:
        """The output rows' (date, ticker) keys."""
        date_index, ticker_index = np.divmod(self.cells, len(self.tickers))
        return pl.DataFrame(
            {
                c.DATE: pl.Series(self.calendar[date_index]).cast(pl.Date),
                c.TICKER: self.tickers.gather(ticker_index),
            }
        )

    def dates_ahead(self, offsets: np.ndarray | int, valid: np.ndarray) -> pl.Series:
        """Per output row, the calendar date `offsets` trading days later (null where not `valid`).

        Rows that are not valid may point past the calendar's end.
        """
        ahead = np.minimum(self.cells // len(self.tickers) + offsets, len(self.calendar) - 1)
        return pl.Series(np.ma.array(self.calendar[ahead], mask=~valid)).cast(pl.Date)
