"""Transfer from the masked encoder: the patch forecaster initialised from a per-fold pre-trained encoder vs
at random, trained identically on the same walk-forward folds and scored by the model stack (tiny, CPU)."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.schemas import ModelScorecardSchema, OofPredictionsSchema
from quantlab_assets.compute.torch_runtime.device import choose_device
from quantlab_assets.compute.torch_runtime.masked_encoder import MaskedEncoderConfig
from quantlab_assets.compute.torch_runtime.oof_engine import TrainingConfig
from quantlab_assets.compute.torch_runtime.transfer import (
    PRETRAINED,
    RANDOM,
    PatchForecaster,
    compare_encoder_transfer,
    paired_ic_difference,
)
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig
from quantlab_assets.compute.torch_runtime.windows import build_window_panel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ_LEN = 20
TRAINING = TrainingConfig(batch_size=128, max_epochs=1, patience=1, warmup_steps=5)


@pytest.fixture(scope="module")
def transfer(model_panel):
    names = [n for n in model_panel.features.columns if n.endswith(("__wz", "__rz"))]
    frame = model_panel.features.select(c.DATE, c.TICKER, *names).join(
        model_panel.labels.select(c.DATE, c.TICKER, "label_21d"), on=[c.DATE, c.TICKER])
    panel = build_window_panel(frame, names, ["label_21d"], SEQ_LEN)
    encoder = MaskedEncoderConfig(n_features=len(names), d_model=16, n_heads=2, n_layers=1, dim_ff=32, seq_len=SEQ_LEN)
    forecaster = TransformerConfig(n_features=len(names), d_model=16, n_heads=2, n_layers=1, dim_ff=32, seq_len=SEQ_LEN)
    folds = cv.make_folds(model_panel.labels)
    return compare_encoder_transfer(panel, folds, encoder, forecaster, TRAINING, TRAINING, choose_device(allow_cuda=False))


def test_both_initialisations_forecast_the_same_rows_and_are_scored_alike(transfer) -> None:
    ModelScorecardSchema.validate(transfer.scorecard)
    random, pretrained = transfer.predictions[RANDOM], transfer.predictions[PRETRAINED]
    OofPredictionsSchema.validate(pretrained)
    keys = [c.DATE, c.TICKER, cv.FOLD_ID]
    assert random.select(keys).equals(pretrained.select(keys)) and random.height > 0
    assert not random["prediction"].equals(pretrained["prediction"])
    by_model = transfer.scorecard.partition_by("model", as_dict=True)
    assert set(by_model) == {(RANDOM,), (PRETRAINED,)}
    assert by_model[(RANDOM,)].select(cv.FOLD_ID, "n_rows").equals(by_model[(PRETRAINED,)].select(cv.FOLD_ID, "n_rows"))
    # One pre-training per fold that trained, each on its own fold's training windows.
    trained_folds = sorted(random[cv.FOLD_ID].unique().to_list())
    assert sorted(transfer.pretrain_curves[cv.FOLD_ID].unique().to_list()) == trained_folds
    difference = transfer.ic_difference
    assert difference["n_dates"] > 0 and difference["low"] <= difference["mean"] <= difference["high"]


def test_the_patch_forecaster_has_the_forecasters_outputs_and_heads() -> None:
    model = PatchForecaster(MaskedEncoderConfig(n_features=3, d_model=8, n_heads=2, n_layers=1, dim_ff=16, seq_len=20))
    outputs = model(torch.randn(5, 20, 3))
    assert outputs["representation"].shape == (5, 8) and outputs["mean"].shape == (5,)
    assert outputs["direction_logits"].shape == (5, 3) and (outputs["volatility"] >= 0).all()
    assert set(model.heads()) == {"mean", "direction", "volatility"}


def test_the_paired_ic_difference_is_undefined_without_dates() -> None:
    empty = pl.DataFrame(schema={c.DATE: pl.Date, c.TICKER: pl.String, "prediction": pl.Float64, "label": pl.Float64})
    assert paired_ic_difference(empty, empty, 21) == {"n_dates": 0, "mean": None, "low": None, "high": None}
