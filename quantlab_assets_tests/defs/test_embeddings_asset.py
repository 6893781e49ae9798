"""masked_encoder, embeddings and the transfer scorecard through Dagster on conftest's shared `model_inputs`
(3.5 synthetic years; tiny configs, CPU): the encoder pre-trained on windows ending by a train_end inside
the history, its checkpoint stored and logged to MLflow, embeddings for every complete window (before and
after train_end) with their three checks, both transfer variants scored on the same rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import torch

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.deep import EmbeddingsSchema
from quantlab_assets.compute.storage import StorageLayout
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.embeddings import embeddings, encoder_transfer_scorecard, masked_encoder
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.models import cv_folds
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import MODEL_INPUTS_AS_OF, lab_resources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, masked_encoder, embeddings,
          encoder_transfer_scorecard]
TRAIN_END = "2007-12-31"  # the features are complete from 2007-01 on
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "batch_size": 512, "max_epochs": 2, "patience": 2,
        "warmup_steps": 5, "train_end": TRAIN_END}
TRANSFER = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 20, "batch_size": 256,
            "pretrain_epochs": 1, "max_epochs": 1, "patience": 1, "warmup_steps": 5}


def test_masked_encoder_and_embeddings_materialise(model_inputs: tuple[dg.DagsterInstance, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    instance, data_dir = model_inputs
    tracking_uri = f"file://{tmp_path / 'mlruns'}"
    resources = {**lab_resources(data_dir, MODEL_INPUTS_AS_OF), "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri),
                 "torch_device": TorchDeviceResource(allow_cuda=False)}
    result = dg.materialize(ASSETS, partition_key="synthetic", instance=instance, resources=resources,
                            run_config={"ops": {"masked_encoder": {"config": TINY},
                                                "encoder_transfer_scorecard": {"config": TRANSFER}}},
                            selection=["masked_encoder", "embeddings", "encoder_transfer_scorecard"])
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "masked_encoder_training_span": True, "embeddings_finite": True, "embeddings_not_collapsed": True,
        "embeddings_no_lookahead": True, "encoder_transfer_scorecard_honest": True}

    encoder = result.asset_materializations_for_node("masked_encoder")[0].metadata
    span = encoder["train_span"].value
    assert span["train_end"] == TRAIN_END and span["last_window_end"] <= TRAIN_END
    assert encoder["realised_mask_ratio"].value == pytest.approx(2 / 12) and encoder["patches"].value == 12
    assert [row["epoch"] for row in encoder["loss_curve"].value] == [0, 1]
    checkpoint = torch.load(StorageLayout(data_dir).checkpoint("masked_encoder", "synthetic"), weights_only=True)
    assert checkpoint["config"]["d_model"] == 16 and checkpoint["train_end"] == TRAIN_END
    curve = pl.read_parquet(data_dir / "masked_encoder" / "synthetic.parquet")
    assert curve.columns == ["epoch", "train_loss", "val_loss"] and curve.height == 2

    stored = pl.read_parquet(data_dir / "embeddings" / "synthetic.parquet")
    EmbeddingsSchema.validate(stored)
    assert stored.columns == [c.DATE, c.TICKER, *(f"emb_{k}" for k in range(16))]
    tickers = set(pl.read_parquet(data_dir / "features" / "synthetic" / "2008-06.parquet")[c.TICKER])
    assert set(stored[c.TICKER]) <= tickers and stored[c.TICKER].n_unique() > 40
    assert stored[c.DATE].max() == dt.date(2008, 6, 30)
    # Embeddings exist after the encoder's training span too: those windows were never trained on.
    assert stored.filter(pl.col(c.DATE) > dt.date.fromisoformat(TRAIN_END)).height > 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("quantlab_model2").experiment_id])
    run = next(r for r in runs if r.info.run_name == "masked_encoder|synthetic")
    assert run.data.params["train_end"] == TRAIN_END and "best_val_loss" in run.data.metrics

    scorecard = pl.read_parquet(data_dir / "encoder_transfer_scorecard" / "synthetic.parquet")
    assert set(scorecard["model"]) == {"patch_random", "patch_pretrained"}
    overall = scorecard.filter(pl.col("fold_id").is_null()).sort("model")
    assert overall.height == 2 and overall["n_rows"].n_unique() == 1 and overall["n_rows"][0] > 0
