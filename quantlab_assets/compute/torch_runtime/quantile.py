"""Seed 001's multi-horizon quantile forecaster (plain torch): network, losses, date-grouped batches.

Network: the encoder of seed 003's transformer (`TransformerForecaster.encode`: input projection,
positions, [CLS], pre-norm layers, final LayerNorm; its own three heads are never called, receive no
gradient and AdamW skips them), then one head per horizon (1, 5, 10, 20 days): Linear(d_model, hidden)
-> GELU -> Linear(hidden, 3). The three outputs are the median and two log-spaced offsets, so the
quantiles never cross: q50 = raw_1, q10 = q50 - softplus(raw_0), q90 = q50 + softplus(raw_2). The point
forecast is the median.

Targets: the forward return of each horizon, z-scored across the instruments of each date (the seed's
cross-sectional normalisation: mean 0, std 1 per date).

Loss (seed 001, phase 3) per batch, a batch being whole cross-sections (`DateBatches`):
- pinball loss over the three quantiles and the four horizons (mean);
- RankIC loss, weight 0.5: minus the mean over dates of the Pearson correlation of the median with the
  cross-sectional *ranks* of the target. Differentiable in the prediction because only the target is
  ranked (a constant of the batch); it rewards ordering the cross-section as the targets are ordered,
  without a soft-sort's temperature. It is not Spearman's rho of the predictions (those are not ranked);
  the scorecard's rank IC is;
- cross-sectional IC loss, weight 0.25: minus the mean per-date Pearson correlation of median and target;
- variance penalty, weight 0.1: the mean over dates of relu(min_dispersion_ratio - std(median)/std(target)),
  which pushes a median whose cross-sectional dispersion falls under a floor back out.
Dates with fewer than 3 windows in a batch have no correlation and are left out of the aux terms.

The collapse (seed 001, reproduced; docs/studies.md, "The quantile forecaster's collapse, reproduced"): with `head_init="zero"`
every head's weights and biases start at 0. The hidden activations are GELU(0) = 0 for every window, so
the gradient of the output weights (hidden activations x output error) is 0, the gradient reaching the
hidden layer and the encoder passes through the zero output weights and is 0, and only the output bias
learns: each horizon's quantiles become three constants (the target's pooled quantiles, about 0 for
the median of cross-sectionally normalised targets). No term of the loss can leave that point: every
gradient to the parameters passes through the zero activations or the zero weights, and the variance
penalty's own gradient, d std/d p_i = (p_i - mean p) / (n std), is 0 at a constant whatever the eps.
So a lower learning rate, larger aux weights or a variance penalty change nothing (the seed's phase 3),
while the pinball loss still falls (the bias learns the median), as the seed's log said.
"""

from __future__ import annotations

from collections.abc import Iterator
import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import Sampler

from quantlab_assets.compute.torch_runtime.configs import HEAD_INITS, HORIZONS, HeadInit, QuantileConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster

QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
MEDIAN = QUANTILES.index(0.5)
QUANTILE_COLUMNS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
# A date needs this many windows in a batch for a correlation (as the scorecard's MIN_ROWS_PER_DATE).
MIN_ROWS_PER_DATE = 3
_EPS = 1e-8


def _head(config: QuantileConfig) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(config.d_model, config.head_hidden), nn.GELU(),
                         nn.Linear(config.head_hidden, len(QUANTILES)))
    if config.head_init == "zero":
        for parameter in head.parameters():
            nn.init.zeros_(parameter)
    return head


class QuantileForecaster(nn.Module):
    def __init__(self, config: QuantileConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = TransformerForecaster(config.encoder_config())
        self.horizon_heads = nn.ModuleDict({str(h): _head(config) for h in config.horizons})

    def heads(self) -> dict[int, nn.Module]:
        return {int(h): module for h, module in self.horizon_heads.items()}

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, seq_len, F) -> representation (B, d_model) and quantiles (B, horizons, 3), ascending."""
        representation = self.backbone.encode(windows)
        raw = torch.stack([self.horizon_heads[str(h)](representation) for h in self.config.horizons], dim=1)
        median = raw[..., MEDIAN]
        below = median.unsqueeze(-1) - functional.softplus(raw[..., :MEDIAN]).flip(-1).cumsum(-1).flip(-1)
        above = median.unsqueeze(-1) + functional.softplus(raw[..., MEDIAN + 1 :]).cumsum(-1)
        return {"representation": representation,
                "quantiles": torch.cat([below, median.unsqueeze(-1), above], dim=-1)}


def pinball_loss(quantiles: torch.Tensor, targets: torch.Tensor, levels: tuple[float, ...] = QUANTILES) -> torch.Tensor:
    """Mean pinball loss of quantiles (B, H, Q) for targets (B, H): max(q * e, (q - 1) * e), e = y - yhat."""
    level = torch.tensor(levels, dtype=quantiles.dtype, device=quantiles.device)
    error = targets.unsqueeze(-1) - quantiles
    return torch.maximum(level * error, (level - 1) * error).mean()


def _group_sum(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    return torch.zeros(n_groups, values.shape[1], dtype=values.dtype, device=values.device).index_add(0, groups, values)


def _centred(values: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """values (B, H) less their group's mean, and the (G, 1) group sizes."""
    n_groups = int(groups.max()) + 1
    counts = torch.bincount(groups, minlength=n_groups).to(values.dtype).unsqueeze(-1)
    return values - (_group_sum(values, groups, n_groups) / counts)[groups], counts


