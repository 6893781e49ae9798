"""Out-of-fold training of the transformer forecaster with Lightning, and its training diagnostics.

Trained by the deep engine (oof_engine.py) per walk-forward fold of the model stack's cv_folds (the
purged, 63-date-embargoed 21d folds), validation split after a gap of `horizon` dates; the windows
whose last day lies in the fold's test dates get the out-of-fold forecast: the Gaussian mean.

Diagnostics per fold x epoch x head (seed 001's missing instruments): the standard deviation of the
head's output over the validation windows, the mean gradient norm of the head's parameters over the
epoch's steps, and the standard deviation of the encoder's [CLS] representation (mean over its
dimensions). A collapsed model shows a zero prediction std whatever its loss says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models.metrics import LABEL, PREDICTION
from quantlab_assets.compute.torch_runtime import oof_engine as engine
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.tft import TftConfig
from quantlab_assets.compute.torch_runtime.transformer import HEADS, TransformerConfig, multitask_loss
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

# Every sequence forecaster: its config builds the model, whose forward returns the ForecastHeads' outputs.
ForecasterConfig = TransformerConfig | TftConfig
DIAGNOSTIC_COLUMNS = ("fold_id", "epoch", "head", "prediction_std", "grad_norm", "representation_std",
                      "train_loss", "val_loss")


@dataclass(frozen=True)
class TransformerOofResult:
    """predictions: (date, ticker, fold_id, prediction, label) on test dates; diagnostics: DIAGNOSTIC_COLUMNS;
    states: the best epoch's weights per fold (CPU tensors)."""

    predictions: pl.DataFrame
    diagnostics: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


class ForecasterModule(engine.BestEpochModule):
    """The forecaster's multi-task loss, and its diagnostics per epoch and head (module docstring)."""

    def __init__(self, model: nn.Module, model_config: ForecasterConfig, training: engine.TrainingConfig, panel: WindowPanel,
                 total_steps: int, fold_id: int) -> None:
        super().__init__(model, panel, training, training.warmup_steps, total_steps)
        self.model_config, self.fold_id = model_config, fold_id
        self._grad_norms: dict[str, list[float]] = {head: [] for head in HEADS}

    def _losses(self, starts: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        windows, targets = gather_windows(self.panel, starts)
        outputs = self.model(windows)
        return outputs, multitask_loss(outputs, targets[:, 0], self.model_config)

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        return self._losses(starts)[1]["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for head, module in self.model.heads().items():
            grads = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
            self._grad_norms[head].append(float(torch.stack(grads).norm()) if grads else 0.0)

    def validation_parts(self, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs, losses = self._losses(starts)
        return {"loss": losses["loss"].detach(), "mean": outputs["mean"].detach(),
                "direction": outputs["direction_logits"].softmax(-1)[:, 2].detach(),
                "volatility": outputs["volatility"].detach(), "representation": outputs["representation"].detach()}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        representation_std = float(torch.cat([p["representation"] for p in parts]).float().std(dim=0).mean())
        records = []
        for head in HEADS:
            values = torch.cat([p[head] for p in parts]).float()
            records.append({
                "fold_id": self.fold_id, "epoch": int(self.current_epoch), "head": head,
                "prediction_std": float(values.std()) if values.numel() > 1 else 0.0,
                "grad_norm": float(np.mean(self._grad_norms[head])) if self._grad_norms[head] else 0.0,
                "representation_std": representation_std, "train_loss": train_loss, "val_loss": val_loss,
            })
        self._grad_norms = {head: [] for head in HEADS}
        return records


def fit_oof_transformer(
    panel: WindowPanel,
    folds: pl.DataFrame,
    model_config: ForecasterConfig,
    training: engine.TrainingConfig,
    device: DeviceChoice,
    horizon: int = 21,
    build_model: Callable[[int, torch.Tensor], nn.Module] | None = None,
) -> TransformerOofResult:
    """Out-of-fold Gaussian-mean forecasts of the panel's first target over the walk-forward folds of `horizon`,
    by the forecaster `model_config` builds (the transformer or the TFT), or `build_model(fold_id, fit_starts)`'s
    network if given (made after the fold's seeding)."""
    def prepare(fold: engine.FoldWindows):
        model = model_config.build() if build_model is None else build_model(fold.fold_id, fold.fit)
        module = ForecasterModule(model, model_config, training, panel, engine.total_steps(fold.fit, training),
                                  fold.fold_id)
        return module, *engine.fold_loaders(fold, training)

    def predict(model: nn.Module, fold: engine.FoldWindows) -> pl.DataFrame:
        means = engine.predict_windows(lambda windows: model(windows)["mean"], model, panel, fold.test, device.device,
                                       training.batch_size)
        labels = engine.window_targets(panel, fold.test)[:, 0].astype(np.float64)
        return engine.prediction_keys(panel, fold).with_columns(pl.Series(PREDICTION, means), pl.Series(LABEL, labels))

    trainable = engine.oof_folds(panel, folds, horizon, training.validation_share, horizon,
                                 engine.at_least_windows(2 * training.batch_size))
    fitted = engine.train_out_of_fold(trainable, training, device, prepare, predict,
                                      "transformer: no walk-forward fold has enough training windows and test windows")
    diagnostics = pl.DataFrame(fitted.records).select(DIAGNOSTIC_COLUMNS)
    return TransformerOofResult(fitted.predictions.sort(c.DATE, c.TICKER), diagnostics, fitted.states, fitted.best_epochs)


def collapse_problems(diagnostics: pl.DataFrame, min_std: float) -> list[str]:
    """One line per fold whose last epoch's Gaussian-mean predictions on validation windows have a std
    below `min_std` (a constant forecaster), or []."""
    last = diagnostics.filter(pl.col("head") == "mean").group_by("fold_id").agg(pl.all().sort_by("epoch").last())
    collapsed = last.filter(pl.col("prediction_std") < min_std)
    return [f"fold {row['fold_id']} epoch {row['epoch']}: mean-head prediction std {row['prediction_std']:.3g} below {min_std}"
            for row in collapsed.sort("fold_id").iter_rows(named=True)]
