"""Self-supervised pre-training of the masked encoder with Lightning, and the embeddings it produces.

Training span: the windows whose last day is on or before `train_end` (the universe's splits.train_end,
the span ffd_orders and the regime models fit on; `training_span_starts`), chosen exactly as the
forecaster chooses a fold's training windows (`WindowPanel.starts_between`), so no row after train_end
enters a window; the transfer comparison pre-trains on a walk-forward fold's training windows instead. Their latest
`validation_share` by last day (after a gap of seq_len days, so no day is in a training and a
validation window) select the epoch: early stopping on the masked loss, the best epoch's weights kept.
Training masks are drawn from a generator seeded with `seed`; validation masks are the same every epoch
(their own seeded generator), so the validation losses of two epochs compare the same task.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import polars as pl
import torch

from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.masked_encoder import (
    MaskedEncoderConfig,
    MaskedTimeSeriesEncoder,
    random_patch_mask,
)
from quantlab_assets.compute.torch_runtime.training import TrainingConfig, _loader, _split_validation
from quantlab_assets.compute.torch_runtime.transformer import cosine_warmup
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

CURVE_COLUMNS = ("epoch", "train_loss", "val_loss")


@dataclass(frozen=True)
class PretrainResult:
    """state: the best epoch's weights (CPU); curve: CURVE_COLUMNS per epoch; the windows' span and counts."""

    state: dict[str, torch.Tensor] = field(repr=False)
    curve: pl.DataFrame
    best_epoch: int
    first_window_end: dt.date
    last_window_end: dt.date
    fit_windows: int
    validation_windows: int


class PretrainModule(L.LightningModule):
    """Lightning wrapper: batches are window starts, gathered from the panel on the module's device."""

    def __init__(self, config: MaskedEncoderConfig, training: TrainingConfig, panel: WindowPanel, total_steps: int) -> None:
        super().__init__()
        self.model = MaskedTimeSeriesEncoder(config)
        # Not `self.training`: nn.Module uses that name for its train/eval flag.
        self.config, self.optimisation, self.panel, self.total_steps = config, training, panel, total_steps
        self._train_masks = torch.Generator().manual_seed(training.seed)
        self._validation_masks = torch.Generator()
        self._train_losses: list[float] = []
        self._validation: list[tuple[float, int]] = []
        self.curve: list[dict[str, float | int]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss, self.best_epoch = float("inf"), -1

    def on_fit_start(self) -> None:
        self.panel = self.panel.to(self.device)

    def _loss(self, starts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        windows, _ = gather_windows(self.panel, starts)
        mask = random_patch_mask(windows.shape[0], self.config.n_patches, self.config.n_masked, generator)
        return self.model(windows, mask.to(self.device))["loss"]

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = self._loss(batch[0], self._train_masks)
        self._train_losses.append(float(loss.detach()))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._validation_masks.manual_seed(self.optimisation.seed + 1)

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        self._validation.append((float(self._loss(batch[0], self._validation_masks)) * batch[0].shape[0], batch[0].shape[0]))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validation:
            self._validation.clear()
            return
        val_loss = sum(loss for loss, _ in self._validation) / sum(rows for _, rows in self._validation)
        train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
        self.curve.append({"epoch": int(self.current_epoch), "train_loss": train_loss, "val_loss": val_loss})
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, int(self.current_epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.log("val_loss", val_loss)
        self._validation.clear()
        self._train_losses.clear()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.optimisation.lr, weight_decay=self.optimisation.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_warmup(step, self.optimisation.warmup_steps, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def training_span_starts(panel: WindowPanel, train_end: dt.date) -> torch.Tensor:
    """The complete windows whose last day is on or before train_end (so are all their rows)."""
    return panel.starts_between(panel.dates[0], train_end)


def pretraining_split(
    panel: WindowPanel, train: torch.Tensor, training: TrainingConfig, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(fit, validation) windows of `train` (module docstring), or None when there are fewer than two batches
    or the days are too few for both after the gap."""
    if train.shape[0] < 2 * training.batch_size:
        return None
    fit, validation = _split_validation(panel, train, training.validation_share, seq_len)
    return (fit, validation) if fit.shape[0] and validation.shape[0] else None


def pretrain_masked_encoder(
    panel: WindowPanel, train: torch.Tensor, config: MaskedEncoderConfig, training: TrainingConfig, device: DeviceChoice
) -> PretrainResult:
    """Pre-train the masked encoder on the windows `train` of `panel` (the training span's: module docstring)."""
    split = pretraining_split(panel, train, training, config.seq_len)
    if split is None:
        raise ValueError(f"masked encoder: {train.shape[0]} training windows; need two batches ({2 * training.batch_size}) "
                         f"spanning enough days for a validation share of {training.validation_share} after a "
                         f"{config.seq_len}-day gap")
    fit, validation = split
    seed_everything(training.seed, deterministic=not device.is_cuda)
    steps = training.max_epochs * -(-fit.shape[0] // training.batch_size)
    module = PretrainModule(config, training, panel, steps)
    trainer = L.Trainer(
        accelerator=device.lightning_accelerator, devices=1, precision=device.lightning_precision,
        max_epochs=training.max_epochs, gradient_clip_val=training.grad_clip, deterministic=not device.is_cuda,
        callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=training.patience)],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, _loader(fit, training.batch_size, training.seed), _loader(validation, training.batch_size, None))
    _, last_day = panel.last_rows(train)
    return PretrainResult(
        state=module.best_state, curve=pl.DataFrame(module.curve).select(CURVE_COLUMNS), best_epoch=module.best_epoch,
        first_window_end=panel.dates[int(last_day.min())], last_window_end=panel.dates[int(last_day.max())],
        fit_windows=int(fit.shape[0]), validation_windows=int(validation.shape[0]),
    )
