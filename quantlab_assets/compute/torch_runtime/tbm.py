"""Seed 002's triple-barrier classifier on sequence windows: transformer encoder, focal loss, out of fold.

Target `hits_upper` at the window's last day e: 1 if the triple barrier from e (±1.5 ATR, 10 trading days;
labels issue) is first touched on the upper side, 0 if the lower or the vertical one comes first.
Network: the encoder of seed 003's transformer (`TransformerForecaster.encode`; its own heads are never
called) with seed 002's "golden config" (d_model 128, 2 layers, 4 heads, dropout 0.23), then one logit.
Loss: binary focal loss (Lin et al. 2017), FL = -alpha_t (1 - p_t)^gamma log p_t, gamma 2, alpha off by
default (the seed names the loss, not its parameters). AdamW at lr 6.7e-5 (the seed's), cosine warm-up,
early stopping on the validation focal loss, the best epoch's weights kept.

Folds: the 21d walk-forward folds, which purge and embargo more than the barrier's 10-day window needs;
validation = the latest 20 % of a fold's training dates after a 10-date gap (`oof_engine.split_validation`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.nn import functional

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.configs import TBM_LEARNING_RATE, TbmConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime import oof_engine as engine
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

PROBABILITY = "tbm_probability"
HITS_UPPER = "hits_upper"
PREDICTION_COLUMNS = (c.DATE, c.TICKER, cv.FOLD_ID, PROBABILITY, HITS_UPPER)
FOLD_HORIZON = 21
BARRIER_DAYS = 10


def tbm_targets(labels: pl.DataFrame) -> pl.DataFrame:
    """date, ticker, hits_upper (1.0 / 0.0) on the rows whose triple barrier is resolved (as barrier.py's)."""
    return labels.filter(pl.col("tb_label").is_not_null()).select(
        c.DATE, c.TICKER, (pl.col("tb_label") == 1).cast(pl.Float64).alias(HITS_UPPER))


class TbmClassifier(nn.Module):
    def __init__(self, config: TbmConfig) -> None:
        super().__init__()
        self.backbone = TransformerForecaster(config.encoder_config())
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, F) -> logits (B,)."""
        return self.head(self.backbone.encode(windows))[:, 0]


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None) -> torch.Tensor:
    """Mean binary focal loss of logits (B,) for targets (B,) in {0, 1}; gamma 0 and alpha None give BCE."""
    targets = targets.to(logits.dtype)
    bce = functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_true = torch.exp(-bce)
    weight = (1 - p_true) ** gamma
    if alpha is not None:
        weight = weight * (alpha * targets + (1 - alpha) * (1 - targets))
    return (weight * bce).mean()


@dataclass(frozen=True)
class TbmOofResult:
    """predictions: PREDICTION_COLUMNS on test dates; epochs: (fold_id, epoch, train_loss, val_loss,
    probability_std); states: the best epoch's weights per fold."""

    predictions: pl.DataFrame
    epochs: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


class TbmModule(engine.BestEpochModule):
    """Focal loss; per epoch the losses and the std of the validation probabilities."""

    def __init__(self, config: TbmConfig, training: engine.TrainingConfig, panel: WindowPanel, total_steps: int,
                 fold_id: int) -> None:
        super().__init__(TbmClassifier(config), panel, training, training.warmup_steps, total_steps)
        self.config, self.fold_id = config, fold_id

    def _step(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows, targets = gather_windows(self.panel, starts)
        logits = self.model(windows).float()
        return logits, focal_loss(logits, targets[:, 0], self.config.focal_gamma, self.config.focal_alpha)

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        return self._step(starts)[1]

    def validation_parts(self, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, loss = self._step(starts)
        return {"loss": loss.detach(), "probability": torch.sigmoid(logits.detach())}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        probabilities = torch.cat([part["probability"] for part in parts])
        return [{"fold_id": self.fold_id, "epoch": int(self.current_epoch), "train_loss": train_loss,
                 "val_loss": val_loss, "probability_std": float(probabilities.std())}]


def fold_windows(panel: WindowPanel, folds: pl.DataFrame, training: engine.TrainingConfig) -> Iterator[engine.FoldWindows]:
    """The 21d walk-forward folds with two batches of training windows, validated after a BARRIER_DAYS gap
    (the classifier's and the SupCon encoders')."""
    return engine.oof_folds(panel, folds, FOLD_HORIZON, training.validation_share, BARRIER_DAYS,
                            engine.at_least_windows(2 * training.batch_size))


def outcome_frame(panel: WindowPanel, fold: engine.FoldWindows, probability_column: str,
                  probability: np.ndarray) -> pl.DataFrame:
    """A fold's test windows with their P(hits_upper) under `probability_column` and the outcome (Int8)."""
    return engine.prediction_keys(panel, fold).with_columns(
        pl.Series(probability_column, probability),
        pl.Series(HITS_UPPER, engine.window_targets(panel, fold.test)[:, 0]).cast(pl.Int8))


def fit_oof_tbm(panel: WindowPanel, folds: pl.DataFrame, config: TbmConfig, training: engine.TrainingConfig,
                device: DeviceChoice) -> TbmOofResult:
    """Out-of-fold P(hits_upper) of the panel's first target (0/1) over the 21d walk-forward folds."""
    def prepare(fold: engine.FoldWindows):
        module = TbmModule(config, training, panel, engine.total_steps(fold.fit, training), fold.fold_id)
        return module, *engine.fold_loaders(fold, training)

    def predict(model: nn.Module, fold: engine.FoldWindows) -> pl.DataFrame:
        probability = engine.predict_windows(lambda windows: torch.sigmoid(model(windows).float()), model, panel,
                                             fold.test, device.device)
        return outcome_frame(panel, fold, PROBABILITY, probability)

    fitted = engine.train_out_of_fold(fold_windows(panel, folds, training), training, device, prepare, predict,
                                      "tbm classifier: no walk-forward fold has enough training windows and test windows")
    return TbmOofResult(fitted.predictions.sort(c.DATE, c.TICKER).select(PREDICTION_COLUMNS), pl.DataFrame(fitted.records),
                        fitted.states, fitted.best_epochs)