def grouped_correlation(x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pearson correlation of x and y (B, H) within each group (B,) of ids 0..G-1: (G, H), and the (G,)
    mask of groups with at least MIN_ROWS_PER_DATE rows. eps keeps a constant x finite (correlation 0)."""
    (dx, counts), (dy, _) = _centred(x, groups), _centred(y, groups)
    n_groups = counts.shape[0]
    covariance = _group_sum(dx * dy, groups, n_groups)
    scale = torch.sqrt(_group_sum(dx * dx, groups, n_groups) * _group_sum(dy * dy, groups, n_groups) + _EPS)
    return covariance / scale, counts[:, 0] >= MIN_ROWS_PER_DATE


def group_std(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Population std (G, H) of values (B, H) within each group; eps keeps its gradient finite at 0."""
    centred, counts = _centred(values, groups)
    return torch.sqrt(_group_sum(centred * centred, groups, counts.shape[0]) / counts + _EPS)


def grouped_ranks(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Ordinal rank (0-based, float) of each of values (B, H) within its group (B,), per column."""
    ranks = torch.empty_like(values)
    counts = torch.bincount(groups)
    group_start = torch.cumsum(counts, 0) - counts
    position = torch.arange(values.shape[0], device=values.device)
    for column in range(values.shape[1]):  # the horizons: 4 sorts of the batch
        by_value = torch.argsort(values[:, column], stable=True)
        order = by_value[torch.argsort(groups[by_value], stable=True)]
        ranks[order, column] = (position - group_start[groups[order]]).to(values.dtype)
    return ranks


def group_ids(days: torch.Tensor) -> torch.Tensor:
    """Dense ids 0..G-1 of the distinct last days of a batch's windows: one group per date."""
    return torch.unique(days, return_inverse=True)[1]


def quantile_loss(outputs: dict[str, torch.Tensor], targets: torch.Tensor, groups: torch.Tensor,
                  config: QuantileConfig) -> dict[str, torch.Tensor]:
    """The weighted loss and its parts for targets (B, H) of windows in date groups (B,)."""
    quantiles = outputs["quantiles"].float()
    median = quantiles[..., MEDIAN]
    pinball = pinball_loss(quantiles, targets)
    ic, valid = grouped_correlation(median, targets, groups)
    rank_ic, _ = grouped_correlation(median, grouped_ranks(targets, groups), groups)
    ratio = group_std(median, groups) / group_std(targets, groups)
    dispersion = functional.relu(config.min_dispersion_ratio - ratio)
    if bool(valid.any()):
        ic_term, rank_term, variance = ic[valid].mean(), rank_ic[valid].mean(), dispersion[valid].mean()
    else:
        ic_term = rank_term = variance = median.sum() * 0.0
    total = (pinball - config.weight_rank_ic * rank_term - config.weight_ic * ic_term
             + config.weight_variance * variance)
    return {"loss": total, "pinball": pinball, "ic": ic_term, "rank_ic": rank_term, "variance": variance}


class DateBatches(Sampler[list[int]]):
    """Batches of whole cross-sections: the indices of all windows whose last day is one of
    `dates_per_batch` dates, the dates in a random order seeded by (seed, epoch), or in date order
    without a seed. Lightning calls `set_epoch` before each training epoch."""

    def __init__(self, last_days: np.ndarray, dates_per_batch: int, seed: int | None) -> None:
        self.days, self.inverse = np.unique(last_days, return_inverse=True)
        self.dates_per_batch, self.seed, self.epoch = dates_per_batch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.days) // self.dates_per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        position = np.arange(len(self.days))
        if self.seed is not None:
            position = np.empty_like(position)
            position[np.random.default_rng([self.seed, self.epoch]).permutation(len(self.days))] = np.arange(len(self.days))
        key = position[self.inverse]
        order = np.argsort(key, kind="stable")
        batch = key[order] // self.dates_per_batch
        yield from (chunk.tolist() for chunk in np.split(order, np.flatnonzero(np.diff(batch)) + 1))
