"""Sequence windows that are never materialised: one dense panel tensor and an index of window starts.

Seed 002 built (N_samples, seq_len, F) arrays and spiked to 50 GB: at 500 instruments x 5,000 days x
40 features with seq_len 63 that layout needs ~20 GiB, while the panel itself is 0.37 GiB. Here:

- `WindowPanel.values`: (instruments, days, features) float32, C-contiguous, NaN where there is no bar;
- `WindowPanel.starts`: (n_windows,) int32, the flat row i * days + d of the first row of every window
  whose seq_len rows all have finite features and whose target is finite on its last day;
- `gather_windows`: a batch (B, seq_len, F) is read from a strided view of `values` (a window is a
  contiguous block of seq_len x F values), on whatever device `values` lives on (the GPU when training
  there), so a shuffled epoch reads each window once and nothing of size N x seq_len x F ever exists.

No look-ahead: a window ending on day e holds rows e - seq_len + 1 .. e of its instrument, and its
target is the label stored at day e (a forward return that the label's own window check guards).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import torch

from quantlab_assets.compute import columns as c

# Instruments per block when finding complete windows: the temporaries stay a few MB at any panel size.
_BLOCK = 64


@dataclass(frozen=True)
class WindowPanel:
    """values: (I, D, F) float32; targets: (I, D, T) float32 (NaN where unknown); starts: (N,) int32 flat
    first rows of the complete windows, in (instrument, day) order; axis labels for each dimension."""

    values: torch.Tensor
    targets: torch.Tensor
    starts: torch.Tensor
    seq_len: int
    instruments: tuple[str, ...]
    dates: pl.Series
    features: tuple[str, ...]
    target_names: tuple[str, ...]

    def to(self, device: torch.device | str) -> WindowPanel:
        """The same panel with its tensors on `device` (the index too, so gathers stay on the device)."""
        return WindowPanel(self.values.to(device), self.targets.to(device), self.starts.to(device), self.seq_len,
                           self.instruments, self.dates, self.features, self.target_names)

    @cached_property
    def windows(self) -> torch.Tensor:
        """window_view of `values`, made once."""
        return window_view(self.values, self.seq_len)

    @cached_property
    def flat_targets(self) -> torch.Tensor:
        """`targets` as (I * D, T): one row per flat (instrument, day)."""
        return self.targets.view(-1, self.targets.shape[2])

    def last_rows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(instrument, last day) of the windows `starts`: where their predictions belong."""
        last = starts.long() + (self.seq_len - 1)
        return last // self.values.shape[1], last % self.values.shape[1]

    def starts_between(self, first: object, last: object) -> torch.Tensor:
        """The windows whose last day lies in [first, last] (dates): one fold's train or test windows."""
        days = self.dates.to_numpy()
        low = int(np.searchsorted(days, np.datetime64(first), "left"))
        high = int(np.searchsorted(days, np.datetime64(last), "right"))
        _, last_day = self.last_rows(self.starts)
        return self.starts[(last_day >= low) & (last_day < high)]


def flat_positions(frame: pl.DataFrame, instruments: pl.Series, dates: pl.Series) -> np.ndarray:
    """int32 flat row i * len(dates) + d of every row of `frame` (date, ticker), by binary search in the
    sorted unique keys (a lookup table per key would allocate several times this index)."""
    instrument = instruments.search_sorted(frame[c.TICKER]).cast(pl.Int32).to_numpy()
    day = dates.search_sorted(frame[c.DATE]).cast(pl.Int32).to_numpy()
    return instrument * np.int32(dates.len()) + day


