"""The one engine every deep model trains with: folds, validation split, Lightning trainer, best epoch, predictions.

Out of fold (the transformer and TFT forecasters, the quantile forecaster, the triple-barrier classifier,
the SupCon encoders): per walk-forward fold of the model stack's cv_folds (`walk_forward_folds`; purged
and embargoed there), the windows whose last day lies in the fold's training dates train the model and
those whose last day lies in its test dates get the out-of-fold prediction (`fold_starts`). The latest
`validation_share` of the training windows by last day, after a gap of `gap` days so no training label
reaches a validation date, select the epoch (`split_validation`): early stopping on the validation loss,
the weights of the epoch with the lowest one kept (`BestEpochModule`). The masked encoder's pre-training
uses the same split, trainer and best-epoch selection on one span instead of folds.

Every fit is seeded (seed + fold id) before its network is built, and deterministic on the CPU; one
Lightning configuration (`lightning_trainer`): the device's accelerator and precision, gradient clipping,
no logger, checkpoint, progress bar or sanity steps. A model plugs in a `BestEpochModule` (its losses and
epoch records), a `prepare` (module and loaders per fold) and a `predict` (its prediction frame, keyed by
`prediction_keys`) into `train_out_of_fold`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.torch_runtime.configs import OptimisationConfig, TrainingConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.transformer import cosine_warmup
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

PREDICT_BATCH = 4096


@dataclass(frozen=True)
class FoldWindows:
    """One fold's window starts: train = fit + validation (+ the purge gap between them); test."""

    fold_id: int
    train: torch.Tensor
    fit: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor


def walk_forward_folds(folds: pl.DataFrame, horizon: int) -> list[tuple[int, pl.DataFrame]]:
    """(fold id, its rows of cv_folds) of the walk-forward scheme of `horizon`, by fold id."""
    schedule = folds.filter((pl.col(cv.SCHEME) == cv.WALK_FORWARD) & (pl.col(cv.HORIZON_DAYS) == horizon))
    return [(fold_id, schedule.filter(pl.col(cv.FOLD_ID) == fold_id))
            for fold_id in sorted(schedule[cv.FOLD_ID].unique().to_list())]


def fold_starts(panel: WindowPanel, fold: pl.DataFrame, role: str) -> torch.Tensor:
    """The windows whose last day lies in the fold's `role` (train or test) date ranges."""
    segments = fold.filter(pl.col(cv.ROLE) == role).select(cv.START, cv.END).iter_rows()
    parts = [panel.starts_between(start, end) for start, end in segments]
    return torch.cat(parts) if parts else panel.starts[:0]


def split_validation(panel: WindowPanel, train: torch.Tensor, share: float, gap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, validation): the latest `share` of the training windows' last days validate; the windows ending
    `gap` days or less before the first validation day are dropped, so no fit label reaches a validation date."""
    _, last_day = panel.last_rows(train)
    days = torch.unique(last_day)
    first_validation_day = days[int(len(days) * (1 - share))]
    return train[last_day < first_validation_day - gap], train[last_day >= first_validation_day]


def at_least_windows(count: int) -> Callable[[WindowPanel, torch.Tensor], bool]:
    """A fold's training windows suffice when there are `count` of them (two batches, for most models)."""
    return lambda panel, train: train.shape[0] >= count


def oof_folds(panel: WindowPanel, folds: pl.DataFrame, horizon: int, validation_share: float, gap: int,
              enough: Callable[[WindowPanel, torch.Tensor], bool]) -> Iterator[FoldWindows]:
    """The walk-forward folds of `horizon` whose training windows are `enough` and that have test windows,
    with their validation split (`split_validation` with `gap`)."""
    for fold_id, fold in walk_forward_folds(folds, horizon):
        train, test = fold_starts(panel, fold, cv.TRAIN), fold_starts(panel, fold, cv.TEST)
        if not enough(panel, train) or test.shape[0] == 0:
            continue
        fit, validation = split_validation(panel, train, validation_share, gap)
        yield FoldWindows(fold_id, train, fit, validation, test)


