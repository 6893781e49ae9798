"""Seed 002's phase 28: a SupCon-pre-trained encoder per walk-forward fold, a linear probe on it
out of fold, and the probe against the plain focal-loss `tbm_classifier` on the same rows and folds.
Plain logic in compute/torch_runtime/supcon.py. The encoders' weights go to a checkpoint file (what the
probe reads) and to MLflow; the stored asset is their per-fold training curves."""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.calibration import across_folds, calibration_by_fold
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.deep import SupconCurveSchema, SupconProbabilitiesSchema, TbmProbabilitiesSchema
from quantlab_assets.compute.storage import write_atomic
# Only the torch-free configs here; the torch code is imported in the asset functions (deep_training.py says why).
from quantlab_assets.compute.torch_runtime.configs import TBM_LEARNING_RATE, SupConConfig, TbmConfig, TrainingConfig
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.deep_training import DEEP_ASSET, UNIVERSE_INS, config_from, label_panel, settings
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager, UniverseFrames
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

ENCODER_CHECK = "supcon_encoder_curves_valid"
NOT_DEGENERATE = "supcon_probe_not_degenerate"


class SupconEncoderAssetConfig(config_from("SupconEncoderFields", TbmConfig, SupConConfig, TrainingConfig,
                                            exclude=frozenset({"focal_gamma", "focal_alpha", "probe_c", "probe_max_iter"}),
                                            defaults={"lr": TBM_LEARNING_RATE})):
    """tbm_classifier's network and optimisation (seed 002's golden config, its lr 6.7e-5) plus the SupCon head
    and temperature (compute's SupConConfig); tests shrink it."""



class SupconProbeAssetConfig(config_from("SupconProbeFields", SupConConfig,
                                          exclude=frozenset({"projection_dim", "temperature", "probe_max_iter"}))):
    """The probe's L2 strength (compute's SupConConfig.probe_c); the encoder's settings come from its checkpoint."""

    min_probability_std: float = Field(
        default=1e-6, description="A probability std below this is a probe that says the same thing about every window.")


