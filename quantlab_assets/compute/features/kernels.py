"""Sliding-window kernels in numpy, vectorised over a whole panel column, exact on each window's rows.

Each kernel takes one float64 array (a panel column sorted by instrument, then date) and one or more
window lengths, and returns for each window an array whose position `e >= w - 1` holds a statistic of
`x[e - w + 1 .. e]` (positions `e < w - 1` are NaN). Windows that cross from one instrument into the
next are *not* excluded here: the caller masks every row whose instrument has fewer than `w` rows up to
it (windows.kernel_field).

Method (sparse table): level k holds, for every start i, a summary of the block `x[i .. i + 2^k - 1]`
built from two level k-1 summaries with a few vectorised numpy operations. A window of w rows, with
2^k <= w < 2^(k+1), is covered by two overlapping level-k blocks A (its first 2^k rows) and B (its last
2^k rows):

- maximum and its latest row: the larger of A's and B's (B wins ties, being later);
- maximum drawdown (largest fall x[v] - x[u], v <= u): a pair lies inside A, inside B, or has v in
  A minus B and u in B minus A (those v all precede those u), so the window's largest fall is
  max(fall(A), fall(B), max(A minus B) - min(B minus A)); both range extremes come from the same tables.

Cost: O(n log w) to build the levels, shared by every window length, then O(n) per window; never the
O(n * w) of a per-window loop (rolling(w).apply). The results are exact: every candidate compared is a
value of x or `fl(x[v] - x[u])` for rows of the window, the same numbers the naive loop compares, so
they match it bit for bit and depend on the window's own rows only (no state carried from earlier rows,
which keeps the look-ahead check exact). `x` must be finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _prepare(x: np.ndarray, windows: Sequence[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    windows = tuple(int(window) for window in windows)
    if not windows or min(windows) < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    return np.ascontiguousarray(x, dtype=np.float64), windows


class _Level:
    """Block summaries of one sparse-table level in reusable buffers (valid prefix: `length` entries).

    Each level is computed from the previous one into spare buffers that are then swapped in, so a
    whole column costs a fixed handful of arrays however many levels are built (allocating a fresh
    array per level and operation is what makes a naive numpy version slow on a 2-million-row panel).
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.spare = {name: np.empty_like(array) for name, array in arrays.items()}
        self.length = next(iter(arrays.values())).shape[0]
        self.size = 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name][: self.length]

    def swap(self, name: str) -> None:
        self.arrays[name], self.spare[name] = self.spare[name], self.arrays[name]


def rolling_max_drawdowns(x: np.ndarray, windows: Sequence[int]) -> list[np.ndarray]:
    """For each window length, the largest fall `max(x[v] - x[u])` over pairs `s <= v <= u <= e` (>= 0).

    With `x` a log price this is minus the log of the window's maximum drawdown factor:
    `exp(-fall) - 1 = min_u P[u] / max_{v <= u} P[v] - 1`.
    """
    x, windows = _prepare(x, windows)
    n = x.shape[0]
    results = {window: np.full(n, np.nan) for window in windows}
    pending = sorted(window for window in set(windows) if window <= n)
    if not pending:
        return [results[window] for window in windows]
    # Range max/min over `rest = w - 2^k` rows come from level floor(log2(rest)): keep copies of those.
    kept_levels = {(window - (1 << (window.bit_length() - 1))).bit_length() - 1 for window in pending}
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    level = _Level({"high": x.copy(), "low": x.copy(), "fall": np.zeros(n)})
    depth = 0
    while pending:
        if depth in kept_levels:
            kept[depth] = (level["high"].copy(), level["low"].copy())
        size = level.size
        for window in [w for w in pending if w.bit_length() - 1 == depth]:
            pending.remove(window)
            count = n - window + 1
            rest = window - size  # rows of the window outside block A (its first `size` rows), and outside B
            fall = level["fall"]
            largest = np.maximum(fall[:count], fall[rest : rest + count])
            if rest:
                high, low = kept[rest.bit_length() - 1]
                span = 1 << (rest.bit_length() - 1)
                # max over A minus B (rows s .. s+rest-1) minus min over B minus A (rows s+size .. e).
                head_high = np.maximum(high[:count], high[rest - span : rest - span + count])
                tail_low = np.minimum(low[size : size + count], low[size + rest - span : size + rest - span + count])
                np.maximum(largest, head_high - tail_low, out=largest)
            results[window][window - 1 :] = largest
        if not pending:
            break
        half, keep = size, level.length - size
        high, low, fall = level["high"], level["low"], level["fall"]
        new_fall = level.spare["fall"][:keep]
        np.subtract(high[:keep], low[half : half + keep], out=new_fall)
        np.maximum(new_fall, fall[half : half + keep], out=new_fall)
        np.maximum(new_fall, fall[:keep], out=new_fall)
        np.maximum(high[:keep], high[half : half + keep], out=level.spare["high"][:keep])
        np.minimum(low[:keep], low[half : half + keep], out=level.spare["low"][:keep])
        for name in ("fall", "high", "low"):
            level.swap(name)
        level.length, level.size = keep, size * 2
        depth += 1
    return [results[window] for window in windows]


def rolling_max_drawdown(x: np.ndarray, window: int) -> np.ndarray:
    """`rolling_max_drawdowns` for one window length."""
    return rolling_max_drawdowns(x, (window,))[0]


def rolling_rows_since_max(x: np.ndarray, windows: Sequence[int]) -> list[np.ndarray]:
    """For each window length, rows since the window's maximum: `e - j` with j the latest row at the max.

    Ties go to the latest row: a price that revisits its high resets the count.
    """
    x, windows = _prepare(x, windows)
    n = x.shape[0]
    results = {window: np.full(n, np.nan) for window in windows}
    pending = sorted(window for window in set(windows) if window <= n)
    level = _Level({"high": x.copy(), "where": np.arange(n, dtype=np.int64)})
    later = np.empty(n, dtype=bool)
    depth = 0
    while pending:
        size = level.size
        for window in [w for w in pending if w.bit_length() - 1 == depth]:
            pending.remove(window)
            count = n - window + 1
            shift = window - size  # block B (the window's last `size` rows) starts `shift` rows after A
            high, where = level["high"], level["where"]
            second_wins = high[shift : shift + count] >= high[:count]
            latest = np.where(second_wins, where[shift : shift + count], where[:count])
            results[window][window - 1 :] = np.arange(window - 1, n) - latest
        if not pending:
            break
        half, keep = size, level.length - size
        high, where = level["high"], level["where"]
        np.greater_equal(high[half : half + keep], high[:keep], out=later[:keep])  # the later half wins ties
        np.copyto(level.spare["where"][:keep], where[:keep])
        np.copyto(level.spare["where"][:keep], where[half : half + keep], where=later[:keep])
        np.maximum(high[:keep], high[half : half + keep], out=level.spare["high"][:keep])
        for name in ("high", "where"):
            level.swap(name)
        level.length, level.size = keep, size * 2
        depth += 1
    return [results[window] for window in windows]
