"""Seed 002's SupCon encoder and linear probe through Dagster on 3.5 synthetic years (tiny config, CPU),
after tbm_classifier: the probe stores out-of-fold probabilities with both checks passed, and its
comparison with the stored tbm_classifier is on the same rows and folds."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.compute.storage import StorageLayout
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.models import cv_folds
from quantlab_assets.defs.assets.supcon import ENCODER_CHECK, NOT_DEGENERATE, supcon_encoder, supcon_probe
from quantlab_assets.defs.assets.tbm import tbm_classifier
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource
from quantlab_assets_tests.defs.conftest import MODEL_INPUTS_AS_OF, lab_resources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, tbm_classifier, supcon_encoder, supcon_probe]
ARCHITECTURE = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_ff": 32, "seq_len": 10, "batch_size": 256, "max_epochs": 1,
                "patience": 1, "warmup_steps": 5}


def test_supcon_probe_is_scored_against_tbm_classifier_on_the_same_folds(
    model_inputs: tuple[dg.DagsterInstance, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, data_dir = model_inputs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    resources = {**lab_resources(data_dir, MODEL_INPUTS_AS_OF), "torch_device": TorchDeviceResource(allow_cuda=False),
                 "mlflow": MlflowTrackingResource(tracking_uri=f"file://{tmp_path / 'mlruns'}")}
    result = dg.materialize(
        ASSETS, selection=["tbm_classifier", "supcon_encoder", "supcon_probe"], partition_key="synthetic",
        instance=instance, resources=resources,
        run_config={"ops": {"tbm_classifier": {"config": ARCHITECTURE},
                            "supcon_encoder": {"config": {**ARCHITECTURE, "projection_dim": 8}}}})
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks[ENCODER_CHECK] and checks[NOT_DEGENERATE]

    curves = pl.read_parquet(data_dir / "supcon_encoder" / "synthetic.parquet")
    assert curves.columns == ["fold_id", "epoch", "train_loss", "val_loss"] and (curves["val_loss"] > 0).all()
    assert StorageLayout(data_dir).checkpoint("supcon_encoder", "synthetic").exists()
    probe = pl.read_parquet(data_dir / "supcon_probe" / "synthetic.parquet")
    plain = pl.read_parquet(data_dir / "tbm_classifier" / "synthetic.parquet")
    assert probe.columns == ["date", "ticker", "fold_id", "supcon_probability", "hits_upper"]
    assert set(probe["fold_id"]) == set(curves["fold_id"]) == set(plain["fold_id"])
    metadata = next(m.metadata for m in result.asset_materializations_for_node("supcon_probe"))
    comparison = metadata["comparison"].value
    # Same architecture, windows and folds as tbm_classifier: the rows are identical, not an intersection.
    assert comparison["same_rows"] and comparison["shared_rows"] == probe.height == plain.height
    assert metadata["compared_rows"].value == "identical rows and folds"
    assert comparison["folds"] == probe["fold_id"].n_unique() == len(metadata["comparison_by_fold"].value)
    for score in ("log_loss", "auc"):
        assert comparison[f"{score}_verdict"] in {"better", "worse", "indistinguishable", "undefined (fewer than two folds)"}
        low, high = comparison[f"{score}_difference_ci_low"], comparison[f"{score}_difference_ci_high"]
        if low is not None:
            assert low <= comparison[f"{score}_difference"] <= high
            assert (comparison[f"{score}_verdict"] == "indistinguishable") == (low <= 0 <= high)
    assert comparison["plain"]["log_loss"] == pytest.approx(metadata_of(result, "tbm_classifier")["scorecard"].value["log_loss"], abs=1e-4)


def metadata_of(result: dg.ExecuteInProcessResult, node: str) -> dict[str, dg.MetadataValue]:
    return result.asset_materializations_for_node(node)[0].metadata
