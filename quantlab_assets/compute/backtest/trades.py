"""Round trips: a position in one instrument from the day it is first held to the last day it is held.

A trade's P&L is the sum of its daily contributions w_begin[t] * r[t] (in units of portfolio return),
so the trades of a backtest add up to its gross return (to first order: contributions are not
compounded). A trade still open on the last day is reported with closed = False.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c

TRADE_COLUMNS = ("ticker", "entry_date", "exit_date", "holding_days", "pnl", "closed")


def round_trips(weights: np.ndarray, returns: np.ndarray, dates: pl.Series, tickers: list[str]) -> pl.DataFrame:
    """Round trips of end-of-day weights (T, N) over returns (T, N): ticker, entry/exit date, holding_days, pnl, closed.

    entry_date is the first day whose return the position earns, exit_date the last one.
    """
    held_weights = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])  # (T, N) weights earning day t
    held = held_weights != 0
    starts = held & ~np.vstack([np.zeros((1, held.shape[1]), dtype=bool), held[:-1]])
    episode = np.cumsum(starts, axis=0)  # (T, N): per asset, the index of the current holding episode
    day, asset = np.nonzero(held)
    last_day = dates.len() - 1
    cells = pl.DataFrame(
        {
            "asset": asset.astype(np.int64),
            "episode": episode[day, asset],
            "day": day.astype(np.int64),
            "contribution": held_weights[day, asset] * returns[day, asset],
        }
    )
    # A position held at the last day's close (weights[-1] != 0) is still open.
    open_at_end = weights[-1] != 0
    trades = (
        cells.group_by("asset", "episode")
        .agg(
            pl.col("day").min().alias("first"),
            pl.col("day").max().alias("last"),
            pl.len().alias("holding_days"),
            pl.col("contribution").sum().alias("pnl"),
        )
        .sort("first", "asset")
    )
    return trades.select(
        pl.Series(c.TICKER, tickers).gather(trades["asset"]).alias(c.TICKER),
        dates.gather(trades["first"]).alias("entry_date"),
        dates.gather(trades["last"]).alias("exit_date"),
        pl.col("holding_days").cast(pl.Int64),
        pl.col("pnl"),
        ~((pl.col("last") == last_day) & pl.Series(open_at_end).gather(trades["asset"])).alias("closed"),
    )
