"""Model 2 end to end through Dagster on 3.5 years of the synthetic universe: folds, six OOF partitions,
stacked alpha, scorecard, MLflow runs; the live alpha from the base-model fits the OOF partitions stored;
one model x horizon re-runs alone, bit for bit; a degenerate model fails its blocking check and writes
nothing; the hyper-parameter search's best parameters reach the barrier classifier, for rows after the
span they were tuned on only."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.assets.tuning import hyperparameter_search
from quantlab_assets.defs.assets.models import (
    barrier_probabilities,
    cv_folds,
    live_alpha,
    meta_labels,
    model_scorecard,
    oof_predictions,
    stacked_alpha,
)
from quantlab_assets.compute.models.live import fit_from_frame
from quantlab_assets.defs.partitions import model_horizon_partitions
from quantlab_assets.defs.resources import MlflowTrackingResource
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels, ffd_orders, features, cv_folds, oof_predictions, stacked_alpha,
          model_scorecard, meta_labels, live_alpha, barrier_probabilities, hyperparameter_search]
FAST_TREES = {"ops": {"oof_predictions": {"config": {"xgboost_n_estimators": 20, "xgboost_max_depth": 3,
                                                      "lightgbm_n_estimators": 20}}}}


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow's file store: creating the default SQLite store's tables takes about 10 s, the file store none.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file://{tmp_path / 'mlruns'}"


@pytest.fixture
def resources(data_dir: Path, tracking_uri: str) -> dict[str, object]:
    return {**lab_resources(data_dir, "2008-06-30"), "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri)}


def test_mlflow_store_defaults_to_sqlite_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUANTLAB_DATA_DIR", str(tmp_path))
    default = MlflowTrackingResource()
    assert default.uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert default.artifact_root() == str(tmp_path / "mlflow" / "artifacts")
    assert MlflowTrackingResource(tracking_uri="http://mlflow:5000").artifact_root() is None


def _stored_inputs(instance: dg.DagsterInstance, resources: dict[str, object]) -> None:
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    months = range_tags("2005-01-01", "2008-06-01", "synthetic")
    assert dg.materialize(ASSETS, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars", "labels"], instance=instance,
                          resources=resources, tags=months).success
    assert dg.materialize(ASSETS, selection=["ffd_orders", "cv_folds"], partition_key="synthetic", instance=instance,
                          resources=resources).success
    assert dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources, tags=months).success


def _oof(key: str, instance: dg.DagsterInstance, resources: dict[str, object], config: dict = FAST_TREES,
         raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=["oof_predictions", "base_model_fits"], partition_key=f"{key}|synthetic", instance=instance,
                          resources=resources, run_config=config, raise_on_error=raise_on_error)


def test_model_pipeline_materialises_and_one_partition_reruns_alone(
    instance: dg.DagsterInstance, resources: dict[str, object], data_dir: Path, tracking_uri: str
) -> None:
    _stored_inputs(instance, resources)
    folds = pl.read_parquet(data_dir / "cv_folds" / "synthetic.parquet")
    assert folds.filter(pl.col("scheme") == "walk_forward")["fold_id"].n_unique() == 5
    for key in model_horizon_partitions.get_partition_keys():
        result = _oof(key, instance, resources)
        assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    xgb_path = data_dir / "oof_predictions" / "synthetic" / "xgboost_21d.parquet"
    ridge_path = data_dir / "oof_predictions" / "synthetic" / "ridge_63d.parquet"
    first, ridge_mtime = pl.read_parquet(xgb_path), ridge_path.stat().st_mtime_ns

    small_classifier = {"config": {"n_estimators": 20, "max_depth": 3}}
    final = dg.materialize(ASSETS, selection=["stacked_alpha", "model_scorecard", "meta_labels", "live_alpha",
                                              "barrier_probabilities"],
                           partition_key="synthetic", instance=instance, resources=resources,
                           run_config={"ops": {"meta_labels": small_classifier, "barrier_probabilities": small_classifier}})
    assert {e.check_name: e.passed for e in final.get_asset_check_evaluations()} == {
        "stacked_alpha_schema": True, "meta_labels_not_degenerate": True, "model_scorecard_honest": True,
        "live_alpha_valid": True, "barrier_probabilities_not_degenerate": True}
    barrier = pl.read_parquet(data_dir / "barrier_probabilities" / "synthetic.parquet")
    assert barrier["barrier_probability"].is_between(0, 1).all() and barrier["fold_id"].min() == 0
    meta = pl.read_parquet(data_dir / "meta_labels" / "synthetic.parquet")
    assert meta.height > 0 and meta["meta_probability"].is_between(0, 1).all()
    alpha = pl.read_parquet(data_dir / "stacked_alpha" / "synthetic.parquet")
    assert alpha.columns == ["date", "ticker", "alpha_21d", "alpha_63d", "alpha_combined", "var_21d", "var_63d"]
    values = alpha.select(pl.exclude("date", "ticker")).to_numpy()
    assert alpha.height > 0 and np.isfinite(values).all() and (np.abs(values[:, :3]) <= 1000).all()
    live = pl.read_parquet(data_dir / "live_alpha" / "synthetic.parquet")
    newest = pl.read_parquet(data_dir / "features" / "synthetic").select(pl.col("date").max()).item()
    assert live.columns == alpha.columns and live["date"].unique().to_list() == [newest] > [alpha["date"].max()]
    # The live alpha's base models are the fits its oof_predictions partitions stored (20 trees, as configured
    # there), read through the graph: no base model was fitted in the live_alpha step.
    stored_fit = pl.read_parquet(data_dir / "base_model_fits" / "synthetic" / "xgboost_21d.parquet")
    assert stored_fit.height == 1 and stored_fit["as_of"].item() == newest
    assert fit_from_frame(stored_fit).estimator.get_params()["n_estimators"] == 20
    assert dg.AssetKey("base_model_fits") in live_alpha.keys_by_input_name.values()
    card = pl.read_parquet(data_dir / "model_scorecard" / "synthetic.parquet")
    assert set(card["model"]) == {"ridge", "xgboost", "lightgbm", "stacked"}
    assert card.filter(pl.col("fold_id").is_null()).height == 8

    # One model x horizon alone: the same bits again, and no other partition rewritten.
    _oof("xgboost_21d", instance, resources)
    assert np.array_equal(pl.read_parquet(xgb_path)["prediction"].to_numpy(), first["prediction"].to_numpy())
    assert ridge_path.stat().st_mtime_ns == ridge_mtime

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("quantlab_model2").experiment_id])
    assert len(runs) == 6 + 1 + 1 + 1 + 1 + 1  # six base-model partitions (OOF and all-rows fits), stack, meta-labels, live, barrier, re-run
    xgb_run = next(r for r in runs if r.info.run_name == "xgboost_21d|synthetic")
    assert {"config_hash", "git_sha", "version.xgboost"} <= set(xgb_run.data.tags)
    assert xgb_run.data.params["n_estimators"] == "20" and "oof.rank_ic" in xgb_run.data.metrics
    assert any(a.path == "models" for a in client.list_artifacts(xgb_run.info.run_id))

    # Seed 001's collapse: a model whose predictions are "constant" by the configured tolerance fails the
    # blocking check; the run fails and the stored partition stays as it was.
    degenerate = {"ops": {"oof_predictions": {"config": {**FAST_TREES["ops"]["oof_predictions"]["config"],
                                                          "min_prediction_std": 10.0}}}}
    failed = _oof("ridge_63d", instance, resources, degenerate, raise_on_error=False)
    assert not failed.success
    assert [e.passed for e in failed.get_asset_check_evaluations()] == [False]
    assert ridge_path.stat().st_mtime_ns == ridge_mtime

    # The hyper-parameter search, then the barrier classifier with its best parameters.
    search = dg.materialize(ASSETS, selection=["hyperparameter_search"], partition_key="synthetic",
                            instance=instance, resources=resources,
                            run_config={"ops": {"hyperparameter_search": {"config": {"n_trials": 3, "n_folds": 2,
                                                                                     "max_estimators": 50}}}})
    assert [e.passed for e in search.get_asset_check_evaluations()] == [True]
    trials = pl.read_parquet(data_dir / "hyperparameter_search" / "synthetic.parquet")
    assert trials.height == 3 and trials["is_default"].to_list() == [True, False, False]
    metadata = search.asset_materializations_for_node("hyperparameter_search")[0].metadata
    assert metadata["configurations_tried"].value == 3
    tuned = metadata["tuned_params_file"].value
    retrained = dg.materialize(ASSETS, selection=["barrier_probabilities"], partition_key="synthetic",
                               instance=instance, resources=resources,
                               run_config={"ops": {"barrier_probabilities": {"config": {**small_classifier["config"],
                                                                                         "use_tuned_params": True}}}})
    assert retrained.success
    barrier_run = client.search_runs([client.get_experiment_by_name("quantlab_model2").experiment_id],
                                     filter_string="attributes.run_name = 'barrier_probabilities|synthetic'",
                                     order_by=["attributes.start_time DESC"])[0]
    best_trees = json.loads(Path(tuned).read_text())["best_params"]["n_estimators"]
    assert barrier_run.data.params["tuned.n_estimators"] == str(best_trees) and barrier_run.data.params["n_estimators"] == "20"
    # Tuned on rows up to validation_end (2018-12-31), the parameters predict no row of this 2005-2008 span:
    # every probability is the defaults' again, bit for bit.
    retrained_metadata = retrained.asset_materializations_for_node("barrier_probabilities")[0].metadata
    assert retrained_metadata["tuned_through"].value == "2018-12-31" and retrained_metadata["rows_with_tuned_params"].value == 0
    assert pl.read_parquet(data_dir / "barrier_probabilities" / "synthetic.parquet").equals(barrier)
