"""Out-of-fold training of the transformer forecaster with Lightning, and its training diagnostics.

Per walk-forward fold of the model stack's cv_folds (the purged, 63-date-embargoed 21d folds): the
windows whose last day lies in the fold's training dates train the model, the latest
`validation_share` of them (by date, after a gap of `horizon` dates so no training label reaches a
validation date) select the epoch (early stopping on validation loss, the best epoch's weights kept),
and the windows whose last day lies in the fold's test dates get the out-of-fold forecast: the
Gaussian mean. Seeded; on the CPU, deterministic.

Diagnostics per fold x epoch x head (seed 001's missing instruments): the standard deviation of the
head's output over the validation windows, the mean gradient norm of the head's parameters over the
epoch's steps, and the standard deviation of the encoder's [CLS] representation (mean over its
dimensions). A collapsed model shows a zero prediction std whatever its loss says.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION
from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.tft import TftConfig
from quantlab_assets.compute.torch_runtime.transformer import HEADS, TransformerConfig, cosine_warmup, multitask_loss
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

# Every sequence forecaster: its config builds the model, whose forward returns the ForecastHeads' outputs.
ForecasterConfig = TransformerConfig | TftConfig
DIAGNOSTIC_COLUMNS = ("fold_id", "epoch", "head", "prediction_std", "grad_norm", "representation_std",
                      "train_loss", "val_loss")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (seed 003: AdamW, cosine warm-up, grad clip 1.0, early stopping)."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3
    warmup_steps: int = 200
    grad_clip: float = 1.0
    validation_share: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class TransformerOofResult:
    """predictions: (date, ticker, fold_id, prediction, label) on test dates; diagnostics: DIAGNOSTIC_COLUMNS;
    states: the best epoch's weights per fold (CPU tensors)."""

    predictions: pl.DataFrame
    diagnostics: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


