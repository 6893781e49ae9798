"""Deep-learning track: the multi-task transformer and the Temporal Fusion Transformer
forecasters, trained out of fold on the GPU when one is there (CPU otherwise), with their training
diagnostics. Plain logic in compute/torch_runtime.

Each forecaster's assets come from one step (one training run): the out-of-fold forecasts go through the
model stack's scorecard and degeneracy functions; the diagnostics' blocking check fails a model whose
predictions collapse (seed 001). The TFT also stores what it attends to (variable selection, attention).
"""


import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import degeneracy_problems, score_predictions
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.deep import TftInterpretationSchema, TrainingDiagnosticsSchema
from quantlab_assets.compute.schemas.models import OofPredictionsSchema
# Only the torch-free configs here; the torch code is imported in the functions (deep_training.py says why).
from quantlab_assets.compute.torch_runtime.configs import TftConfig, TrainingConfig, TransformerConfig
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.deep_training import DEEP_ASSET, UNIVERSE_INS, config_from, forecast_targets, label_panel, settings
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

if TYPE_CHECKING:
    from quantlab_assets.compute.torch_runtime.device import DeviceChoice
    from quantlab_assets.compute.torch_runtime.training import ForecasterConfig, TransformerOofResult
    from quantlab_assets.compute.torch_runtime.windows import WindowPanel


class TransformerAssetConfig(config_from("TransformerFields", TransformerConfig, TrainingConfig)):
    """Seed 003 phase 2's architecture and its optimisation (defaults: compute's TransformerConfig and
    TrainingConfig); tests shrink everything."""

    min_prediction_std: float = Field(
        default=1e-6, description="Below this std (log-return units) the mean head predicts a constant (seed 001's collapse).")


class TftAssetConfig(config_from("TftFields", TftConfig, TrainingConfig)):
    """Seed 003 phase 4's TFT (defaults: compute's TftConfig, whose sizes say where they come from) and the
    transformer's optimisation."""

    min_prediction_std: float = Field(
        default=1e-6, description="Below this std (log-return units) the mean head predicts a constant (seed 001's collapse).")


@dataclasses.dataclass(frozen=True)
class OofRun:
    """One trained forecaster and what its asset step reports."""

    name: str
    universe: str
    result: "TransformerOofResult"
    model_config: "ForecasterConfig"
    training: TrainingConfig
    device: "DeviceChoice"
    panel: "WindowPanel"
    feature_names: list[str]


def train_out_of_fold(context: dg.AssetExecutionContext, name: str, model_config: Callable[..., "ForecasterConfig"],
                      config: TransformerAssetConfig | TftAssetConfig, features: UniverseFrames, labels: UniverseFrames,
                      cv_folds: UniverseFrames, torch_device: TorchDeviceResource) -> OofRun:
    """Train the forecaster of class `model_config` per walk-forward fold of the partition's universe."""
    from quantlab_assets.compute.torch_runtime.training import fit_oof_transformer

    universe = context.partition_key
    panel, names = label_panel(features[universe], labels[universe], forecast_targets, config.seq_len)
    device = torch_device.choice()
    context.log.info(f"{name} on {device.describe()}: {panel.starts.shape[0]} windows, {len(names)} features")
    training = settings(config, TrainingConfig)
    built = settings(config, model_config, n_features=len(names))
    result = fit_oof_transformer(panel, cv_folds[universe], built, training, device)
    return OofRun(name, universe, result, built, training, device, panel, names)


def forecast_checks(run: OofRun, diagnostics_asset: str, min_std: float) -> list[dg.AssetCheckResult]:
    """The two blocking checks: forecasts not degenerate, diagnostics without a collapsed fold."""
    from quantlab_assets.compute.torch_runtime.training import collapse_problems

    forecast_problems = degeneracy_problems(run.result.predictions, min_std, 0.5)
    if failure := schema_failures(OofPredictionsSchema, run.result.predictions, asset=run.name, partition=run.universe):
        forecast_problems.append(failure)
    collapse = collapse_problems(run.result.diagnostics, min_std)
    if failure := schema_failures(TrainingDiagnosticsSchema, run.result.diagnostics, asset=diagnostics_asset,
                                  partition=run.universe):
        collapse.append(failure)
    return [
        dg.AssetCheckResult(check_name=f"{run.name}_not_degenerate", asset_key=run.name,
                            passed=not forecast_problems, metadata={"problems": "\n".join(forecast_problems) or "none"}),
        dg.AssetCheckResult(check_name=f"{diagnostics_asset}_no_collapse", asset_key=diagnostics_asset,
                            passed=not collapse, metadata={"problems": "\n".join(collapse) or "none"}),
    ]


