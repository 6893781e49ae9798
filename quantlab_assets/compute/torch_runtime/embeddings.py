"""Market embeddings from the pre-trained masked encoder, and the checks they must pass.

Every complete window of the feature panel is encoded without a mask, in batches gathered from the
panel by index (never an (N, seq_len, F) array); the row (date t, ticker) holds the pooled output of the
window ending at t, i.e. that instrument's feature rows t - seq_len + 1 .. t and nothing later.

Checks (plain functions returning one line per problem, [] if none):
- finite: no NaN or infinity in any embedding;
- not collapsed: every dimension varies over the rows (std above a tolerance) and the rows are not all
  one vector (seed 001's collapse, in representation space);
- no look-ahead: at a few cut dates d, the embeddings recomputed from the features up to d only (every
  later row removed) equal the stored ones at d.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl
import torch

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.torch_runtime.masked_encoder import MaskedTimeSeriesEncoder
from quantlab_assets.compute.torch_runtime.oof_engine import predict_windows, window_keys
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, build_window_panel

EMBEDDING_PREFIX = "emb_"
# windows.py indexes windows with a complete target; a constant one leaves completeness to the features.
_NO_TARGET = "__no_target"


def embedding_columns(d: int) -> list[str]:
    return [f"{EMBEDDING_PREFIX}{k}" for k in range(d)]


def build_feature_panel(frame: pl.DataFrame, features: Sequence[str], seq_len: int) -> WindowPanel:
    """The window panel of `frame` (date, ticker, features): every window of seq_len complete feature rows."""
    inputs = frame.select(c.DATE, c.TICKER, *features).with_columns(pl.lit(0.0, dtype=pl.Float32).alias(_NO_TARGET))
    return build_window_panel(inputs, list(features), [_NO_TARGET], seq_len)


@torch.no_grad()
def embed_panel(model: MaskedTimeSeriesEncoder, panel: WindowPanel, batch_size: int, device: torch.device,
                starts: torch.Tensor | None = None) -> pl.DataFrame:
    """(date, ticker, emb_0..emb_{d-1}) Float32 for the windows `starts` (default: every complete window)."""
    starts = panel.starts if starts is None else starts
    model = model.to(device)
    values = (predict_windows(model.embed, model, panel, starts, device, batch_size).astype(np.float32) if starts.shape[0]
              else np.empty((0, model.config.d_model), dtype=np.float32))
    vectors = pl.DataFrame(values, schema=dict.fromkeys(embedding_columns(model.config.d_model), pl.Float32), orient="row")
    return pl.concat([window_keys(panel, starts), vectors], how="horizontal").sort(c.DATE, c.TICKER)


def nonfinite_problems(embeddings: pl.DataFrame) -> list[str]:
    columns = [n for n in embeddings.columns if n.startswith(EMBEDDING_PREFIX)]
    counts = embeddings.select(pl.col(columns).is_finite().not_().sum()).row(0, named=True)
    return [f"{name}: {count} non-finite values" for name, count in counts.items() if count]


def collapse_problems(embeddings: pl.DataFrame, min_std: float) -> list[str]:
    """Dimensions whose std over all rows is at most `min_std`, and rows that are all one vector."""
    columns = [n for n in embeddings.columns if n.startswith(EMBEDDING_PREFIX)]
    if embeddings.height < 2:
        return [f"{embeddings.height} embedding rows: nothing varies"]
    stds = embeddings.select(pl.col(columns).std()).row(0, named=True)
    problems = [f"{name}: std {std:.3g} at most {min_std}" for name, std in stds.items() if not std > min_std]
    if embeddings.select(columns).unique().height == 1:
        problems.append(f"all {embeddings.height} rows are one vector")
    return problems


def cut_dates(embeddings: pl.DataFrame, n: int) -> list[dt.date]:
    """n dates spread evenly over the embeddings' dates (inner quantiles), for the look-ahead check."""
    dates = embeddings[c.DATE].unique().sort()
    return [dates[int(q * (dates.len() - 1))] for q in np.linspace(0, 1, n + 2)[1:-1]]


def lookahead_problems(
    model: MaskedTimeSeriesEncoder, frame: pl.DataFrame, features: Sequence[str], embeddings: pl.DataFrame,
    cuts: Sequence[dt.date], batch_size: int, device: torch.device, tolerance: float,
) -> list[str]:
    """Per cut date d: the embeddings at d recomputed from the rows of `frame` dated d or earlier only,
    against the stored ones (module docstring); a line per cut where they differ or rows are missing."""
    problems = []
    columns = embedding_columns(model.config.d_model)
    for cut in cuts:
        panel = build_feature_panel(frame.filter(pl.col(c.DATE) <= cut), features, model.config.seq_len)
        recomputed = embed_panel(model, panel, batch_size, device, panel.starts_between(cut, cut))
        stored = embeddings.filter(pl.col(c.DATE) == cut)
        joined = stored.join(recomputed, on=[c.DATE, c.TICKER], how="full", suffix="_recomputed")
        if joined.height != stored.height or joined.height != recomputed.height:
            problems.append(f"{cut}: {stored.height} stored rows, {recomputed.height} recomputed from data up to {cut}")
            continue
        difference = float(np.abs(joined.select(columns).to_numpy()
                                  - joined.select(f"{n}_recomputed" for n in columns).to_numpy()).max())
        if not difference <= tolerance:
            problems.append(f"{cut}: stored embeddings differ from those computed without later rows by {difference:.3g}")
    return problems