def dense_panel(frame: pl.DataFrame, columns: Sequence[str], positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(instruments, days, columns) float32, NaN where `frame` has no row or a null; filled one column at a
    time through the rows' flat positions, so building needs the panel plus one column."""
    panel = np.full((*shape, len(columns)), np.nan, dtype=np.float32)
    rows = panel.reshape(-1, len(columns))  # a view: one row per (instrument, day)
    for k, name in enumerate(columns):
        rows[positions, k] = frame[name].cast(pl.Float32).fill_null(float("nan")).to_numpy()
    return panel


def _complete_window_ends(values: np.ndarray, targets: np.ndarray, seq_len: int) -> np.ndarray:
    """(I', D) bool for a block of instruments: the window of seq_len rows ending on that day is complete."""
    features_complete = np.ones(values.shape[:2], dtype=bool)
    for k in range(values.shape[2]):  # per feature: an (I', D) temporary
        features_complete &= np.isfinite(values[:, :, k])
    counts = np.zeros((values.shape[0], values.shape[1] + 1), dtype=np.int32)
    np.cumsum(features_complete, axis=1, out=counts[:, 1:])
    full = np.zeros_like(features_complete)
    full[:, seq_len - 1 :] = (counts[:, seq_len:] - counts[:, :-seq_len]) == seq_len
    return full & np.isfinite(targets).all(axis=2)


def complete_window_starts(values: np.ndarray, targets: np.ndarray, seq_len: int) -> np.ndarray:
    """Flat first rows (int32) of the complete windows (module docstring), in (instrument, day) order.

    Two passes over blocks of instruments (count, then fill a preallocated index), so the only
    allocation of the index's size is the index itself."""
    days = values.shape[1]
    blocks = [slice(i, i + _BLOCK) for i in range(0, values.shape[0], _BLOCK)]
    counts = [int(_complete_window_ends(values[b], targets[b], seq_len).sum()) for b in blocks]
    starts = np.empty(sum(counts), dtype=np.int32)
    filled = 0
    for block, count in zip(blocks, counts, strict=True):
        ends = np.flatnonzero(_complete_window_ends(values[block], targets[block], seq_len))
        starts[filled : filled + count] = ends + (block.start * days - (seq_len - 1))
        filled += count
    return starts


def build_window_panel(
    frame: pl.DataFrame, features: Sequence[str], targets: Sequence[str], seq_len: int
) -> WindowPanel:
    """The window panel of a long frame (date, ticker, features, targets); see the module docstring."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be at least 1, got {seq_len}")
    instruments, dates = frame[c.TICKER].unique().sort(), frame[c.DATE].unique().sort()
    if instruments.len() * dates.len() >= 2**31:
        raise ValueError("panel too large for int32 window starts")
    positions = flat_positions(frame, instruments, dates)
    values = dense_panel(frame, features, positions, (instruments.len(), dates.len()))
    target_values = dense_panel(frame, targets, positions, (instruments.len(), dates.len()))
    del positions
    starts = complete_window_starts(values, target_values, seq_len)
    return WindowPanel(torch.from_numpy(values), torch.from_numpy(target_values), torch.from_numpy(starts), seq_len,
                       tuple(instruments.to_list()), dates, tuple(features), tuple(targets))


def window_view(values: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Every run of seq_len consecutive flat rows of a contiguous (I, D, F) panel, as a view
    (I * D - seq_len + 1, seq_len, F) indexed by the run's first flat row: no copy. Runs that cross two
    instruments exist in the view but are never indexed (the starts are complete windows of one)."""
    instruments, days, features = values.shape
    return values.as_strided((instruments * days - seq_len + 1, seq_len, features), (features, features, 1))


def gather_windows(panel: WindowPanel, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, seq_len, F) of the windows `starts` (B,) and their targets (B, T), gathered by index."""
    first = starts.long()
    return panel.windows[first], panel.flat_targets[first + (panel.seq_len - 1)]


def shuffled_batches(
    panel: WindowPanel, starts: torch.Tensor, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch over `starts` in a seeded random order, batch by batch (the permutation lives on their device)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    shuffled = starts.long()[torch.randperm(starts.shape[0], generator=generator).to(starts.device)]
    for start in range(0, shuffled.shape[0], batch_size):
        yield gather_windows(panel, shuffled[start : start + batch_size])
