"""Seed 002's phase 28: supervised-contrastive pre-training (SupCon) then a linear probe, out of fold, and
its comparison with the plain focal-loss classifier (tbm.py) on the same folds.

Loss (Khosla et al. 2020, the L_out form): with z L2-normalised projections of a batch,
    L = mean over anchors i with |P(i)| > 0 of  -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) ),
P(i) = the other samples of the batch with i's label (the triple-barrier `hits_upper` of tbm.py); tau 0.1.
An anchor with no positive has no term (its log-ratio sum is empty), so it is left out of the mean.

Encoder: tbm.py's network without its logit (seed 003's transformer encoder at seed 002's golden config)
plus a projection head (d_model -> d_model -> projection_dim, as SimCLR/SupCon); pre-trained per 21d
walk-forward fold on that fold's training windows, with tbm.py's validation split (latest 20 % of training
dates after a 10-date gap) for early stopping on the validation SupCon loss. The probe: an L2 logistic
regression on the frozen encoder's standardised [CLS] representation (the projection is dropped, as in
the paper), fit on the fold's training windows (early stopping is the encoder's; the probe has none, so
it needs no validation share), scored on the fold's test windows. No test window enters either step.

Comparison: both models' log loss and AUC per fold on the rows they share, across folds with Student-t
intervals (calibration.py), and the paired per-fold difference (probe - plain) with its interval; "better" /
"worse" only where that interval excludes 0 (seed 002's "-10.2 % validation loss" was one split).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import polars as pl
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.calibration import across_folds, calibration_by_fold
from quantlab_assets.compute.stats import UNDEFINED, difference_verdict, paired_difference
from quantlab_assets.compute.torch_runtime.device import DeviceChoice, seed_everything
from quantlab_assets.compute.torch_runtime.tbm import (
    BARRIER_DAYS,
    FOLD_HORIZON,
    HITS_UPPER,
    TbmConfig,
)
from quantlab_assets.compute.torch_runtime.tbm import PROBABILITY as TBM_PROBABILITY
from quantlab_assets.compute.torch_runtime.training import (
    TrainingConfig,
    _loader,
    _split_validation,
    fold_starts,
    walk_forward_folds,
)
from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster, cosine_warmup
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

PROBABILITY = "supcon_probability"
PREDICTION_COLUMNS = (c.DATE, c.TICKER, cv.FOLD_ID, PROBABILITY, HITS_UPPER)
CURVE_COLUMNS = ("fold_id", "epoch", "train_loss", "val_loss")
COMPARED = ("log_loss", "auc")
# Lower is better for log loss, higher for AUC: the sign of a difference that favours the probe.
_PROBE_BETTER_WHEN = {"log_loss": -1, "auc": 1}
_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class SupConConfig:
    encoder: TbmConfig
    projection_dim: int = 64
    temperature: float = 0.1
    # Inverse L2 strength of the probe (sklearn's default).
    probe_c: float = 1.0
    probe_max_iter: int = 1000


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SupCon L_out of projections (B, D) (normalised here) with labels (B,); 0 (with a graph) if no anchor has a positive."""
    z = functional.normalize(embeddings, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    # Denominator over a != i: the diagonal is removed before the log-sum-exp.
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    anchors = counts > 0
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    per_anchor = -(log_prob * positives).sum(dim=1)[anchors] / counts[anchors]
    return per_anchor.mean()


class SupConEncoder(nn.Module):
    def __init__(self, config: SupConConfig) -> None:
        super().__init__()
        d_model = config.encoder.d_model
        self.backbone = TransformerForecaster(config.encoder.encoder_config())
        self.projection = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, config.projection_dim))

    def represent(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, F) -> the [CLS] representation (B, d_model) the probe reads."""
        return self.backbone.encode(windows)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, F) -> projections (B, projection_dim), not yet normalised."""
        return self.projection(self.represent(windows))


