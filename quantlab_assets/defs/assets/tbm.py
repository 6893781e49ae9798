"""Seed 002's triple-barrier classifier on sequence windows (issue 10): focal loss, out of fold, scored by
its calibration (Brier, log loss, ECE, AUC per fold and across folds with 95 % intervals, the reliability
curve). Plain logic in compute/torch_runtime/tbm.py and compute/models/calibration.py. Its probabilities
have the columns of `barrier_probabilities` (the tabular XGBoost version) under their own name.

Measured on the synthetic fixture inputs (2005-01..2008-06; golden config at seq_len 21, 3 epochs, CPU):
AUC 0.503 [0.496, 0.510] over 2 folds, Brier 0.259, ECE 0.088: no skill on this market, and
over-confident (docs/architecture.md, "Seed 002's triple-barrier classifier")."""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.calibration import across_folds, calibration_by_fold, reliability_curve
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.deep import TbmProbabilitiesSchema
from quantlab_assets.compute.schemas.features import FeaturesSchema, LabelsSchema
from quantlab_assets.compute.torch_runtime.tbm import (
    HITS_UPPER,
    PROBABILITY,
    TbmConfig,
    fit_oof_tbm,
    tbm_targets,
    tbm_training_config,
)
from quantlab_assets.compute.torch_runtime.windows import build_window_panel
from quantlab_assets.defs.assets.deep import INPUT_SUFFIXES
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.partitions import same_universe, universe_partitions
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

NOT_DEGENERATE = "tbm_classifier_not_degenerate"


class TbmAssetConfig(dg.Config):
    """Seed 002's golden config (d_model 128, 2 layers, 4 heads, dropout 0.23, lr 6.7e-5); tests shrink it."""

    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    dim_ff: int = 512
    dropout: float = 0.23
    seq_len: int = 63
    focal_gamma: float = 2.0
    lr: float = 6.7e-5
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3
    warmup_steps: int = 200
    seed: int = 42
    # A probability std below this is a classifier that says the same thing about every window.
    min_probability_std: float = 1e-6


@dg.asset(
    partitions_def=universe_partitions,
    group_name="deep",
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    ins={"features": dg.AssetIn(partition_mapping=same_universe), "labels": dg.AssetIn(partition_mapping=same_universe),
         "cv_folds": dg.AssetIn()},
    check_specs=[dg.AssetCheckSpec(NOT_DEGENERATE, asset="tbm_classifier", blocking=True,
                                   description="Schema; probabilities vary across the test windows of every fold.")],
)
def tbm_classifier(
    context: dg.AssetExecutionContext,
    config: TbmAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Out-of-fold probability that the upper triple barrier comes first, from a transformer on windows."""
    universe = context.partition_key
    feature_frame = conform(features[universe], FeaturesSchema)
    names = [n for n in feature_frame.columns if n.endswith(INPUT_SUFFIXES)]
    frame = feature_frame.select(c.DATE, c.TICKER, *names).join(
        tbm_targets(conform(labels[universe], LabelsSchema)), on=[c.DATE, c.TICKER])
    panel = build_window_panel(frame, names, [HITS_UPPER], config.seq_len)
    model = TbmConfig(n_features=len(names), d_model=config.d_model, n_heads=config.n_heads, n_layers=config.n_layers,
                      dim_ff=config.dim_ff, dropout=config.dropout, seq_len=config.seq_len, focal_gamma=config.focal_gamma)
    training = tbm_training_config(lr=config.lr, batch_size=config.batch_size, max_epochs=config.max_epochs,
                                   patience=config.patience, warmup_steps=config.warmup_steps, seed=config.seed)
    device = torch_device.choice()
    result = fit_oof_tbm(panel, cv_folds[universe], model, training, device)

    by_fold = calibration_by_fold(result.predictions, PROBABILITY, HITS_UPPER, cv.FOLD_ID)
    overall = across_folds(by_fold)
    curve = reliability_curve(result.predictions[PROBABILITY].to_numpy(), result.predictions[HITS_UPPER].to_numpy())
    problems = [f"fold {row[cv.FOLD_ID]}: probability std {row['probability_std']:.3g} below {config.min_probability_std}"
                for row in by_fold.iter_rows(named=True) if row["probability_std"] < config.min_probability_std]
    if failure := schema_failures(TbmProbabilitiesSchema, result.predictions, asset="tbm_classifier", partition=universe):
        problems.append(failure)
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"tbm_classifier|{universe}",
        config={"universe": universe, "features": ",".join(names), **dataclasses.asdict(model),
                **dataclasses.asdict(training), **device.describe()},
        metrics={f"oof.{k}": v for k, v in overall.items()},
        models={f"tbm_fold{f}_state": state for f, state in result.states.items()},
        frames={"fold_scores": by_fold, "reliability_curve": curve, "epochs": result.epochs},
        artifact_root=mlflow.artifact_root(),
    )
    check = dg.AssetCheckResult(check_name=NOT_DEGENERATE, passed=not problems,
                                metadata={"problems": "\n".join(problems) or "none"})

    def outputs() -> Outputs:
        rounded = pl.selectors.float().round(5)
        yield dg.Output({universe: result.predictions}, metadata={
            "device": dg.MetadataValue.json(device.describe()), "windows": int(panel.starts.shape[0]),
            "scorecard": dg.MetadataValue.json({k: (round(v, 5) if isinstance(v, float) else v) for k, v in overall.items()}),
            "fold_scores": dg.MetadataValue.json(by_fold.with_columns(rounded).to_dicts()),
            "reliability_curve": dg.MetadataValue.json(curve.with_columns(rounded).to_dicts()),
            "best_epochs": dg.MetadataValue.json(result.best_epochs), "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)
