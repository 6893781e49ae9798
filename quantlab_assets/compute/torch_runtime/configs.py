"""The settings of the lab's torch models and of their training: plain dataclasses, free of torch.

They live apart from the networks so that the Dagster definitions, which build their run config from
them (defs/config.py: config_from), import neither torch nor lightning: every run process loads the
definitions, and those two take about 3.5 s to import. Each is re-exported by the module of its network
(transformer.py, tft.py, masked_encoder.py, tbm.py, supcon.py, quantile.py, oof_engine.py,
quantile_training.py), where the code that uses it imports it from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from quantlab_assets.compute.params import described

if TYPE_CHECKING:
    from quantlab_assets.compute.torch_runtime.tft import TemporalFusionForecaster
    from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster

MIN_MASK_RATIO = 0.15
MAX_MASK_RATIO = 0.30
# Seed 002's learning rate (its tuner's trial 31); the rest of the optimisation is the transformer's.
TBM_LEARNING_RATE = 6.7e-5
HORIZONS: tuple[int, ...] = (1, 5, 10, 20)
HeadInit = Literal["default", "zero"]
HEAD_INITS: tuple[str, ...] = ("default", "zero")


@dataclass(frozen=True, kw_only=True)
class EncoderSizes:
    """Seed 003's encoder sizes (d_model 128, 8 heads, 4 layers, dim_ff 512, seq_len 63), shared by the
    transformer forecaster, the quantile forecaster and the masked encoder; tests shrink them."""

    d_model: int = described(128, "Width of the encoder (the model dimension).")
    n_heads: int = described(8, "Attention heads per layer.")
    n_layers: int = described(4, "Encoder layers.")
    dim_ff: int = described(512, "Width of each layer's feed-forward block.")
    dropout: float = described(0.1, "Dropout rate of the encoder.")
    seq_len: int = described(63, "Trading days in each input window.")


@dataclass(frozen=True, kw_only=True)
class ForecastLoss:
    """The forecasting heads' loss weights and flat-direction threshold (the transformer's and the TFT's)."""

    flat_threshold: float = described(
        0.01, "Returns within +-flat_threshold (log return over the horizon) are the \"flat\" direction class.")
    weight_nll: float = described(1.0, "Weight of the Gaussian negative log-likelihood (mean head) in the loss.")
    weight_direction: float = described(0.5, "Weight of the direction classification (up / flat / down) in the loss.")
    weight_volatility: float = described(0.5, "Weight of the volatility head in the loss.")


@dataclass(frozen=True)
class OptimisationConfig:
    """What every deep fit shares (seed 003: AdamW, gradient clipping, early stopping on a validation share)."""

    lr: float = described(3e-4, "AdamW learning rate (peak, after the linear warm-up).")
    weight_decay: float = described(0.01, "AdamW weight decay.")
    max_epochs: int = described(20, "Most epochs per fit; early stopping may end it sooner.")
    patience: int = described(3, "Epochs without a lower validation loss before training stops.")
    grad_clip: float = described(1.0, "Gradient norm clipping threshold.")
    validation_share: float = described(0.2, "Latest share of the training dates that selects the epoch.")
    seed: int = described(42, "Seed of the weights, batches and dropout (plus the fold id per fold).")


@dataclass(frozen=True)
class TrainingConfig(OptimisationConfig):
    """Optimisation over shuffled batches of windows, with a cosine schedule after `warmup_steps` linear ones."""

    batch_size: int = described(256, "Windows per batch.")
    warmup_steps: int = described(200, "Optimiser steps of linear learning-rate warm-up before the cosine decay.")


@dataclass(frozen=True)
class TransformerConfig(ForecastLoss, EncoderSizes):
    """Seed 003's transformer forecaster: its encoder sizes and its heads' loss."""

    n_features: int

    def build(self) -> TransformerForecaster:
        from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster

        return TransformerForecaster(self)


@dataclass(frozen=True)
class TftConfig(ForecastLoss):
    """The TFT's sizes; the loss weights and flat threshold mean what they mean in TransformerConfig."""

    n_features: int
    d_model: int = described(64, "Width of the encoder (the model dimension).")
    n_heads: int = described(4, "Attention heads per layer.")
    lstm_layers: int = described(1, "LSTM layers of the TFT's local encoder.")
    dropout: float = described(0.1, "Dropout rate of the encoder.")
    seq_len: int = described(63, "Trading days in each input window.")

    def build(self) -> TemporalFusionForecaster:
        from quantlab_assets.compute.torch_runtime.tft import TemporalFusionForecaster

        return TemporalFusionForecaster(self)