class SupConModule(L.LightningModule):
    def __init__(self, config: SupConConfig, training: TrainingConfig, panel: WindowPanel, total_steps: int, fold_id: int) -> None:
        super().__init__()
        self.model = SupConEncoder(config)
        self.config, self.training, self.panel, self.total_steps, self.fold_id = config, training, panel, total_steps, fold_id
        self.epochs: list[dict[str, float | int]] = []
        self._train_losses: list[float] = []
        self._validation: list[tuple[torch.Tensor, int]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss, self.best_epoch = float("inf"), -1

    def on_fit_start(self) -> None:
        self.panel = self.panel.to(self.device)

    def _loss(self, starts: torch.Tensor) -> torch.Tensor:
        windows, targets = gather_windows(self.panel, starts)
        return supcon_loss(self.model(windows).float(), targets[:, 0], self.config.temperature)

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = self._loss(batch[0])
        self._train_losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        self._validation.append((self._loss(batch[0]).detach() * batch[0].shape[0], batch[0].shape[0]))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validation:
            self._validation.clear()
            return
        val_loss = float(sum(part[0] for part in self._validation) / sum(part[1] for part in self._validation))
        self.epochs.append({"fold_id": self.fold_id, "epoch": int(self.current_epoch),
                            "train_loss": float(np.mean(self._train_losses)) if self._train_losses else float("nan"),
                            "val_loss": val_loss})
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


@dataclass(frozen=True)
class FoldWindows:
    fold_id: int
    fit: torch.Tensor
    validation: torch.Tensor
    train: torch.Tensor
    test: torch.Tensor


def fold_windows(panel: WindowPanel, folds: pl.DataFrame, training: TrainingConfig) -> Iterator[FoldWindows]:
    """The 21d walk-forward folds tbm.py trains on, with its skip rule and validation split."""
    for fold_id, fold in walk_forward_folds(folds, FOLD_HORIZON):
        train, test = fold_starts(panel, fold, cv.TRAIN), fold_starts(panel, fold, cv.TEST)
        if train.shape[0] < 2 * training.batch_size or test.shape[0] == 0:
            continue
        fit, validation = _split_validation(panel, train, training.validation_share, BARRIER_DAYS)
        yield FoldWindows(fold_id, fit, validation, train, test)


@dataclass(frozen=True)
class SupConEncoderResult:
    """curves: CURVE_COLUMNS per fold and epoch; states: each fold's best-epoch encoder weights."""

    curves: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


def pretrain_supcon_encoders(panel: WindowPanel, folds: pl.DataFrame, config: SupConConfig, training: TrainingConfig,
                             device: DeviceChoice) -> SupConEncoderResult:
    """One SupCon-pre-trained encoder per walk-forward fold, from that fold's training windows only."""
    curves, states, best_epochs = [], {}, {}
    for fold in fold_windows(panel, folds, training):
        seed_everything(training.seed + fold.fold_id, deterministic=not device.is_cuda)
        steps = training.max_epochs * -(-fold.fit.shape[0] // training.batch_size)
        module = SupConModule(config, training, panel, steps, fold.fold_id)
        trainer = L.Trainer(
            accelerator=device.lightning_accelerator, devices=1, precision=device.lightning_precision,
            max_epochs=training.max_epochs, gradient_clip_val=training.grad_clip, deterministic=not device.is_cuda,
            callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=training.patience)],
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, _loader(fold.fit, training.batch_size, training.seed + fold.fold_id),
                    _loader(fold.validation, training.batch_size, None))
        curves += module.epochs
        states[fold.fold_id], best_epochs[fold.fold_id] = module.best_state, module.best_epoch
    if not states:
        raise ValueError("supcon encoder: no walk-forward fold has enough training windows and test windows")
    return SupConEncoderResult(pl.DataFrame(curves).select(CURVE_COLUMNS), states, best_epochs)


@torch.no_grad()
def representations(model: SupConEncoder, panel: WindowPanel, starts: torch.Tensor) -> np.ndarray:
    model.eval()
    parts = [model.represent(gather_windows(panel, starts[i : i + _PREDICT_BATCH])[0]).float().cpu()
             for i in range(0, starts.shape[0], _PREDICT_BATCH)]
    return torch.cat(parts).numpy().astype(np.float64)


