"""Transfer (seed 003 phase 3.5): a forecaster initialised from the pre-trained masked encoder vs the same
forecaster initialised at random, trained identically and scored on the same folds.

The existing TransformerForecaster tokenises days, the encoder patches of days, so neither network's
weights fit the other. Both variants here are `PatchForecaster`: the encoder's patch-token transformer
(pooled output) under the forecasters' shared Gaussian / direction / volatility heads (ForecastHeads), trained by the
forecaster's own out-of-fold loop (`fit_oof_transformer`: walk-forward folds, multi-task loss, cosine
warm-up, early stopping). Per fold:

- random: the network as initialised after the fold's seeding;
- pretrained: the same network (same head initialisation), its encoder replaced by one pre-trained with
  the masked loss on that fold's training windows only (never a test window, so the comparison is out of
  sample for both); the global RNG is restored afterwards, so both variants then see the same batches
  and dropout draws. One learning rate for encoder and heads in both, so only the initialisation differs.

Scored with the model stack's scorecard function: per fold and over all folds, IC / rank IC / ICIR on
exactly the predicted rows. The paired daily-IC difference (pretrained - random) gets a normal interval
whose standard error counts n_dates / horizon independent dates (neighbouring daily ICs of overlapping
labels are strongly correlated; metrics.py), an honest if rough width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
import torch
from torch import nn

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import SCORE_COLUMNS, per_date_scores
from quantlab_assets.compute.models.scorecard import MODEL, model_scores
from quantlab_assets.compute.torch_runtime.device import DeviceChoice
from quantlab_assets.compute.torch_runtime.masked_encoder import MaskedEncoderConfig, MaskedTimeSeriesEncoder
from quantlab_assets.compute.torch_runtime.pretraining import pretrain_masked_encoder, pretraining_split
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig, at_least_windows, oof_folds
from quantlab_assets.compute.torch_runtime.training import fit_oof_transformer
from quantlab_assets.compute.torch_runtime.transformer import ForecastHeads, TransformerConfig
from quantlab_assets.compute.torch_runtime.windows import WindowPanel

RANDOM = "patch_random"
PRETRAINED = "patch_pretrained"


class PatchForecaster(nn.Module):
    """The masked encoder's backbone (pooled patch outputs) under the forecasters' shared ForecastHeads."""

    def __init__(self, config: MaskedEncoderConfig) -> None:
        super().__init__()
        self.encoder = MaskedTimeSeriesEncoder(config)
        self.output_heads = ForecastHeads(config.d_model)

    def heads(self) -> dict[str, nn.Module]:
        return self.output_heads.by_name()

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        representation = self.encoder.embed(windows)
        return {"representation": representation, **self.output_heads(representation)}


@dataclass(frozen=True)
class TransferResult:
    """scorecard: ModelScorecardSchema rows of both variants; predictions per variant (OofPredictionsSchema);
    pretrain_curves: fold_id, epoch, train_loss, val_loss; ic_difference: the paired daily-IC comparison."""

    scorecard: pl.DataFrame
    predictions: dict[str, pl.DataFrame]
    pretrain_curves: pl.DataFrame
    ic_difference: dict[str, float | int | None]


def paired_ic_difference(pretrained: pl.DataFrame, random: pl.DataFrame, horizon: int) -> dict[str, float | int | None]:
    """Mean daily IC of pretrained minus random over the dates where both are defined, with a 95 % interval
    (standard error over n_dates / horizon effective dates); None where fewer than two such dates exist."""
    daily = [per_date_scores(p.lazy()).select(c.DATE, pl.col("ic").alias(name)).collect()
             for p, name in ((pretrained, "a"), (random, "b"))]
    both = daily[0].join(daily[1], on=c.DATE).drop_nulls()
    n = both.height
    if n < 2:
        return {"n_dates": n, "mean": None, "low": None, "high": None}
    difference = both["a"] - both["b"]
    mean, std = float(difference.mean()), float(difference.std())
    half = 1.96 * std / math.sqrt(max(1.0, n / horizon))
    return {"n_dates": n, "mean": mean, "low": mean - half, "high": mean + half}


def pretrainable_folds(panel: WindowPanel, folds: pl.DataFrame, seq_len: int, pretraining: TrainingConfig,
                       finetuning: TrainingConfig, horizon: int) -> pl.DataFrame:
    """The walk-forward folds of `horizon` whose fit windows (as fit_oof_transformer takes them) also split for
    pre-training: both variants then train on exactly the same folds."""
    forecaster_folds = oof_folds(panel, folds, horizon, finetuning.validation_share, horizon,
                                 at_least_windows(2 * finetuning.batch_size))
    keep = [fold.fold_id for fold in forecaster_folds if pretraining_split(panel, fold.fit, pretraining, seq_len) is not None]
    if not keep:
        raise ValueError("encoder transfer: no walk-forward fold has enough training windows to pre-train an encoder")
    return folds.filter(pl.col(cv.FOLD_ID).is_in(keep))


def compare_encoder_transfer(
    panel: WindowPanel,
    folds: pl.DataFrame,
    encoder_config: MaskedEncoderConfig,
    forecaster_config: TransformerConfig,
    pretraining: TrainingConfig,
    finetuning: TrainingConfig,
    device: DeviceChoice,
    horizon: int = 21,
) -> TransferResult:
    """Both variants out of fold on `panel` (its first target: the horizon's label) over the walk-forward folds
    whose forecaster training windows can also pre-train an encoder (`pretrainable_folds`)."""
    folds = pretrainable_folds(panel, folds, encoder_config.seq_len, pretraining, finetuning, horizon)
    curves: list[pl.DataFrame] = []

    def build(init: str):
        def model_for(fold_id: int, fit: torch.Tensor) -> nn.Module:
            model = PatchForecaster(encoder_config)
            if init == PRETRAINED:
                with torch.random.fork_rng(devices=[device.device] if device.is_cuda else []):
                    result = pretrain_masked_encoder(panel, fit, encoder_config, pretraining, device)
                model.encoder.load_state_dict(result.state)
                curves.append(result.curve.with_columns(pl.lit(fold_id, dtype=pl.Int64).alias(cv.FOLD_ID)))
            return model
        return model_for

    predictions = {init: fit_oof_transformer(panel, folds, forecaster_config, finetuning, device, horizon, build(init)).predictions
                   for init in (RANDOM, PRETRAINED)}
    scorecard = pl.concat([model_scores(frame, init, horizon) for init, frame in predictions.items()]).select(
        MODEL, cv.HORIZON_DAYS, cv.FOLD_ID, *SCORE_COLUMNS).sort(MODEL, cv.FOLD_ID, nulls_last=True)
    return TransferResult(
        scorecard=scorecard, predictions=predictions,
        pretrain_curves=pl.concat(curves).select(cv.FOLD_ID, "epoch", "train_loss", "val_loss"),
        ic_difference=paired_ic_difference(predictions[PRETRAINED], predictions[RANDOM], horizon),
    )
