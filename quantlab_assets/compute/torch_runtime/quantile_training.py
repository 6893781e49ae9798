"""Out-of-fold training of seed 001's quantile forecaster with Lightning, and its training diagnostics.

Folds as the transformer's (`training.py`): the walk-forward folds of the 21d horizon, whose 63-date
embargo and purge by `label_end_21d` also cover every label of 20 days or less. Per fold the windows
ending on training dates train, the latest `validation_share` of those dates (after a gap of the
longest horizon) select the epoch (early stopping, best weights kept), and the windows ending on test
dates get the forecast: for each horizon the three quantiles, the median being the point prediction.

Optimisation as seed 001's phase 3: AdamW at lr 1e-4, a linear warm-up over 5 epochs then cosine
decay, gradient clipping at norm 0.5. Batches are whole cross-sections (`DateBatches`) so the per-date
IC terms of the loss exist.

Diagnostics per fold x epoch x horizon (over the validation windows unless said): the median's std
(`prediction_std`), the share of targets inside [q10, q90] (`coverage`, 0.8 when calibrated), the
mean over the epoch's steps of the gradient norm of the horizon's head (all its parameters, and its
weight matrices alone: a bias gradient moves every prediction alike and cannot make them differ), the
encoder's gradient norm, the std of the encoder's [CLS] representation (mean over its dimensions),
and the epoch's train and validation losses. Gradient norms are taken before clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import forward_return_column
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import (
    LABEL,
    PREDICTION,
    degeneracy_problems,
    score_predictions,
    undefined_scored_as_numbers,
)
from quantlab_assets.compute.torch_runtime import oof_engine as engine
from quantlab_assets.compute.torch_runtime.configs import QuantileTrainingConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.quantile import (
    MEDIAN,
    QUANTILE_COLUMNS,
    DateBatches,
    QuantileConfig,
    QuantileForecaster,
    group_ids,
    quantile_loss,
)
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

HORIZON = "horizon_days"
DIAGNOSTIC_COLUMNS = ("fold_id", "epoch", HORIZON, "prediction_std", "coverage", "grad_norm", "weight_grad_norm",
                      "encoder_grad_norm", "representation_std", "train_loss", "val_loss")
PREDICTION_COLUMNS = (c.DATE, c.TICKER, cv.FOLD_ID, HORIZON, *QUANTILE_COLUMNS, PREDICTION, LABEL)
# The folds the forecaster trains on: see the module docstring.
FOLD_HORIZON = 21
# A fold trains only with at least this many batches of training dates: its validation split takes the
# latest 20 % and a 20-date gap, and fewer would leave a batch or two to fit on.
MIN_TRAINING_BATCHES = 4


@dataclass(frozen=True)
class QuantileOofResult:
    """predictions: PREDICTION_COLUMNS, one row per test window x horizon; diagnostics: DIAGNOSTIC_COLUMNS;
    states: the best epoch's weights per fold (CPU tensors)."""

    predictions: pl.DataFrame
    diagnostics: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


def target_column(horizon: int) -> str:
    return f"target_{horizon}d"


def cross_sectional_targets(labels: pl.DataFrame, horizons: tuple[int, ...]) -> pl.DataFrame:
    """date, ticker, target_{h}d: fwd_return_{h}d z-scored across the instruments of its date (null where
    the date has fewer than two such returns or they are all equal: no cross-section to normalise)."""
    def z(horizon: int) -> pl.Expr:
        value = pl.col(forward_return_column(horizon))
        std = value.std().over(c.DATE)
        return pl.when(std > 0).then((value - value.mean().over(c.DATE)) / std).alias(target_column(horizon))

    return labels.select(c.DATE, c.TICKER, *(z(h) for h in horizons))


def _norm(parameters: list[torch.nn.Parameter]) -> float:
    grads = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