def fit_linear_probes(panel: WindowPanel, folds: pl.DataFrame, config: SupConConfig, training: TrainingConfig,
                      states: dict[int, dict[str, torch.Tensor]], device: DeviceChoice) -> pl.DataFrame:
    """PREDICTION_COLUMNS on the test windows of every fold with an encoder; a fold whose training windows
    hold one class only has no probe and no predictions."""
    predictions = []
    gpu_panel = panel.to(device.device)
    for fold in fold_windows(panel, folds, training):
        if fold.fold_id not in states:
            continue
        model = SupConEncoder(config)
        model.load_state_dict(states[fold.fold_id])
        model = model.to(device.device)
        outcome = panel.flat_targets[fold.train.long() + (panel.seq_len - 1), 0].numpy()
        if len(np.unique(outcome)) < 2:
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=config.probe_c, max_iter=config.probe_max_iter))
        probe.fit(representations(model, gpu_panel, fold.train.to(device.device)), outcome.astype(np.int64))
        probability = probe.predict_proba(representations(model, gpu_panel, fold.test.to(device.device)))[:, 1]
        instrument, last_day = panel.last_rows(fold.test)
        predictions.append(pl.DataFrame({
            c.DATE: panel.dates.gather(last_day.numpy()),
            c.TICKER: pl.Series(panel.instruments).gather(instrument.numpy()),
            cv.FOLD_ID: pl.Series([fold.fold_id] * fold.test.shape[0], dtype=pl.Int64),
            PROBABILITY: probability.astype(np.float64),
            HITS_UPPER: pl.Series(panel.flat_targets[fold.test.long() + (panel.seq_len - 1), 0].numpy()).cast(pl.Int8),
        }))
    if not predictions:
        raise ValueError("supcon probe: no fold has an encoder and training windows of both classes")
    return pl.concat(predictions).sort(c.DATE, c.TICKER).select(PREDICTION_COLUMNS)


@dataclass(frozen=True)
class Comparison:
    """by_fold: per shared fold, rows and both models' log loss and AUC with the difference (probe - plain);
    summary: row counts, whether the rows were identical, both scorecards, each difference with its interval and verdict."""

    by_fold: pl.DataFrame
    summary: dict[str, object]


def compare_with_plain(probe: pl.DataFrame, plain: pl.DataFrame, level: float = 0.95) -> Comparison:
    """Probe (PREDICTION_COLUMNS) against tbm_classifier's predictions on the (date, ticker, fold) rows both hold."""
    keys = [c.DATE, c.TICKER, cv.FOLD_ID]
    shared = probe.join(plain.select(*keys, TBM_PROBABILITY, pl.col(HITS_UPPER).alias("plain_outcome")), on=keys)
    if (shared[HITS_UPPER] != shared["plain_outcome"]).any():
        raise ValueError("supcon probe and tbm_classifier disagree on hits_upper for the same rows")
    if shared.height == 0:
        raise ValueError("supcon probe and tbm_classifier share no (date, ticker, fold) row")
    scores = {name: calibration_by_fold(shared, column, HITS_UPPER, cv.FOLD_ID)
              for name, column in (("probe", PROBABILITY), ("plain", TBM_PROBABILITY))}
    by_fold = scores["probe"].select(cv.FOLD_ID, "rows", *(pl.col(s).alias(f"probe_{s}") for s in COMPARED)).join(
        scores["plain"].select(cv.FOLD_ID, *(pl.col(s).alias(f"plain_{s}") for s in COMPARED)), on=cv.FOLD_ID)
    by_fold = by_fold.with_columns((pl.col(f"probe_{s}") - pl.col(f"plain_{s}")).alias(f"{s}_difference") for s in COMPARED)
    summary: dict[str, object] = {
        "probe_rows": probe.height, "plain_rows": plain.height, "shared_rows": shared.height,
        "same_rows": shared.height == probe.height == plain.height, "folds": by_fold.height,
        "probe": across_folds(scores["probe"], level), "plain": across_folds(scores["plain"], level),
    }
    for score in COMPARED:
        probe_scores, plain_scores = (by_fold[f"{side}_{score}"].cast(pl.Float64).to_numpy() for side in ("probe", "plain"))
        mean, low, high = paired_difference(probe_scores, plain_scores, level)
        summary |= {f"{score}_difference": mean, f"{score}_difference_ci_low": low,
                    f"{score}_difference_ci_high": high, f"{score}_verdict": difference_verdict(
                        low, high, higher_is_better=_PROBE_BETTER_WHEN[score] > 0,
                        undefined=f"{UNDEFINED} (fewer than two folds)")}
    return Comparison(by_fold.sort(cv.FOLD_ID), summary)
