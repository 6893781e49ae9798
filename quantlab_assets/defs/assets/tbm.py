"""Seed 002's triple-barrier classifier on sequence windows: focal loss, out of fold, scored by
its calibration (Brier, log loss, ECE, AUC per fold and across folds with 95 % intervals, the reliability
curve). Plain logic in compute/torch_runtime/tbm.py and compute/models/calibration.py. Its probabilities
have the columns of `barrier_probabilities` (the tabular XGBoost version) under their own name.

Measured on the synthetic fixture inputs (2005-01..2008-06; golden config at seq_len 21, 3 epochs, CPU):
AUC 0.503 [0.496, 0.510] over 2 folds, Brier 0.259, ECE 0.088: no skill on this market, and
over-confident (docs/studies.md, "The triple-barrier classifier on sequence windows")."""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.calibration import across_folds, calibration_by_fold, reliability_curve
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.deep import TbmProbabilitiesSchema
# Only the torch-free configs here; the torch code is imported in the asset function (deep_training.py says why).
from quantlab_assets.compute.torch_runtime.configs import TBM_LEARNING_RATE, TbmConfig, TrainingConfig
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.deep_training import DEEP_ASSET, UNIVERSE_INS, config_from, label_panel, settings
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

NOT_DEGENERATE = "tbm_classifier_not_degenerate"


class TbmAssetConfig(config_from("TbmFields", TbmConfig, TrainingConfig, defaults={"lr": TBM_LEARNING_RATE})):
    """Seed 002's golden config (compute's TbmConfig: d_model 128, 2 layers, 4 heads, dropout 0.23) at its
    lr 6.7e-5, the transformer's optimisation otherwise; tests shrink it."""

    min_probability_std: float = Field(
        default=1e-6, description="A probability std below this is a classifier that says the same thing about every window.")


@dg.asset(
    kinds={"torch"},
    **DEEP_ASSET,
    ins=UNIVERSE_INS,
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
    from quantlab_assets.compute.torch_runtime.tbm import HITS_UPPER, PROBABILITY, fit_oof_tbm, tbm_targets

    universe = context.partition_key
    panel, names = label_panel(features[universe], labels[universe], tbm_targets, config.seq_len)
    model = settings(config, TbmConfig, n_features=len(names))
    training = settings(config, TrainingConfig)
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
