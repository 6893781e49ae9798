"""The transformer forecaster through Dagster on 3.5 synthetic years (tiny config, CPU): out-of-fold
forecasts and training diagnostics stored, both checks run, the run logged to MLflow; the GPU job's
executor admits one GPU step at a time."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.deep import forecaster_transformer
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.models import cv_folds
from quantlab_assets.defs.executors import GPU_EXECUTOR_CONFIG
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import MODEL_INPUTS_AS_OF, lab_resources

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, forecaster_transformer]
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 10, "batch_size": 128, "max_epochs": 2,
        "patience": 1, "warmup_steps": 5}


def test_transformer_trains_out_of_fold_and_stores_forecasts_and_diagnostics(
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


def test_the_gpu_job_runs_one_gpu_step_at_a_time() -> None:
    from quantlab_assets.definitions import defs

    job = defs.resolve_job_def("gpu_training_job")
    assert {n.name for n in job.graph.node_defs} == {"forecaster_transformer"}
    assert {"key": "device", "value": "gpu", "limit": 1} in GPU_EXECUTOR_CONFIG["tag_concurrency_limits"]
    assert job.executor_def.name == "multiprocess"
    node = defs.resolve_assets_def("forecaster_transformer")
    assert node.op.tags["device"] == "gpu" and node.op.pool == "gpu"
