"""Seed 001's quantile forecaster through Dagster on 3.5 synthetic years (tiny config, CPU): the healthy
configuration stores forecasts and diagnostics with both checks passed; the reproduced collapse
(zero-initialised heads) fails the blocking diagnostics check, stores its diagnostics but no forecasts,
and its scorecard says IC undefined on every horizon."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.models import cv_folds
from quantlab_assets.defs.assets.quantile import NO_COLLAPSE, NOT_DEGENERATE, forecaster_quantile
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import MODEL_INPUTS_AS_OF, lab_resources

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, forecaster_quantile]
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 10, "head_hidden": 16, "dates_per_batch": 32,
        "max_epochs": 1, "patience": 1, "warmup_epochs": 1}


def _train(instance: dg.DagsterInstance, resources: dict[str, object], **overrides: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=["forecaster_quantile", "quantile_diagnostics"], partition_key="synthetic",
                          instance=instance, resources=resources, raise_on_error=False,
                          run_config={"ops": {"forecaster_quantile": {"config": {**TINY, **overrides}}}})


def test_healthy_quantile_forecaster_passes_and_the_reproduced_collapse_fails_the_blocking_check(
    model_inputs: tuple[dg.DagsterInstance, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, data_dir = model_inputs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    resources = {**lab_resources(data_dir, MODEL_INPUTS_AS_OF), "torch_device": TorchDeviceResource(allow_cuda=False),
                 "mlflow": MlflowTrackingResource(tracking_uri=f"file://{tmp_path / 'mlruns'}")}
    stored = data_dir / "forecaster_quantile" / "synthetic.parquet"

    collapsed = _train(instance, resources, head_init="zero")
    checks = {e.check_name: e for e in collapsed.get_asset_check_evaluations()}
    assert not collapsed.success and not checks[NO_COLLAPSE].passed and not checks[NOT_DEGENERATE].passed
    problems = checks[NO_COLLAPSE].metadata["problems"].value
    assert "dead head" in problems and all(f"h={h}d" in problems for h in (1, 5, 10, 20))
    scorecard = checks[NOT_DEGENERATE].metadata["scorecard"].value
    assert [row["horizon_days"] for row in scorecard] == [1, 5, 10, 20]
    assert all(row["ic"] is None and row["rank_ic"] is None and row["n_dates_ic_defined"] == 0 for row in scorecard)
    assert not stored.exists()  # no forecasts; the diagnostics that say why are stored
    diagnostics = pl.read_parquet(data_dir / "quantile_diagnostics" / "synthetic.parquet")
    assert (diagnostics["weight_grad_norm"] == 0).all() and (diagnostics["encoder_grad_norm"] == 0).all()

    healthy = _train(instance, resources)
    assert healthy.success
    assert {e.check_name: e.passed for e in healthy.get_asset_check_evaluations()} == {NOT_DEGENERATE: True, NO_COLLAPSE: True}
    forecasts = pl.read_parquet(stored)
    diagnostics = pl.read_parquet(data_dir / "quantile_diagnostics" / "synthetic.parquet")
    assert set(forecasts["horizon_days"]) == {1, 5, 10, 20} and (forecasts["prediction"] == forecasts["q50"]).all()
    assert diagnostics.filter(pl.col("epoch") == 0)["weight_grad_norm"].min() > 0
    metadata = next(m.metadata for m in healthy.asset_materializations_for_node("forecaster_quantile")
                    if m.asset_key == dg.AssetKey("forecaster_quantile"))
    assert all(row["ic"] is not None for row in metadata["scorecard"].value)


def test_the_quantile_job_runs_one_gpu_step_at_a_time() -> None:
    from quantlab_assets.definitions import defs

    job = defs.resolve_job_def("quantile_training_job")
    assert {n.name for n in job.graph.node_defs} == {"forecaster_quantile"}
    assert job.executor_def.name == "multiprocess"
    node = defs.resolve_assets_def("forecaster_quantile")
    assert node.op.tags["device"] == "gpu" and node.op.pool == "gpu"


def test_tbm_classifier_stores_out_of_fold_probabilities_with_their_calibration(
    model_inputs: tuple[dg.DagsterInstance, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantlab_assets.defs.assets.tbm import NOT_DEGENERATE as TBM_NOT_DEGENERATE
    from quantlab_assets.defs.assets.tbm import tbm_classifier

    instance, data_dir = model_inputs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    resources = {**lab_resources(data_dir, MODEL_INPUTS_AS_OF), "torch_device": TorchDeviceResource(allow_cuda=False),
                 "mlflow": MlflowTrackingResource(tracking_uri=f"file://{tmp_path / 'mlruns'}")}
    tiny = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 10, "batch_size": 256, "max_epochs": 1,
            "patience": 1, "warmup_steps": 5}
    result = dg.materialize([*ASSETS[:-1], tbm_classifier], selection=["tbm_classifier"], partition_key="synthetic",
                            instance=instance, resources=resources, run_config={"ops": {"tbm_classifier": {"config": tiny}}})
    assert result.success and [e.passed for e in result.get_asset_check_evaluations()] == [True]
    assert result.get_asset_check_evaluations()[0].check_name == TBM_NOT_DEGENERATE
    probabilities = pl.read_parquet(data_dir / "tbm_classifier" / "synthetic.parquet")
    assert probabilities.columns == ["date", "ticker", "fold_id", "tbm_probability", "hits_upper"]
    assert probabilities["tbm_probability"].is_between(0, 1).all() and set(probabilities["hits_upper"]) == {0, 1}
    metadata = result.asset_materializations_for_node("tbm_classifier")[0].metadata
    scorecard = metadata["scorecard"].value
    assert scorecard["folds"] == probabilities["fold_id"].n_unique() and 0 < scorecard["brier"] < 1
    assert scorecard["auc_ci_low"] <= scorecard["auc"] <= scorecard["auc_ci_high"]
    assert sum(row["rows"] for row in metadata["reliability_curve"].value) == probabilities.height
