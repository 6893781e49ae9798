"""A deep model's inputs: which columns of the features asset it reads, and their window panel with its targets."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, build_window_panel

# Scale-free inputs: the winsorised industry z-scores and the rolling z-scores of the features asset.
INPUT_SUFFIXES = ("__wz", "__rz")


def input_features(features: pl.DataFrame) -> list[str]:
    """The features asset's columns a deep model reads (INPUT_SUFFIXES), in the frame's order."""
    return [n for n in features.columns if n.endswith(INPUT_SUFFIXES)]


def input_panel(features: pl.DataFrame, targets: pl.DataFrame, seq_len: int,
                names: Sequence[str] | None = None) -> tuple[WindowPanel, list[str]]:
    """The window panel of the inputs `names` (default: `input_features`) on the (date, ticker) rows `targets`
    also holds, its targets the other columns of `targets` in order; and the input names."""
    names = input_features(features) if names is None else list(names)
    frame = features.select(c.DATE, c.TICKER, *names).join(targets, on=[c.DATE, c.TICKER])
    target_names = [n for n in targets.columns if n not in (c.DATE, c.TICKER)]
    return build_window_panel(frame, names, target_names, seq_len), names