def window_loader(starts: torch.Tensor, batch_size: int, seed: int | None) -> DataLoader:
    """Batches of window starts; shuffled by a generator of `seed`, in order when seed is None (validation)."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(starts.long()), batch_size=batch_size, shuffle=seed is not None, generator=generator)


def total_steps(fit: torch.Tensor, training: TrainingConfig) -> int:
    """Optimiser steps of `max_epochs` epochs over the windows `fit` (the cosine schedule's length)."""
    return training.max_epochs * -(-fit.shape[0] // training.batch_size)


def fold_loaders(fold: FoldWindows, training: TrainingConfig) -> tuple[DataLoader, DataLoader]:
    """The fold's fit windows shuffled by seed + fold id, and its validation windows in order."""
    return (window_loader(fold.fit, training.batch_size, training.seed + fold.fold_id),
            window_loader(fold.validation, training.batch_size, None))


class BestEpochModule(L.LightningModule):
    """Lightning wrapper of `model` whose batches are window starts gathered from `panel` on the module's device.

    Subclasses give the losses (`training_loss`, `validation_parts`: a dict with the batch's mean "loss" and
    whatever their epoch records need) and turn an epoch's validation parts into records (`epoch_records`).
    Here: the validation loss per window, the best epoch's weights (CPU copies), AdamW with the cosine warm-up.
    """

    def __init__(self, model: nn.Module, panel: WindowPanel, optimisation: OptimisationConfig, warmup_steps: int,
                 total_steps: int) -> None:
        super().__init__()
        self.model, self.panel = model, panel
        # Not `self.training`: nn.Module uses that name for its train/eval flag.
        self.optimisation, self.warmup_steps, self.total_steps = optimisation, warmup_steps, total_steps
        self.records: list[dict[str, float | int | str]] = []
        self._train_losses: list[float] = []
        self._validation: list[dict] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss, self.best_epoch = float("inf"), -1

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def validation_parts(self, starts: torch.Tensor) -> dict:
        raise NotImplementedError

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        raise NotImplementedError

    def on_fit_start(self) -> None:
        self.panel = self.panel.to(self.device)

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = self.training_loss(batch[0])
        self._train_losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        parts = self.validation_parts(batch[0])
        rows = batch[0].shape[0]
        self._validation.append({**parts, "loss": parts["loss"] * rows, "rows": rows})

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validation:
            self._validation.clear()
            return
        parts = self._validation
        val_loss = float(sum(p["loss"] for p in parts) / sum(p["rows"] for p in parts))
        train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
        self.records += self.epoch_records(parts, train_loss, val_loss)
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, int(self.current_epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.log("val_loss", val_loss)
        self._validation.clear()
        self._train_losses.clear()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.optimisation.lr,
                                      weight_decay=self.optimisation.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_warmup(step, self.warmup_steps, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def lightning_trainer(device: DeviceChoice, optimisation: OptimisationConfig) -> L.Trainer:
    """The one trainer configuration: early stopping on val_loss, deterministic on the CPU, nothing logged or saved."""
    return L.Trainer(
        accelerator=device.lightning_accelerator, devices=1, precision=device.lightning_precision,
        max_epochs=optimisation.max_epochs, gradient_clip_val=optimisation.grad_clip, deterministic=not device.is_cuda,
        callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=optimisation.patience)],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False,
    )


def fit_best_epoch(module: BestEpochModule, fit: DataLoader, validation: DataLoader, optimisation: OptimisationConfig,
                   device: DeviceChoice) -> nn.Module:
    """Train `module` with early stopping; its model holds the best epoch's weights afterwards, on `device`."""
    lightning_trainer(device, optimisation).fit(module, fit, validation)
    module.model.load_state_dict(module.best_state)
    return module.model.to(device.device)


@dataclass(frozen=True)
class OofFit:
    """predictions: each fold's prediction frame, concatenated (None without a predictor); records: every
    fold's epoch records; states: the best epoch's weights per fold (CPU tensors); best_epochs per fold."""

    predictions: pl.DataFrame | None
    records: list[dict[str, float | int | str]]
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


def train_out_of_fold(
    folds: Iterator[FoldWindows],
    optimisation: OptimisationConfig,
    device: DeviceChoice,
    prepare: Callable[[FoldWindows], tuple[BestEpochModule, DataLoader, DataLoader]],
    predict: Callable[[nn.Module, FoldWindows], pl.DataFrame] | None,
    nothing_trained: str,
) -> OofFit:
    """Per fold: seed (seed + fold id), `prepare` the module and its fit / validation loaders, fit the best epoch,
    and `predict` the fold's test windows with it. ValueError(`nothing_trained`) when no fold trained."""
    predictions, records, states, best_epochs = [], [], {}, {}
    for fold in folds:
        seed_everything(optimisation.seed + fold.fold_id, deterministic=not device.is_cuda)
        module, fit_loader, validation_loader = prepare(fold)
        model = fit_best_epoch(module, fit_loader, validation_loader, optimisation, device)
        if predict is not None:
            predictions.append(predict(model, fold))
        records += module.records
        states[fold.fold_id], best_epochs[fold.fold_id] = module.best_state, module.best_epoch
    if not states:
        raise ValueError(nothing_trained)
    return OofFit(pl.concat(predictions) if predictions else None, records, states, best_epochs)


@torch.no_grad()
def predict_windows(forward: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, panel: WindowPanel,
                    starts: torch.Tensor, device: torch.device, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """`forward(windows)` of `module` (put in eval mode; already on `device`) over the windows `starts`, in
    batches on `device`, as float64."""
    module.eval()
    on_device, batches = panel.to(device), starts.to(device)
    parts = [forward(gather_windows(on_device, batches[i : i + batch_size])[0]).float().cpu()
             for i in range(0, batches.shape[0], batch_size)]
    return torch.cat(parts).numpy().astype(np.float64) if parts else np.empty(0)


def window_keys(panel: WindowPanel, starts: torch.Tensor) -> pl.DataFrame:
    """(date, ticker) of the windows `starts`: each window's last day and its instrument."""
    instrument, last_day = panel.last_rows(starts)
    return pl.DataFrame({c.DATE: panel.dates.gather(last_day.numpy()),
                         c.TICKER: pl.Series(panel.instruments, dtype=pl.String).gather(instrument.numpy())})


def prediction_keys(panel: WindowPanel, fold: FoldWindows) -> pl.DataFrame:
    """The prediction frame's keys of a fold's test windows: date, ticker, fold_id (Int64)."""
    return window_keys(panel, fold.test).with_columns(pl.lit(fold.fold_id, dtype=pl.Int64).alias(cv.FOLD_ID))


def window_targets(panel: WindowPanel, starts: torch.Tensor) -> np.ndarray:
    """(N, targets) targets at the windows' last days (the labels their predictions are scored against)."""
    return panel.flat_targets[starts.long() + (panel.seq_len - 1)].numpy()

