"""Seed 003 phase 3's masked time-series encoder (BERT-like, plain torch): network, masking and loss.

- Patches: a window (B, seq_len, F) is cut into P = seq_len // patch_size non-overlapping patches of
  `patch_size` days (5: a trading week), each flattened to patch_size * F values. When seq_len is not a
  multiple of the patch size, the oldest seq_len % patch_size days are left out, never the newest: the
  window still ends at its last day t (63 days -> the latest 60, 12 patches).
- Masking: `n_masked` of the P patches of each window, chosen uniformly at random by a seeded generator,
  have their token replaced by one learnable [MASK] token; `n_masked` is the whole number of patches
  nearest `mask_ratio` x P inside [15 %, 30 %] of P (the seed's range), an error if there is none.
- Encoder: a linear patch projection (patch_size * F -> d_model), sinusoidal patch positions, the
  forecaster's pre-norm encoder layers (GELU, norm_first) and a final LayerNorm.
- Reconstruction head: Linear(d_model -> patch_size * F); the loss is the MSE between the reconstructed
  and the original values of the masked patches only (unmasked patches are visible, copying them
  teaches nothing).
- Embedding: the mean of the encoder's patch outputs over an unmasked window. Mean pooling, not a [CLS]
  token: the reconstruction loss reads only patch outputs, so a [CLS] output would never be trained.
"""

from __future__ import annotations

import torch
from torch import nn

from quantlab_assets.compute.torch_runtime.configs import MAX_MASK_RATIO, MIN_MASK_RATIO, MaskedEncoderConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime.transformer import SinusoidalPositions


def patchify(windows: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, seq_len, F) -> (B, P, patch_size * F): the latest P * patch_size days, one row per patch (days in order)."""
    batch, length, features = windows.shape
    patches = length // patch_size
    return windows[:, length - patches * patch_size :].reshape(batch, patches, patch_size * features)


def random_patch_mask(batch: int, n_patches: int, n_masked: int, generator: torch.Generator) -> torch.Tensor:
    """(B, P) bool, exactly `n_masked` True per row at positions drawn uniformly from `generator` (CPU)."""
    chosen = torch.rand(batch, n_patches, generator=generator).argsort(dim=1)[:, :n_masked]
    return torch.zeros(batch, n_patches, dtype=torch.bool).scatter_(1, chosen, True)


def masked_mse(reconstruction: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the values of the masked patches only: reconstruction and patches (B, P, V), mask (B, P)."""
    squared = (reconstruction - patches).pow(2).mean(dim=2)  # (B, P): per patch
    return squared[mask].mean()


class MaskedTimeSeriesEncoder(nn.Module):
    def __init__(self, config: MaskedEncoderConfig) -> None:
        super().__init__()
        self.config = config
        values = config.patch_size * config.n_features
        self.patch_projection = nn.Linear(values, config.d_model)
        self.mask_token = nn.Parameter(torch.randn(1, 1, config.d_model) * 0.02)
        self.positions = SinusoidalPositions(config.d_model, config.n_patches)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.dim_ff, config.dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.d_model)
        self.reconstruction_head = nn.Linear(config.d_model, values)

    def encode(self, windows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, seq_len, F) and an optional (B, P) mask -> patch outputs (B, P, d_model)."""
        tokens = self.patch_projection(patchify(windows, self.config.patch_size))
        if mask is not None:
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        return self.final_norm(self.encoder(self.positions(tokens)))

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, F) -> the pooled embedding (B, d_model) of the unmasked windows."""
        return self.encode(windows).mean(dim=1)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reconstruction of every patch (B, P, patch_size * F), the original patches and the masked loss."""
        reconstruction = self.reconstruction_head(self.encode(windows, mask))
        patches = patchify(windows, self.config.patch_size)
        return {"reconstruction": reconstruction, "patches": patches, "loss": masked_mse(reconstruction, patches, mask)}
