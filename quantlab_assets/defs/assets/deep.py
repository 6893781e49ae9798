"""Deep-learning track (issue 12): the multi-task transformer forecaster, trained out of fold on the
GPU when one is there (CPU otherwise), and its training diagnostics. Plain logic in compute/torch_runtime.

forecaster_transformer[u] and training_diagnostics[u] come from one step (one training run): the
out-of-fold forecasts go through the model stack's scorecard and degeneracy functions; the
diagnostics' blocking check fails a model whose predictions collapse (seed 001).
"""


import dataclasses
from collections.abc import Iterator

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import degeneracy_problems, score_predictions
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas import (
    FeaturesSchema,
    LabelsSchema,
    OofPredictionsSchema,
    TrainingDiagnosticsSchema,
    conform,
    schema_failures,
)
from quantlab_assets.compute.torch_runtime.training import TrainingConfig, collapse_problems, fit_oof_transformer
from quantlab_assets.compute.torch_runtime.transformer import TransformerConfig
from quantlab_assets.compute.torch_runtime.windows import build_window_panel
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.partitions import same_universe, universe_partitions
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

GROUP = "deep"
TARGET = "label_21d"
# Scale-free inputs: the winsorised industry z-scores and the rolling z-scores of the features asset.
INPUT_SUFFIXES = ("__wz", "__rz")


class TransformerAssetConfig(dg.Config):
    """Seed 003's architecture and optimisation (defaults); tests shrink everything."""

    d_model: int = 128
    n_heads: int = 8
    n_layers: int = 4
    dim_ff: int = 512
    dropout: float = 0.1
    seq_len: int = 63
    lr: float = 3e-4
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3
    warmup_steps: int = 200
    seed: int = 42
    # Below this std (log-return units) the mean head predicts a constant (seed 001's collapse).
    min_prediction_std: float = 1e-6


@dg.multi_asset(
    partitions_def=universe_partitions,
    group_name=GROUP,
    can_subset=False,
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    outs={
        "forecaster_transformer": dg.AssetOut(is_required=False, description="Out-of-fold 21d forecasts (Gaussian mean)."),
        "training_diagnostics": dg.AssetOut(is_required=False, description="Per fold x epoch x head: pred std, grad norm, activations."),
    },
    ins={
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
        "cv_folds": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec("forecaster_transformer_not_degenerate", asset="forecaster_transformer", blocking=True,
                          description="Schema; out-of-fold forecasts vary (pooled std, distinct values per date)."),
        dg.AssetCheckSpec("training_diagnostics_no_collapse", asset="training_diagnostics", blocking=True,
                          description="Schema; no fold's mean head ends with a validation prediction std below the tolerance."),
    ],
)
def forecaster_transformer(
    context: dg.AssetExecutionContext,
    config: TransformerAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Train seed 003's transformer per walk-forward fold; forecast each fold's test dates."""
    universe = context.partition_key
    feature_frame = conform(features[universe], FeaturesSchema)
    names = [n for n in feature_frame.columns if n.endswith(INPUT_SUFFIXES)]
    frame = feature_frame.select(c.DATE, c.TICKER, *names).join(
        conform(labels[universe], LabelsSchema).select(c.DATE, c.TICKER, TARGET), on=[c.DATE, c.TICKER])
    panel = build_window_panel(frame, names, [TARGET], config.seq_len)
    model_config = TransformerConfig(n_features=len(names), d_model=config.d_model, n_heads=config.n_heads,
                                     n_layers=config.n_layers, dim_ff=config.dim_ff, dropout=config.dropout,
                                     seq_len=config.seq_len)
    training = TrainingConfig(lr=config.lr, batch_size=config.batch_size, max_epochs=config.max_epochs,
                              patience=config.patience, warmup_steps=config.warmup_steps, seed=config.seed)
    device = torch_device.choice()
    context.log.info(f"training on {device.describe()}: {panel.starts.shape[0]} windows, {len(names)} features")
    result = fit_oof_transformer(panel, cv_folds[universe], model_config, training, device)

    forecast_problems = degeneracy_problems(result.predictions, config.min_prediction_std, 0.5)
    if failure := schema_failures(OofPredictionsSchema, result.predictions, asset="forecaster_transformer", partition=universe):
        forecast_problems.append(failure)
    collapse = collapse_problems(result.diagnostics, config.min_prediction_std)
    if failure := schema_failures(TrainingDiagnosticsSchema, result.diagnostics, asset="training_diagnostics", partition=universe):
        collapse.append(failure)
    overall = score_predictions(result.predictions).row(0, named=True)
    by_fold = score_predictions(result.predictions, by=[cv.FOLD_ID])
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"forecaster_transformer|{universe}",
        config={"universe": universe, "features": ",".join(names), **dataclasses.asdict(model_config),
                **dataclasses.asdict(training), **device.describe()},
        metrics={**{f"oof.{k}": v for k, v in overall.items()}, **{f"best_epoch.fold{f}": e for f, e in result.best_epochs.items()}},
        models={f"transformer_fold{f}_state": state for f, state in result.states.items()},
        frames={"fold_scores": by_fold, "training_diagnostics": result.diagnostics}, artifact_root=mlflow.artifact_root(),
    )
    checks = [
        dg.AssetCheckResult(check_name="forecaster_transformer_not_degenerate", asset_key="forecaster_transformer",
                            passed=not forecast_problems, metadata={"problems": "\n".join(forecast_problems) or "none"}),
        dg.AssetCheckResult(check_name="training_diagnostics_no_collapse", asset_key="training_diagnostics",
                            passed=not collapse, metadata={"problems": "\n".join(collapse) or "none"}),
    ]
    if all(check.passed for check in checks):
        yield dg.Output({universe: result.predictions}, output_name="forecaster_transformer", metadata={
            "device": dg.MetadataValue.json(device.describe()), "windows": int(panel.starts.shape[0]),
            "features": len(names), "oof_ic": overall["ic"], "oof_rank_ic": overall["rank_ic"],
            "oof_icir": overall["icir"], "n_dates": overall["n_dates"], "prediction_std": overall["prediction_std"],
            "fold_scores": dg.MetadataValue.json(by_fold.with_columns(pl.selectors.float().round(5)).to_dicts()),
            "best_epochs": dg.MetadataValue.json(result.best_epochs), "mlflow_run_id": run_id,
        })
        yield dg.Output({universe: result.diagnostics}, output_name="training_diagnostics",
                        metadata={"rows": result.diagnostics.height})
    yield from checks
