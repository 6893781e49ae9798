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

from dataclasses import dataclass, field

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
from quantlab_assets.compute.torch_runtime.configs import SupConConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.stats import UNDEFINED, difference_verdict, paired_difference
from quantlab_assets.compute.torch_runtime import oof_engine as engine
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.tbm import HITS_UPPER, fold_windows, outcome_frame
from quantlab_assets.compute.torch_runtime.tbm import PROBABILITY as TBM_PROBABILITY
from quantlab_assets.compute.torch_runtime.transformer import TransformerForecaster
from quantlab_assets.compute.torch_runtime.windows import WindowPanel, gather_windows

PROBABILITY = "supcon_probability"
PREDICTION_COLUMNS = (c.DATE, c.TICKER, cv.FOLD_ID, PROBABILITY, HITS_UPPER)
CURVE_COLUMNS = ("fold_id", "epoch", "train_loss", "val_loss")
COMPARED = ("log_loss", "auc")
# Lower is better for log loss, higher for AUC: the sign of a difference that favours the probe.
_PROBE_BETTER_WHEN = {"log_loss": -1, "auc": 1}


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


class SupConModule(engine.BestEpochModule):
    """SupCon loss of the projections; per epoch the losses."""

    def __init__(self, config: SupConConfig, training: engine.TrainingConfig, panel: WindowPanel, total_steps: int,
                 fold_id: int) -> None:
        super().__init__(SupConEncoder(config), panel, training, training.warmup_steps, total_steps)
        self.config, self.fold_id = config, fold_id

    def training_loss(self, starts: torch.Tensor) -> torch.Tensor:
        windows, targets = gather_windows(self.panel, starts)
        return supcon_loss(self.model(windows).float(), targets[:, 0], self.config.temperature)

    def validation_parts(self, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.training_loss(starts).detach()}

    def epoch_records(self, parts: list[dict], train_loss: float, val_loss: float) -> list[dict[str, float | int | str]]:
        return [{"fold_id": self.fold_id, "epoch": int(self.current_epoch), "train_loss": train_loss, "val_loss": val_loss}]


@dataclass(frozen=True)
class SupConEncoderResult:
    """curves: CURVE_COLUMNS per fold and epoch; states: each fold's best-epoch encoder weights."""

    curves: pl.DataFrame
    states: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    best_epochs: dict[int, int]


def pretrain_supcon_encoders(panel: WindowPanel, folds: pl.DataFrame, config: SupConConfig, training: engine.TrainingConfig,
                             device: DeviceChoice) -> SupConEncoderResult:
    """One SupCon-pre-trained encoder per walk-forward fold, from that fold's training windows only."""
    def prepare(fold: engine.FoldWindows):
        module = SupConModule(config, training, panel, engine.total_steps(fold.fit, training), fold.fold_id)
        return module, *engine.fold_loaders(fold, training)

    fitted = engine.train_out_of_fold(fold_windows(panel, folds, training), training, device, prepare, None,
                                      "supcon encoder: no walk-forward fold has enough training windows and test windows")
    return SupConEncoderResult(pl.DataFrame(fitted.records).select(CURVE_COLUMNS), fitted.states, fitted.best_epochs)


def fit_linear_probes(panel: WindowPanel, folds: pl.DataFrame, config: SupConConfig, training: engine.TrainingConfig,
                      states: dict[int, dict[str, torch.Tensor]], device: DeviceChoice) -> pl.DataFrame:
    """PREDICTION_COLUMNS on the test windows of every fold with an encoder; a fold whose training windows
    hold one class only has no probe and no predictions."""
    predictions = []
    for fold in fold_windows(panel, folds, training):
        if fold.fold_id not in states:
            continue
        model = SupConEncoder(config)
        model.load_state_dict(states[fold.fold_id])
        model = model.to(device.device)
        outcome = engine.window_targets(panel, fold.train)[:, 0]
        if len(np.unique(outcome)) < 2:
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=config.probe_c, max_iter=config.probe_max_iter))
        train_representations, test_representations = (
            engine.predict_windows(model.represent, model, panel, starts, device.device) for starts in (fold.train, fold.test))
        probe.fit(train_representations, outcome.astype(np.int64))
        probability = probe.predict_proba(test_representations)[:, 1]
        predictions.append(outcome_frame(panel, fold, PROBABILITY, probability.astype(np.float64)))
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