def forecast_outputs(run: OofRun, diagnostics_asset: str, mlflow: MlflowTrackingResource,
                     frames: dict[str, pl.DataFrame] | None = None) -> list[dg.Output]:
    """Score the OOF forecasts, log the run to MLflow; the forecasts' and diagnostics' outputs."""
    overall = score_predictions(run.result.predictions).row(0, named=True)
    by_fold = score_predictions(run.result.predictions, by=[cv.FOLD_ID])
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"{run.name}|{run.universe}",
        config={"universe": run.universe, "features": ",".join(run.feature_names), **dataclasses.asdict(run.model_config),
                **dataclasses.asdict(run.training), **run.device.describe()},
        metrics={**{f"oof.{k}": v for k, v in overall.items()},
                 **{f"best_epoch.fold{f}": e for f, e in run.result.best_epochs.items()}},
        models={f"{run.name}_fold{f}_state": state for f, state in run.result.states.items()},
        frames={"fold_scores": by_fold, "training_diagnostics": run.result.diagnostics, **(frames or {})},
        artifact_root=mlflow.artifact_root(),
    )
    return [
        dg.Output({run.universe: run.result.predictions}, output_name=run.name, metadata={
            "device": dg.MetadataValue.json(run.device.describe()), "windows": int(run.panel.starts.shape[0]),
            "features": len(run.feature_names), "oof_ic": overall["ic"], "oof_rank_ic": overall["rank_ic"],
            "oof_icir": overall["icir"], "n_dates": overall["n_dates"], "prediction_std": overall["prediction_std"],
            "fold_scores": dg.MetadataValue.json(by_fold.with_columns(pl.selectors.float().round(5)).to_dicts()),
            "best_epochs": dg.MetadataValue.json(run.result.best_epochs), "mlflow_run_id": run_id,
        }),
        dg.Output({run.universe: run.result.diagnostics}, output_name=diagnostics_asset,
                  metadata={"rows": run.result.diagnostics.height}),
    ]


@dg.multi_asset(
    **DEEP_ASSET,
    can_subset=False,
    outs={
        "forecaster_transformer": dg.AssetOut(is_required=False, kinds={"torch"}, description="Out-of-fold 21d forecasts (Gaussian mean)."),
        "training_diagnostics": dg.AssetOut(is_required=False, kinds={"torch"}, description="Per fold x epoch x head: pred std, grad norm, activations."),
    },
    ins=UNIVERSE_INS,
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
    run = train_out_of_fold(context, "forecaster_transformer", TransformerConfig, config, features, labels, cv_folds,
                            torch_device)
    checks = forecast_checks(run, "training_diagnostics", config.min_prediction_std)

    def outputs() -> Outputs:
        yield from forecast_outputs(run, "training_diagnostics", mlflow)
    yield from outputs_then_checks(outputs, checks)


@dg.multi_asset(
    **DEEP_ASSET,
    can_subset=False,
    outs={
        "forecaster_tft": dg.AssetOut(is_required=False, kinds={"torch"}, description="Out-of-fold 21d forecasts of the TFT (Gaussian mean)."),
        "tft_diagnostics": dg.AssetOut(is_required=False, kinds={"torch"}, description="Per fold x epoch x head: pred std, grad norm, activations."),
        "tft_interpretation": dg.AssetOut(is_required=False, kinds={"torch"},
                                          description="Per fold: mean variable-selection weight per feature, attention per lag."),
    },
    ins=UNIVERSE_INS,
    check_specs=[
        dg.AssetCheckSpec("forecaster_tft_not_degenerate", asset="forecaster_tft", blocking=True,
                          description="Schema; out-of-fold forecasts vary (pooled std, distinct values per date)."),
        dg.AssetCheckSpec("tft_diagnostics_no_collapse", asset="tft_diagnostics", blocking=True,
                          description="Schema; no fold's mean head ends with a validation prediction std below the tolerance."),
        dg.AssetCheckSpec("tft_interpretation_weights_valid", asset="tft_interpretation", blocking=True,
                          description="Schema: weights in [0, 1], summing to 1 per fold and kind."),
    ],
)
def forecaster_tft(
    context: dg.AssetExecutionContext,
    config: TftAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Train seed 003's TFT per walk-forward fold; forecast each fold's test dates; store its attention."""
    from quantlab_assets.compute.torch_runtime.interpretation import tft_interpretation

    run = train_out_of_fold(context, "forecaster_tft", TftConfig, config, features, labels, cv_folds, torch_device)
    interpretation = tft_interpretation(run.panel, cv_folds[run.universe], run.model_config, run.result.states,
                                        run.device, run.training.batch_size)
    problems = schema_failures(TftInterpretationSchema, interpretation, asset="tft_interpretation", partition=run.universe)
    checks = [*forecast_checks(run, "tft_diagnostics", config.min_prediction_std), dg.AssetCheckResult(
        check_name="tft_interpretation_weights_valid", asset_key="tft_interpretation", passed=problems is None,
        metadata={"problems": problems or "none"})]

    def outputs() -> Outputs:
        yield from forecast_outputs(run, "tft_diagnostics", mlflow, {"tft_interpretation": interpretation})
        importance = (interpretation.filter(pl.col("kind") == "variable_selection").group_by("name")
                      .agg(pl.col("weight").mean()).sort("weight", descending=True))
        yield dg.Output({run.universe: interpretation}, output_name="tft_interpretation", metadata={
            "feature_importance": dg.MetadataValue.md(
                "| feature | mean weight |\n|---|---:|\n"
                + "\n".join(f"| {n} | {w:.4f} |" for n, w in importance.iter_rows())),
        })
    yield from outputs_then_checks(outputs, checks)
