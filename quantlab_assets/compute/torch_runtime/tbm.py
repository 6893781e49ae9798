"""Seed 002's triple-barrier classifier on sequence windows: transformer encoder, focal loss, out of fold.

Target `hits_upper` at the window's last day e: 1 if the triple barrier from e (±1.5 ATR, 10 trading days;
labels issue) is first touched on the upper side, 0 if the lower or the vertical one comes first.
Network: the encoder of seed 003's transformer (`TransformerForecaster.encode`; its own heads are never
called) with seed 002's "golden config" (d_model 128, 2 layers, 4 heads, dropout 0.23), then one logit.
Loss: binary focal loss (Lin et al. 2017), FL = -alpha_t (1 - p_t)^gamma log p_t, gamma 2, alpha off by
default (the seed names the loss, not its parameters). AdamW at lr 6.7e-5 (the seed's), cosine warm-up,
early stopping on the validation focal loss, the best epoch's weights kept.

Folds: the 21d walk-forward folds, which purge and embargo more than the barrier's 10-day window needs;
validation = the latest 20 % of a fold's training dates after a 10-date gap (`training._split_validation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn
from torch.nn import functional

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.training import (
    TrainingConfig,
    _loader,
    _split_validation,
    fold_starts,
    walk_forward_folds,
)
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig, TransformerForecaster, cosine_warmup
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

PROBABILITY = "tbm_probability"
HITS_UPPER = "hits_upper"
PREDICTION_COLUMNS = (c.DATE, c.TICKER, cv.FOLD_ID, PROBABILITY, HITS_UPPER)
FOLD_HORIZON = 21
BARRIER_DAYS = 10
_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class TbmConfig:
    """Seed 002's golden config (its tuner's trial 31); dim_ff and seq_len are seed 003's."""

    n_features: int
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    dim_ff: int = 512
    dropout: float = 0.23
    seq_len: int = 63
    focal_gamma: float = 2.0
    # Weight of the positive class in the focal loss; None: unweighted.
    focal_alpha: float | None = None

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(n_features=self.n_features, d_model=self.d_model, n_heads=self.n_heads,
                                 n_layers=self.n_layers, dim_ff=self.dim_ff, dropout=self.dropout, seq_len=self.seq_len)


def tbm_targets(labels: pl.DataFrame) -> pl.DataFrame:
    """date, ticker, hits_upper (1.0 / 0.0) on the rows whose triple barrier is resolved (as barrier.py's)."""
    return labels.filter(pl.col("tb_label").is_not_null()).select(
        c.DATE, c.TICKER, (pl.col("tb_label") == 1).cast(pl.Float64).alias(HITS_UPPER))


def tbm_training_config(**overrides: object) -> TrainingConfig:
    """The transformer's optimisation settings at seed 002's lr 6.7e-5."""
    return TrainingConfig(**{"lr": 6.7e-5, **overrides})


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


class TbmModule(L.LightningModule):
    def __init__(self, config: TbmConfig, training: TrainingConfig, panel: WindowPanel, total_steps: int, fold_id: int) -> None:
        super().__init__()
        self.model = TbmClassifier(config)
        self.config, self.training, self.panel, self.total_steps, self.fold_id = config, training, panel, total_steps, fold_id
        self.epochs: list[dict[str, float | int]] = []
        self._train_losses: list[float] = []
        self._validation: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss, self.best_epoch = float("inf"), -1

    def on_fit_start(self) -> None:
        self.panel = self.panel.to(self.device)

    def _step(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows, targets = gather_windows(self.panel, starts)
        logits = self.model(windows).float()
        return logits, focal_loss(logits, targets[:, 0], self.config.focal_gamma, self.config.focal_alpha)

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        _, loss = self._step(batch[0])
        self._train_losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        logits, loss = self._step(batch[0])
        self._validation.append((loss.detach() * batch[0].shape[0], torch.sigmoid(logits.detach()), batch[0].shape[0]))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validation:
            self._validation.clear()
            return
        val_loss = float(sum(part[0] for part in self._validation) / sum(part[2] for part in self._validation))
        probabilities = torch.cat([part[1] for part in self._validation])
        self.epochs.append({"fold_id": self.fold_id, "epoch": int(self.current_epoch),
                            "train_loss": float(np.mean(self._train_losses)) if self._train_losses else float("nan"),
                            "val_loss": val_loss, "probability_std": float(probabilities.std())})
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, int(self.current_epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.log("val_loss", val_loss)
        self._validation.clear()
        self._train_losses.clear()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.training.lr, weight_decay=self.training.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_warmup(step, self.training.warmup_steps, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@torch.no_grad()
def predict_probabilities(model: TbmClassifier, panel: WindowPanel, starts: torch.Tensor) -> np.ndarray:
    model.eval()
    parts = [torch.sigmoid(model(gather_windows(panel, starts[i : i + _PREDICT_BATCH])[0]).float()).cpu()
             for i in range(0, starts.shape[0], _PREDICT_BATCH)]
    return torch.cat(parts).numpy().astype(np.float64)


def fit_oof_tbm(panel: WindowPanel, folds: pl.DataFrame, config: TbmConfig, training: TrainingConfig,
                device: DeviceChoice) -> TbmOofResult:
    """Out-of-fold P(hits_upper) of the panel's first target (0/1) over the 21d walk-forward folds."""
    predictions, epochs, states, best_epochs = [], [], {}, {}
    for fold_id, fold in walk_forward_folds(folds, FOLD_HORIZON):
        train, test = fold_starts(panel, fold, cv.TRAIN), fold_starts(panel, fold, cv.TEST)
        if train.shape[0] < 2 * training.batch_size or test.shape[0] == 0:
            continue
        fit, validation = _split_validation(panel, train, training.validation_share, BARRIER_DAYS)
        seed_everything(training.seed + fold_id, deterministic=not device.is_cuda)
        steps = training.max_epochs * -(-fit.shape[0] // training.batch_size)
        module = TbmModule(config, training, panel, steps, fold_id)
        trainer = L.Trainer(
            accelerator=device.lightning_accelerator, devices=1, precision=device.lightning_precision,
            max_epochs=training.max_epochs, gradient_clip_val=training.grad_clip, deterministic=not device.is_cuda,
            callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=training.patience)],
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, _loader(fit, training.batch_size, training.seed + fold_id), _loader(validation, training.batch_size, None))
        module.model.load_state_dict(module.best_state)
        instrument, last_day = panel.last_rows(test)
        probability = predict_probabilities(module.model.to(device.device), panel.to(device.device), test.to(device.device))
        predictions.append(pl.DataFrame({
            c.DATE: panel.dates.gather(last_day.numpy()),
            c.TICKER: pl.Series(panel.instruments).gather(instrument.numpy()),
            cv.FOLD_ID: pl.Series([fold_id] * test.shape[0], dtype=pl.Int64),
            PROBABILITY: probability,
            HITS_UPPER: pl.Series(panel.flat_targets[test.long() + (panel.seq_len - 1), 0].numpy()).cast(pl.Int8),
        }))
        epochs += module.epochs
        states[fold_id], best_epochs[fold_id] = module.best_state, module.best_epoch
    if not predictions:
        raise ValueError("tbm classifier: no walk-forward fold has enough training windows and test windows")
    return TbmOofResult(pl.concat(predictions).sort(c.DATE, c.TICKER).select(PREDICTION_COLUMNS), pl.DataFrame(epochs),
                        states, best_epochs)
