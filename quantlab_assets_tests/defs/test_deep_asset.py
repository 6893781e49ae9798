"""The transformer and TFT forecasters through Dagster on 3.5 synthetic years (tiny configs, CPU):
out-of-fold forecasts, training diagnostics and the TFT's interpretation stored, every check run, the
runs logged to MLflow; the GPU job's executor admits one GPU step at a time."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.deep import forecaster_tft, forecaster_transformer
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.models import cv_folds
from quantlab_assets.defs.executors import GPU_EXECUTOR_CONFIG
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import MODEL_INPUTS_AS_OF, lab_resources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, forecaster_transformer, forecaster_tft]
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 10, "batch_size": 128, "max_epochs": 2,
        "patience": 1, "warmup_steps": 5}
TINY_TFT = {"d_model": 8, "n_heads": 2, "seq_len": 10, "batch_size": 128, "max_epochs": 2, "patience": 1, "warmup_steps": 5}


def test_transformer_and_tft_train_out_of_fold_and_store_forecasts_diagnostics_and_attention(
    model_inputs: tuple[dg.DagsterInstance, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, data_dir = model_inputs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking_uri = f"file://{tmp_path / 'mlruns'}"
    resources = {**lab_resources(data_dir, MODEL_INPUTS_AS_OF), "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri),
                 "torch_device": TorchDeviceResource(allow_cuda=False)}

    result = dg.materialize(ASSETS, selection=["forecaster_transformer", "training_diagnostics"], partition_key="synthetic",
                            instance=instance, resources=resources,
                            run_config={"ops": {"forecaster_transformer": {"config": TINY}}})
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "forecaster_transformer_not_degenerate": True, "training_diagnostics_no_collapse": True}
    forecasts = pl.read_parquet(data_dir / "forecaster_transformer" / "synthetic.parquet")
    diagnostics = pl.read_parquet(data_dir / "training_diagnostics" / "synthetic.parquet")
    assert forecasts.columns == ["date", "ticker", "fold_id", "prediction", "label"] and forecasts.height > 0
    assert set(diagnostics["head"]) == {"mean", "direction", "volatility"} and diagnostics["epoch"].max() <= 1
    materialisation = result.asset_materializations_for_node("forecaster_transformer")[0]
    assert materialisation.metadata["device"].value["device"] == "cpu"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("quantlab_model2").experiment_id])
    run = next(r for r in runs if r.info.run_name == "forecaster_transformer|synthetic")
    assert run.data.params["d_model"] == "16" and "oof.rank_ic" in run.data.metrics
    assert any(a.path.startswith("models") for a in client.list_artifacts(run.info.run_id))

    result = dg.materialize(ASSETS, selection=["forecaster_tft", "tft_diagnostics", "tft_interpretation"],
                            partition_key="synthetic", instance=instance, resources=resources,
                            run_config={"ops": {"forecaster_tft": {"config": TINY_TFT}}})
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "forecaster_tft_not_degenerate": True, "tft_diagnostics_no_collapse": True, "tft_interpretation_weights_valid": True}
    tft = pl.read_parquet(data_dir / "forecaster_tft" / "synthetic.parquet")
    assert tft.select("date", "ticker").equals(forecasts.select("date", "ticker"))  # the same OOF rows as the transformer
    interpretation = pl.read_parquet(data_dir / "tft_interpretation" / "synthetic.parquet")
    inputs = [n for n in pl.read_parquet_schema(next((data_dir / "features").rglob("*.parquet"))) if n.endswith(("__wz", "__rz"))]
    variables = interpretation.filter(pl.col("kind") == "variable_selection")
    assert set(variables["name"]) == set(inputs) and set(variables["fold_id"]) == set(tft["fold_id"])
    assert interpretation.filter(pl.col("kind") == "attention")["name"].n_unique() == TINY_TFT["seq_len"]
    stored = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("forecaster_tft")}
    assert "feature_importance" in stored["tft_interpretation"].metadata and "oof_rank_ic" in stored["forecaster_tft"].metadata


def test_the_gpu_job_runs_one_gpu_step_at_a_time() -> None:
    from quantlab_assets.definitions import defs

    job = defs.resolve_job_def("gpu_training_job")
    gpu_nodes = {"forecaster_transformer", "forecaster_tft", "masked_encoder", "embeddings", "encoder_transfer_scorecard"}
    assert {n.name for n in job.graph.node_defs} == gpu_nodes
    assert {"key": "device", "value": "gpu", "limit": 1} in GPU_EXECUTOR_CONFIG["tag_concurrency_limits"]
    assert job.executor_def.name == "multiprocess"
    for name in gpu_nodes:
        node = defs.resolve_assets_def(name)
        assert node.op.tags["device"] == "gpu" and node.op.pool == "gpu"
