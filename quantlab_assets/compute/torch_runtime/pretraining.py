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

import polars as pl
import torch

from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.masked_encoder import (
    MaskedEncoderConfig,
    MaskedTimeSeriesEncoder,
    random_patch_mask,
)
from quantlab_assets.compute.torch_runtime.oof_engine import (
    BestEpochModule,
    TrainingConfig,
    fit_best_epoch,
    split_validation,
    total_steps,
    window_loader,
)
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


class PretrainModule(BestEpochModule):
    """The masked loss, with seeded training masks and the same validation masks every epoch (module docstring)."""

    def __init__(self, config: MaskedEncoderConfig, training: TrainingConfig, panel: WindowPanel, total_steps: int) -> None:
        super().__init__(MaskedTimeSeriesEncoder(config), panel, training, training.warmup_steps, total_steps)
        self.config = config
        self._train_masks = torch.Generator().manual_seed(training.seed)
        self._validation_masks = torch.Generator()

    def _loss(self, starts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        windows, _ = gather_windows(self.panel, starts)
        mask = random_patch_mask(windows.shape[0], self.config.n_patches, self.config.n_masked, generator)
        return self.model(windows, mask.to(self.device))["loss"]

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        return self._loss(starts, self._train_masks)

    def on_validation_epoch_start(self) -> None:
        self._validation_masks.manual_seed(self.optimisation.seed + 1)

    def validation_parts(self, starts: torch.Tensor) -> dict[str, float]:
        # A Python float: the losses of the epochs are summed and compared in double precision.
        return {"loss": float(self._loss(starts, self._validation_masks))}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        return [{"epoch": int(self.current_epoch), "train_loss": train_loss, "val_loss": val_loss}]


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
    fit, validation = split_validation(panel, train, training.validation_share, seq_len)
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
    module = PretrainModule(config, training, panel, total_steps(fit, training))
    fit_best_epoch(module, window_loader(fit, training.batch_size, training.seed),
                   window_loader(validation, training.batch_size, None), training, device)
    _, last_day = panel.last_rows(train)
    return PretrainResult(
        state=module.best_state, curve=pl.DataFrame(module.records).select(CURVE_COLUMNS), best_epoch=module.best_epoch,
        first_window_end=panel.dates[int(last_day.min())], last_window_end=panel.dates[int(last_day.max())],
        fit_windows=int(fit.shape[0]), validation_windows=int(validation.shape[0]),
    )
