"""Forward log returns and industry-relative forward returns on the dense (calendar x tickers) grid.

y(t, k) = sum of the daily log returns of days t+1 .. t+k. Each window is summed term by term in day
order (never as a difference of cumulative sums), so a label depends on exactly the returns of its own
window, bit for bit: changing a bar outside t .. t+k cannot move it even in the last digit, which is
what the look-ahead tests assert.

Industry-relative (seed 004): y_rel(t, k) = sum r_i(t+1..t+k) - sum R_ind(t+1..t+k), where the industry
proxy R_ind is the equal-weighted daily log return of the instrument's industry peers in the universe.
The instrument itself is *left out* of its own proxy: including it would give it weight 1/n in the
benchmark it is measured against, mechanically shrinking every label by (1 - 1/n) and making the label
of an instrument alone in its industry identically zero. Where no peer has a return on a day (a
single-instrument industry, or peers not yet listed), the proxy falls back to the instrument's sector
peers, then to every other instrument of the universe, so small real universes (sp500_sample has seven
single-stock industries) still get labels; only a day on which no other instrument traded has no proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np


def forward_sums(daily: np.ndarray, horizons: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """For each horizon k (ascending), the (dates x tickers) grid of daily[t+1] + ... + daily[t+k].

    NaN wherever any of the k days is NaN (no bar, no return) or lies past the calendar's end. One
    running sum serves every horizon: horizon k is the running sum after its k-th term. Yielded one at
    a time so a caller holds one horizon's grid, not all of them.
    """
    wanted = set(horizons)
    running = np.zeros_like(daily)
    for offset in range(1, max(wanted, default=0) + 1):
        last_with_future = max(len(daily) - offset, 0)
        running[:last_with_future] += daily[offset:]
        running[last_with_future:] = np.nan  # no day t+offset in the calendar
        if offset in wanted:
            yield offset, running.copy()


def leave_one_out_mean(daily: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per cell, the mean of the *other* members of the ticker's group on the same date.

    `groups` holds one integer group code per ticker (column). NaN where the cell's ticker has no
    peer with a value that day. Sums run per date over each group's columns in a fixed order (no BLAS),
    so a cell depends only on its own date's values.
    """
    if daily.size == 0:
        return np.full(daily.shape, np.nan)
    present = np.isfinite(daily)
    values = np.where(present, daily, 0.0)
    order = np.argsort(groups, kind="stable")
    codes, starts = np.unique(groups[order], return_index=True)
    group_sum = np.add.reduceat(values[:, order], starts, axis=1)
    group_count = np.add.reduceat(present[:, order].astype(np.int64), starts, axis=1)
    column = np.searchsorted(codes, groups)
    peers = group_count[:, column] - present
    peer_sum = group_sum[:, column] - values
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(peers > 0, peer_sum / peers, np.nan)


def peer_proxy(daily: np.ndarray, group_levels: Sequence[np.ndarray]) -> np.ndarray:
    """Leave-one-out peer return per cell, from the first level (finest grouping) that has a peer that day."""
    proxy = np.full(daily.shape, np.nan)
    for groups in group_levels:
        missing = np.isnan(proxy)
        if not missing.any():
            break
        proxy = np.where(missing, leave_one_out_mean(daily, groups), proxy)
    return proxy


def relative_forward_sums(
    daily: np.ndarray, group_levels: Sequence[np.ndarray], horizons: Iterable[int], peers: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Forward sums of the daily excess return over the peer proxy (see the module docstring).

    `peers`: the daily returns the proxy averages (default `daily`); NaN where a cell is not a peer
    that day (not a tradable member), so only the members of each day form the proxy.
    """
    return forward_sums(daily - peer_proxy(daily if peers is None else peers, group_levels), horizons)