class QuantileModule(engine.BestEpochModule):
    """Quantile loss over whole cross-sections; diagnostics per epoch and horizon (module docstring)."""

    def __init__(self, model_config: QuantileConfig, training: QuantileTrainingConfig, panel: WindowPanel,
                 total_steps: int, warmup_steps: int, fold_id: int) -> None:
        super().__init__(QuantileForecaster(model_config), panel, training, warmup_steps, total_steps)
        self.model_config, self.fold_id = model_config, fold_id
        self._norms: dict[str, list[float]] = {}

    def _step(self, starts: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        windows, targets = gather_windows(self.panel, starts)
        outputs = self.model(windows)
        return outputs, quantile_loss(outputs, targets, group_ids(self.panel.last_rows(starts)[1]), self.model_config), targets

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        return self._step(starts)[1]["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        norms = {"encoder": _norm(list(self.model.backbone.parameters()))}
        for horizon, head in self.model.heads().items():
            norms[f"{horizon}"] = _norm(list(head.parameters()))
            norms[f"{horizon}.weight"] = _norm([p for name, p in head.named_parameters() if name.endswith("weight")])
        for name, value in norms.items():
            self._norms.setdefault(name, []).append(value)

    def validation_parts(self, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs, losses, targets = self._step(starts)
        quantiles = outputs["quantiles"].detach().float()
        return {"loss": losses["loss"].detach(), "median": quantiles[..., MEDIAN],
                "inside": (targets >= quantiles[..., 0]) & (targets <= quantiles[..., -1]),
                "representation": outputs["representation"].detach().float()}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        median, inside = torch.cat([p["median"] for p in parts]), torch.cat([p["inside"] for p in parts]).float()
        representation_std = float(torch.cat([p["representation"] for p in parts]).std(dim=0).mean())
        mean_norm = {name: float(np.mean(values)) for name, values in self._norms.items()}
        self._norms = {}
        return [{
            "fold_id": self.fold_id, "epoch": int(self.current_epoch), HORIZON: horizon,
            "prediction_std": float(median[:, k].std()) if median.shape[0] > 1 else 0.0,
            "coverage": float(inside[:, k].mean()),
            "grad_norm": mean_norm.get(f"{horizon}", 0.0), "weight_grad_norm": mean_norm.get(f"{horizon}.weight", 0.0),
            "encoder_grad_norm": mean_norm.get("encoder", 0.0), "representation_std": representation_std,
            "train_loss": train_loss, "val_loss": val_loss,
        } for k, horizon in enumerate(self.model_config.horizons)]


def date_loader(panel: WindowPanel, starts: torch.Tensor, dates_per_batch: int, seed: int | None) -> DataLoader:
    """Batches of the windows of `dates_per_batch` whole dates (DateBatches; shuffled by `seed`, None: in order)."""
    sampler = DateBatches(panel.last_rows(starts)[1].numpy(), dates_per_batch, seed)
    return DataLoader(TensorDataset(starts.long()), batch_sampler=sampler)


def _test_frame(panel: WindowPanel, fold: engine.FoldWindows, quantiles: np.ndarray, horizons: tuple[int, ...]) -> pl.DataFrame:
    keys = engine.prediction_keys(panel, fold)
    labels = engine.window_targets(panel, fold.test).astype(np.float64)
    return pl.concat([
        keys.with_columns(
            pl.lit(horizon, dtype=pl.Int64).alias(HORIZON),
            *(pl.Series(name, quantiles[:, k, q]) for q, name in enumerate(QUANTILE_COLUMNS)),
            pl.Series(PREDICTION, quantiles[:, k, MEDIAN]),
            pl.Series(LABEL, labels[:, k]),
        )
        for k, horizon in enumerate(horizons)
    ])


def fit_oof_quantile(
    panel: WindowPanel,
    folds: pl.DataFrame,
    model_config: QuantileConfig,
    training: QuantileTrainingConfig,
    device: DeviceChoice,
) -> QuantileOofResult:
    """Out-of-fold quantile forecasts of the panel's targets (one per horizon of `model_config`, in order)."""
    if len(panel.target_names) != len(model_config.horizons):
        raise ValueError(f"{len(panel.target_names)} targets for {len(model_config.horizons)} horizons")

    def enough(panel: WindowPanel, train: torch.Tensor) -> bool:
        return torch.unique(panel.last_rows(train)[1]).shape[0] >= MIN_TRAINING_BATCHES * training.dates_per_batch

    def prepare(fold: engine.FoldWindows):
        fit_loader = date_loader(panel, fold.fit, training.dates_per_batch, training.seed + fold.fold_id)
        steps_per_epoch = len(fit_loader.batch_sampler)
        module = QuantileModule(model_config, training, panel, training.max_epochs * steps_per_epoch,
                                training.warmup_epochs * steps_per_epoch, fold.fold_id)
        return module, fit_loader, date_loader(panel, fold.validation, training.dates_per_batch, None)

    def predict(model: nn.Module, fold: engine.FoldWindows) -> pl.DataFrame:
        quantiles = engine.predict_windows(lambda windows: model(windows)["quantiles"], model, panel, fold.test, device.device)
        return _test_frame(panel, fold, quantiles, model_config.horizons)

    # The validation gap is the longest horizon: no fit label reaches a validation date.
    fitted = engine.train_out_of_fold(
        engine.oof_folds(panel, folds, FOLD_HORIZON, training.validation_share, max(model_config.horizons), enough),
        training, device, prepare, predict,
        f"quantile forecaster: no walk-forward fold has {MIN_TRAINING_BATCHES} x {training.dates_per_batch} "
        "training dates and test windows")
    frame = fitted.predictions.sort(HORIZON, c.DATE, c.TICKER).select(PREDICTION_COLUMNS)
    return QuantileOofResult(frame, pl.DataFrame(fitted.records).select(DIAGNOSTIC_COLUMNS), fitted.states,
                             fitted.best_epochs)


def quantile_collapse_problems(diagnostics: pl.DataFrame, min_std: float, min_grad_norm: float) -> list[str]:
    """One line per fold x horizon whose last epoch shows a collapse, or []: the median's validation std
    below `min_std` (a constant forecaster), the head's weight gradients below `min_grad_norm` (a dead
    head: nothing can make its predictions differ), or the encoder's activations without dispersion."""
    last = diagnostics.group_by("fold_id", HORIZON).agg(pl.all().sort_by("epoch").last()).sort("fold_id", HORIZON)
    problems = []
    for row in last.iter_rows(named=True):
        reasons = [
            f"median std {row['prediction_std']:.3g} < {min_std}" if row["prediction_std"] < min_std else "",
            f"head weight grad norm {row['weight_grad_norm']:.3g} < {min_grad_norm} (dead head; whole head "
            f"{row['grad_norm']:.3g})" if row["weight_grad_norm"] < min_grad_norm else "",
            f"encoder activation std {row['representation_std']:.3g} < {min_std}" if row["representation_std"] < min_std else "",
        ]
        if reasons := [r for r in reasons if r]:
            problems.append(f"fold {row['fold_id']} epoch {row['epoch']} h={row[HORIZON]}d: " + "; ".join(reasons))
    return problems


def quantile_scorecard(predictions: pl.DataFrame) -> pl.DataFrame:
    """The model stack's scorecard of the median per horizon (IC null where the median is constant)."""
    return score_predictions(predictions, by=[HORIZON])


def quantile_forecast_problems(predictions: pl.DataFrame, min_std: float, min_distinct_share: float) -> list[str]:
    """The model stack's degeneracy tests on each horizon's median, and any scorecard row that reports a
    number where the predictions have no dispersion; [] when none."""
    problems = [f"h={h}d: {problem}" for (h,), rows in predictions.group_by(HORIZON, maintain_order=True)
                for problem in degeneracy_problems(rows, min_std, min_distinct_share)]
    return problems + undefined_scored_as_numbers(quantile_scorecard(predictions))
