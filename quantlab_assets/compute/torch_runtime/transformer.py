"""Seed 003 phase 2's multi-task transformer forecaster: architecture, heads and loss (plain torch).

Encoder: input projection (F -> d_model), sinusoidal positions, a learnable [CLS] token prepended,
`n_layers` pre-norm encoder layers (LayerNorm -> self-attention -> residual -> LayerNorm -> FFN with
GELU -> residual; torch's layer with norm_first, which uses scaled_dot_product_attention), a final
LayerNorm; the [CLS] output is the window's representation. Heads on it:
- Gaussian: mean and log-variance of the forward return (NLL loss);
- direction: 3 logits, down / flat / up, the class of the forward return against +-`flat_threshold`
  (cross-entropy);
- volatility: softplus output, trained on |forward return| (the seed's proxy; MSE).
Loss = w_nll * NLL + w_direction * CE + w_vol * MSE. The point forecast is the Gaussian mean.
"""

from __future__ import annotations

import math
import torch
from torch import nn
from torch.nn import functional

from quantlab_assets.compute.torch_runtime.configs import EncoderSizes, ForecastLoss, TransformerConfig  # noqa: F401 (re-exported)

HEADS = ("mean", "direction", "volatility")


class SinusoidalPositions(nn.Module):
    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        scale = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * scale)
        table[:, 1::2] = torch.cos(position * scale[: d_model // 2])
        self.register_buffer("table", table.unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[:, : x.shape[1]]


class ForecastHeads(nn.Module):
    """The three heads on a (B, d) representation: Gaussian mean and log-variance, direction logits,
    volatility (softplus). Shared by every sequence forecaster, so they all train on multitask_loss."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mean_head = nn.Linear(d_model, 2)  # mean, log-variance
        self.direction_head = nn.Linear(d_model, 3)
        self.volatility_head = nn.Linear(d_model, 1)

    def by_name(self) -> dict[str, nn.Module]:
        return {"mean": self.mean_head, "direction": self.direction_head, "volatility": self.volatility_head}

    def forward(self, representation: torch.Tensor) -> dict[str, torch.Tensor]:
        gaussian = self.mean_head(representation)
        return {
            "mean": gaussian[:, 0],
            "log_variance": gaussian[:, 1].clamp(-20.0, 10.0),
            "direction_logits": self.direction_head(representation),
            "volatility": functional.softplus(self.volatility_head(representation)[:, 0]),
        }


class TransformerForecaster(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.input_projection = nn.Linear(config.n_features, config.d_model)
        self.cls_token = nn.Parameter(torch.randn(1, 1, config.d_model) * 0.02)
        self.positions = SinusoidalPositions(config.d_model, config.seq_len + 1)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.dim_ff, config.dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.d_model)
        self.output_heads = ForecastHeads(config.d_model)

    def heads(self) -> dict[str, nn.Module]:
        return self.output_heads.by_name()

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, F) -> the [CLS] representation (B, d_model)."""
        tokens = self.input_projection(windows)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.final_norm(self.encoder(self.positions(tokens)))[:, 0]

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        representation = self.encode(windows)
        return {"representation": representation, **self.output_heads(representation)}


def direction_class(returns: torch.Tensor, flat_threshold: float) -> torch.Tensor:
    """0 down, 1 flat, 2 up: the forward return against +-flat_threshold."""
    return (returns > flat_threshold).long() + (returns >= -flat_threshold).long()


def multitask_loss(outputs: dict[str, torch.Tensor], returns: torch.Tensor, config: TransformerConfig) -> dict[str, torch.Tensor]:
    """The weighted loss and its parts, for forward returns `returns` (B,)."""
    nll = functional.gaussian_nll_loss(outputs["mean"], returns, outputs["log_variance"].exp(), full=True)
    direction = functional.cross_entropy(outputs["direction_logits"], direction_class(returns, config.flat_threshold))
    volatility = functional.mse_loss(outputs["volatility"], returns.abs())
    total = config.weight_nll * nll + config.weight_direction * direction + config.weight_volatility * volatility
    return {"loss": total, "nll": nll, "direction": direction, "volatility": volatility}


def cosine_warmup(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.05) -> float:
    """Learning-rate multiplier: linear from 0 to 1 over warmup_steps, then cosine down to min_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