@dg.asset(
    kinds={"torch"},
    **DEEP_ASSET,
    ins=UNIVERSE_INS,
    check_specs=[dg.AssetCheckSpec(ENCODER_CHECK, asset="supcon_encoder", blocking=True,
                                   description="Curve schema; every SupCon loss finite; one encoder per curve fold.")],
)
def supcon_encoder(
    context: dg.AssetExecutionContext,
    config: SupconEncoderAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One SupCon-pre-trained encoder per 21d walk-forward fold, on that fold's training windows; their curves."""
    import torch
    
    from quantlab_assets.compute.torch_runtime.supcon import pretrain_supcon_encoders
    from quantlab_assets.compute.torch_runtime.tbm import tbm_targets

    universe = context.partition_key
    panel, names = label_panel(features[universe], labels[universe], tbm_targets, config.seq_len)
    model = settings(config, SupConConfig, encoder=settings(config, TbmConfig, n_features=len(names)))
    training = settings(config, TrainingConfig)
    device = torch_device.choice()
    result = pretrain_supcon_encoders(panel, cv_folds[universe], model, training, device)

    problems = []
    if failure := schema_failures(SupconCurveSchema, result.curves, asset="supcon_encoder", partition=universe):
        problems.append(failure)
    if not result.curves.select(pl.col("train_loss", "val_loss").is_finite().all()).row(0) == (True, True):
        problems.append("non-finite SupCon loss in the curves")
    if set(result.curves["fold_id"]) != set(result.states):
        problems.append(f"curve folds {sorted(set(result.curves['fold_id']))} != encoder folds {sorted(result.states)}")
    check = dg.AssetCheckResult(check_name=ENCODER_CHECK, passed=not problems,
                                metadata={"problems": "\n".join(problems) or "none"})

    def outputs() -> Outputs:
        # Written only when the check passes: the probe reads this file, so a failed run never replaces a good one.
        path = io_manager.layout.checkpoint("supcon_encoder", universe)
        checkpoint = {"model": dataclasses.asdict(model), "training": dataclasses.asdict(training), "features": names,
                      "states": result.states}
        write_atomic(path, lambda temporary: torch.save(checkpoint, temporary))
        mlflow.ensure_store()
        run_id = log_model_run(
            mlflow.uri(), mlflow.experiment, f"supcon_encoder|{universe}",
            config={"universe": universe, "features": ",".join(names), **dataclasses.asdict(model.encoder),
                    "projection_dim": model.projection_dim, "temperature": model.temperature,
                    **dataclasses.asdict(training), **device.describe()},
            metrics={f"fold{f}.best_val_loss": float(result.curves.filter(pl.col("fold_id") == f)["val_loss"].min())
                     for f in result.states},
            models={f"supcon_fold{f}_state": state for f, state in result.states.items()},
            frames={"curves": result.curves}, artifact_root=mlflow.artifact_root(),
        )
        yield dg.Output({universe: result.curves}, metadata={
            "device": dg.MetadataValue.json(device.describe()), "windows": int(panel.starts.shape[0]),
            "best_epochs": dg.MetadataValue.json(result.best_epochs), "checkpoint": str(path), "mlflow_run_id": run_id,
            "curves": dg.MetadataValue.json(result.curves.with_columns(pl.selectors.float().round(5)).to_dicts()),
        })
    yield from outputs_then_checks(outputs, check)


def _rounded(summary: dict[str, object]) -> dict[str, object]:
    return {k: (round(v, 5) if isinstance(v, float) else _rounded(v) if isinstance(v, dict) else v) for k, v in summary.items()}


@dg.asset(
    kinds={"torch", "sklearn"},
    **DEEP_ASSET,
    ins={**UNIVERSE_INS, "supcon_encoder": dg.AssetIn(), "tbm_classifier": dg.AssetIn()},
    check_specs=[dg.AssetCheckSpec(NOT_DEGENERATE, asset="supcon_probe", blocking=True,
                                   description="Schema; probabilities vary across the test windows of every fold.")],
)
def supcon_probe(
    context: dg.AssetExecutionContext,
    config: SupconProbeAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    supcon_encoder: UniverseFrames,
    tbm_classifier: UniverseFrames,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Out-of-fold probabilities of a linear probe on each fold's frozen SupCon encoder, scored and compared
    with the stored tbm_classifier on the rows and folds both hold."""
    import torch
    
    from quantlab_assets.compute.torch_runtime.supcon import PROBABILITY, compare_with_plain, fit_linear_probes
    from quantlab_assets.compute.torch_runtime.tbm import HITS_UPPER, tbm_targets

    universe = context.partition_key
    checkpoint = torch.load(io_manager.layout.checkpoint("supcon_encoder", universe), map_location="cpu", weights_only=True)
    if set(supcon_encoder[universe]["fold_id"]) != set(checkpoint["states"]):
        raise ValueError(f"supcon_encoder checkpoint of {universe} does not hold the stored curves' folds: re-materialise it")
    stored = checkpoint["model"]
    model = SupConConfig(**{**stored, "encoder": TbmConfig(**stored["encoder"]), "probe_c": config.probe_c})
    training = TrainingConfig(**checkpoint["training"])
    panel, _ = label_panel(features[universe], labels[universe], tbm_targets, model.encoder.seq_len, checkpoint["features"])
    device = torch_device.choice()
    predictions = fit_linear_probes(panel, cv_folds[universe], model, training, checkpoint["states"], device)
    plain = conform(tbm_classifier[universe], TbmProbabilitiesSchema)
    comparison = compare_with_plain(predictions, plain)

    by_fold = calibration_by_fold(predictions, PROBABILITY, HITS_UPPER, cv.FOLD_ID)
    overall = across_folds(by_fold)
    problems = [f"fold {row[cv.FOLD_ID]}: probability std {row['probability_std']:.3g} below {config.min_probability_std}"
                for row in by_fold.iter_rows(named=True) if row["probability_std"] < config.min_probability_std]
    if failure := schema_failures(SupconProbabilitiesSchema, predictions, asset="supcon_probe", partition=universe):
        problems.append(failure)
    rows_note = ("identical rows and folds" if comparison.summary["same_rows"] else
                 f"rows differ (probe {comparison.summary['probe_rows']}, tbm_classifier {comparison.summary['plain_rows']}):"
                 f" compared on the {comparison.summary['shared_rows']} (date, ticker, fold) rows both hold")
    context.log.info(f"supcon_probe vs tbm_classifier: {rows_note}")
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"supcon_probe|{universe}",
        config={"universe": universe, "probe_c": config.probe_c, **device.describe()},
        metrics={**{f"oof.{k}": v for k, v in overall.items()},
                 **{f"vs_tbm.{k}": v for k, v in comparison.summary.items() if isinstance(v, float)}},
        frames={"fold_scores": by_fold, "comparison_by_fold": comparison.by_fold}, artifact_root=mlflow.artifact_root(),
    )
    check = dg.AssetCheckResult(check_name=NOT_DEGENERATE, passed=not problems,
                                metadata={"problems": "\n".join(problems) or "none"})

    def outputs() -> Outputs:
        rounded = pl.selectors.float().round(5)
        yield dg.Output({universe: predictions}, metadata={
            "device": dg.MetadataValue.json(device.describe()),
            "scorecard": dg.MetadataValue.json(_rounded(overall)),
            "fold_scores": dg.MetadataValue.json(by_fold.with_columns(rounded).to_dicts()),
            "comparison": dg.MetadataValue.json(_rounded(comparison.summary)),
            "comparison_by_fold": dg.MetadataValue.json(comparison.by_fold.with_columns(rounded).to_dicts()),
            "compared_rows": rows_note, "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)