class ForecasterModule(L.LightningModule):
    """Lightning wrapper: batches are window starts, gathered from the panel on the module's device."""

    def __init__(self, model_config: ForecasterConfig, training: TrainingConfig, panel: WindowPanel, total_steps: int,
                 fold_id: int) -> None:
        super().__init__()
        self.model = model_config.build()
        self.model_config, self.training, self.panel = model_config, training, panel
        self.total_steps, self.fold_id = total_steps, fold_id
        self.diagnostics: list[dict[str, float | int | str]] = []
        self._grad_norms: dict[str, list[float]] = {head: [] for head in HEADS}
        self._train_losses: list[float] = []
        self._validation: list[dict[str, torch.Tensor]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss, self.best_epoch = float("inf"), -1

    def on_fit_start(self) -> None:
        self.panel = self.panel.to(self.device)

    def _losses(self, starts: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        windows, targets = gather_windows(self.panel, starts)
        outputs = self.model(windows)
        return outputs, multitask_loss(outputs, targets[:, 0], self.model_config)

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        _, losses = self._losses(batch[0])
        self._train_losses.append(float(losses["loss"].detach()))
        return losses["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for head, module in self.model.heads().items():
            grads = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
            self._grad_norms[head].append(float(torch.stack(grads).norm()) if grads else 0.0)

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        outputs, losses = self._losses(batch[0])
        self._validation.append({
            "loss": losses["loss"].detach() * batch[0].shape[0], "rows": torch.tensor(batch[0].shape[0]),
            "mean": outputs["mean"].detach(), "direction": outputs["direction_logits"].softmax(-1)[:, 2].detach(),
            "volatility": outputs["volatility"].detach(), "representation": outputs["representation"].detach(),
        })

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validation:
            self._validation.clear()
            return
        parts = self._validation
        val_loss = float(sum(p["loss"] for p in parts) / sum(p["rows"] for p in parts))
        representation_std = float(torch.cat([p["representation"] for p in parts]).float().std(dim=0).mean())
        train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
        for head in HEADS:
            values = torch.cat([p[head] for p in parts]).float()
            self.diagnostics.append({
                "fold_id": self.fold_id, "epoch": int(self.current_epoch), "head": head,
                "prediction_std": float(values.std()) if values.numel() > 1 else 0.0,
                "grad_norm": float(np.mean(self._grad_norms[head])) if self._grad_norms[head] else 0.0,
                "representation_std": representation_std, "train_loss": train_loss, "val_loss": val_loss,
            })
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, int(self.current_epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.log("val_loss", val_loss)
        self._validation.clear()
        self._train_losses.clear()
        self._grad_norms = {head: [] for head in HEADS}

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.training.lr, weight_decay=self.training.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_warmup(step, self.training.warmup_steps, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


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


def _split_validation(panel: WindowPanel, train: torch.Tensor, share: float, gap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The latest `share` of the training windows by last day, and the rest less a `gap`-day purge."""
    _, last_day = panel.last_rows(train)
    days = torch.unique(last_day)
    first_validation_day = days[int(len(days) * (1 - share))]
    return train[last_day < first_validation_day - gap], train[last_day >= first_validation_day]


def _loader(starts: torch.Tensor, batch_size: int, seed: int | None) -> DataLoader:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(starts.long()), batch_size=batch_size, shuffle=seed is not None, generator=generator)


@torch.no_grad()
def predict_means(model: torch.nn.Module, panel: WindowPanel, starts: torch.Tensor, batch_size: int) -> np.ndarray:
    model.eval()
    means = [model(gather_windows(panel, starts[i : i + batch_size])[0])["mean"].float().cpu()
             for i in range(0, starts.shape[0], batch_size)]
    return torch.cat(means).numpy().astype(np.float64) if means else np.empty(0)


def fit_oof_transformer(
    panel: WindowPanel,
    folds: pl.DataFrame,
    model_config: ForecasterConfig,
    training: TrainingConfig,
    device: DeviceChoice,
    horizon: int = 21,
) -> TransformerOofResult:
    """Out-of-fold Gaussian-mean forecasts of the panel's first target over the walk-forward folds of `horizon`,
    by the forecaster `model_config` builds (the transformer or the TFT)."""
    predictions, diagnostics, states, best_epochs = [], [], {}, {}
    for fold_id, fold in walk_forward_folds(folds, horizon):
        train, test = fold_starts(panel, fold, cv.TRAIN), fold_starts(panel, fold, cv.TEST)
        if train.shape[0] < 2 * training.batch_size or test.shape[0] == 0:
            continue
        fit, validation = _split_validation(panel, train, training.validation_share, horizon)
        seed_everything(training.seed + fold_id, deterministic=not device.is_cuda)
        steps = training.max_epochs * -(-fit.shape[0] // training.batch_size)
        module = ForecasterModule(model_config, training, panel, steps, fold_id)
        trainer = L.Trainer(
            accelerator=device.lightning_accelerator, devices=1, precision=device.lightning_precision,
            max_epochs=training.max_epochs, gradient_clip_val=training.grad_clip, deterministic=not device.is_cuda,
            callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=training.patience)],
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, _loader(fit, training.batch_size, training.seed + fold_id),
                    _loader(validation, training.batch_size, None))
        module.model.load_state_dict(module.best_state)
        model = module.model.to(device.device)
        test_panel = panel.to(device.device)
        instrument, last_day = panel.last_rows(test)
        predictions.append(pl.DataFrame({
            c.DATE: panel.dates.gather(last_day.numpy()),
            c.TICKER: pl.Series(panel.instruments).gather(instrument.numpy()),
            cv.FOLD_ID: pl.Series([fold_id] * test.shape[0], dtype=pl.Int64),
            PREDICTION: predict_means(model, test_panel, test.to(device.device), training.batch_size),
            LABEL: panel.flat_targets[test.long() + (panel.seq_len - 1), 0].double().numpy(),
        }))
        diagnostics += module.diagnostics
        states[fold_id], best_epochs[fold_id] = module.best_state, module.best_epoch
    if not predictions:
        raise ValueError("transformer: no walk-forward fold has enough training windows and test windows")
    frame = pl.concat(predictions).sort(c.DATE, c.TICKER)
    return TransformerOofResult(frame, pl.DataFrame(diagnostics).select(DIAGNOSTIC_COLUMNS), states, best_epochs)


def collapse_problems(diagnostics: pl.DataFrame, min_std: float) -> list[str]:
    """One line per fold whose last epoch's Gaussian-mean predictions on validation windows have a std
    below `min_std` (a constant forecaster), or []."""
    last = diagnostics.filter(pl.col("head") == "mean").group_by("fold_id").agg(pl.all().sort_by("epoch").last())
    collapsed = last.filter(pl.col("prediction_std") < min_std)
    return [f"fold {row['fold_id']} epoch {row['epoch']}: mean-head prediction std {row['prediction_std']:.3g} below {min_std}"
            for row in collapsed.sort("fold_id").iter_rows(named=True)]