@dataclass(frozen=True)
class MaskedEncoderConfig(EncoderSizes):
    """Seed 003's encoder (the forecaster's d_model 128, 8 heads, 4 layers, dim_ff 512; patch 5, seq_len 63)."""

    n_features: int
    patch_size: int = described(5, "Days per patch (one token of the encoder).")
    mask_ratio: float = described(
        0.2, "Share of the patches masked in pre-training (seed 003: 15-30 %; 0.2 of 12 patches masks 2).")

    @property
    def n_patches(self) -> int:
        return self.seq_len // self.patch_size

    @property
    def n_masked(self) -> int:
        """Patches masked per window: the count nearest mask_ratio * P among those within [15 %, 30 %] of P."""
        if not MIN_MASK_RATIO <= self.mask_ratio <= MAX_MASK_RATIO:
            raise ValueError(f"mask_ratio {self.mask_ratio} outside [{MIN_MASK_RATIO}, {MAX_MASK_RATIO}]")
        patches = self.n_patches
        low, high = math.ceil(MIN_MASK_RATIO * patches - 1e-9), math.floor(MAX_MASK_RATIO * patches + 1e-9)
        if patches < 1 or low > high:
            raise ValueError(f"{patches} patches of {self.patch_size} days in seq_len {self.seq_len}: no whole number "
                             f"of them lies within [{MIN_MASK_RATIO:.0%}, {MAX_MASK_RATIO:.0%}]; lengthen seq_len")
        return min(max(round(self.mask_ratio * patches), low), high)

    @property
    def realised_mask_ratio(self) -> float:
        return self.n_masked / self.n_patches


@dataclass(frozen=True)
class TbmConfig:
    """Seed 002's golden config (its tuner's trial 31); dim_ff and seq_len are seed 003's."""

    n_features: int
    d_model: int = described(128, "Width of the encoder (the model dimension).")
    n_heads: int = described(4, "Attention heads per layer.")
    n_layers: int = described(2, "Encoder layers.")
    dim_ff: int = described(512, "Width of each layer's feed-forward block.")
    dropout: float = described(0.23, "Dropout rate of the encoder.")
    seq_len: int = described(63, "Trading days in each input window.")
    focal_gamma: float = described(2.0, "Focusing parameter of the focal loss.")
    focal_alpha: float | None = described(None, "Weight of the positive class in the focal loss; None: unweighted.")

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(n_features=self.n_features, d_model=self.d_model, n_heads=self.n_heads,
                                 n_layers=self.n_layers, dim_ff=self.dim_ff, dropout=self.dropout, seq_len=self.seq_len)


@dataclass(frozen=True)
class SupConConfig:
    encoder: TbmConfig
    projection_dim: int = described(64, "Width of the contrastive projection head.")
    temperature: float = described(0.1, "Temperature of the supervised contrastive loss.")
    probe_c: float = described(1.0, "Inverse L2 strength of the logistic probe (sklearn's default 1.0).")
    probe_max_iter: int = described(1000, "Iterations of the probe's solver.")


@dataclass(frozen=True)
class QuantileConfig(EncoderSizes):
    """Encoder sizes as seed 003's transformer; heads, horizons and loss weights from seed 001's phase 3."""

    n_features: int
    horizons: tuple[int, ...] = HORIZONS
    head_hidden: int = described(64, "Hidden width of each quantile head.")
    head_init: HeadInit = described(
        "default", "Heads' initialisation: \"default\" (torch's) or \"zero\" (reproduces seed 001's collapse).")
    weight_rank_ic: float = described(0.5, "Weight of the rank-IC term in the loss.")
    weight_ic: float = described(0.25, "Weight of the IC term in the loss.")
    weight_variance: float = described(0.1, "Weight of the dispersion penalty in the loss.")
    # An IC of 0.05 makes the least-squares forecast's dispersion 0.05 of the target's, so the floor sits there.
    min_dispersion_ratio: float = described(
        0.05, "The median's per-date std, as a share of the target's, under which the variance penalty acts.")

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init={self.head_init!r}: expected one of {HEAD_INITS}")

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(n_features=self.n_features, d_model=self.d_model, n_heads=self.n_heads,
                                 n_layers=self.n_layers, dim_ff=self.dim_ff, dropout=self.dropout, seq_len=self.seq_len)


@dataclass(frozen=True)
class QuantileTrainingConfig(OptimisationConfig):
    """Seed 001 phase 3's optimisation settings (its environment file), plus early stopping; batches of whole dates."""

    lr: float = described(1e-4, "AdamW learning rate (peak, after the linear warm-up).")
    grad_clip: float = described(0.5, "Gradient norm clipping threshold.")
    # Four cross-sections of a 500-instrument universe are about the seed's batch of 2048 windows.
    dates_per_batch: int = described(4, "Whole cross-sections (dates) per batch.")
    warmup_epochs: int = described(5, "Epochs of linear learning-rate warm-up before the cosine decay.")
