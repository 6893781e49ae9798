"""Representation learning (seed 003 phase 3): the masked time-series encoder, pre-trained per
universe on its training span, the market embeddings it gives every (date, ticker) with a complete
window, and the transfer scorecard (a forecaster from a pre-trained encoder vs from random weights).
GPU-tagged like deep.py (pool `gpu`, tag `device: gpu`), in gpu_training_job; CPU otherwise.

The encoder's weights are a checkpoint file under the data dir (`<data dir>/checkpoints/masked_encoder/
<universe>.pt`, also logged to MLflow); the asset's stored value is its loss curve. `embeddings` reads the
checkpoint the same run or an earlier one wrote.
"""

import dataclasses
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import undefined_scored_as_numbers
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.deep import EmbeddingsSchema, PretrainingCurveSchema
from quantlab_assets.compute.schemas.features import FeaturesSchema
from quantlab_assets.compute.schemas.models import ModelScorecardSchema
from quantlab_assets.compute.storage import write_atomic
# Only the torch-free configs here; the torch code is imported in the asset functions (deep_training.py says why).
from quantlab_assets.compute.torch_runtime.configs import MaskedEncoderConfig, TrainingConfig, TransformerConfig
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.deep_training import DEEP_ASSET, UNIVERSE_INS, config_from, forecast_targets, label_panel, settings
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager, UniverseFrames
from quantlab_assets.defs.partitions import same_universe
from quantlab_assets.defs.resources import MarketDataResource, MlflowTrackingResource, TorchDeviceResource

# Cut dates of the embeddings' look-ahead check (the property does not depend on how many).
LOOKAHEAD_CUTS = 2
# Recomputed and stored embeddings agree to float32 rounding of a different batch composition.
LOOKAHEAD_TOLERANCE = 1e-4


class MaskedEncoderAssetConfig(config_from("MaskedEncoderFields", MaskedEncoderConfig, TrainingConfig,
                                            defaults={"max_epochs": 50, "patience": 5})):
    """Seed 003's encoder (compute's MaskedEncoderConfig) and pre-training: 50-100 epochs in the seed, early
    stopping here; tests shrink it."""

    train_end: str = Field(
        default="", description="Empty: the universe's splits.train_end. An ISO date pre-trains on a shorter span "
                                "(never a longer one).")


@dg.asset(
    kinds={"torch"},
    **DEEP_ASSET,
    ins={"features": dg.AssetIn(partition_mapping=same_universe)},
    check_specs=[dg.AssetCheckSpec("masked_encoder_training_span", asset="masked_encoder", blocking=True,
                                   description="Curve schema; every pre-training window ends by train_end; losses finite.")],
    output_required=False,
)
def masked_encoder(
    context: dg.AssetExecutionContext,
    config: MaskedEncoderAssetConfig,
    features: UniverseFrames,
    market_data: MarketDataResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Pre-train seed 003's masked time-series encoder on the universe's training span; store its checkpoint."""
    import torch
    
    from quantlab_assets.compute.torch_runtime.embeddings import build_feature_panel
    from quantlab_assets.compute.torch_runtime.inputs import input_features
    from quantlab_assets.compute.torch_runtime.pretraining import pretrain_masked_encoder, training_span_starts

    universe = context.partition_key
    split_end = market_data.universe(universe).split.train_end
    train_end = min(split_end, dt.date.fromisoformat(config.train_end)) if config.train_end else split_end
    frame = conform(features[universe], FeaturesSchema)
    names = input_features(frame)
    model_config = settings(config, MaskedEncoderConfig, n_features=len(names))
    training = settings(config, TrainingConfig)
    device = torch_device.choice()
    panel = build_feature_panel(frame, names, config.seq_len)
    context.log.info(f"pre-training on {device.describe()}: windows ending by {train_end}, {len(names)} features")
    result = pretrain_masked_encoder(panel, training_span_starts(panel, train_end), model_config, training, device)

    problems = [f"last pre-training window ends {result.last_window_end}, after train_end {train_end}"] \
        if result.last_window_end > train_end else []
    if not all(result.curve.select(pl.col("train_loss", "val_loss").is_finite().all()).row(0)):
        problems.append("non-finite loss in the pre-training curve")
    if failure := schema_failures(PretrainingCurveSchema, result.curve, asset="masked_encoder", partition=universe):
        problems.append(failure)
    check = dg.AssetCheckResult(check_name="masked_encoder_training_span", asset_key="masked_encoder",
                                passed=not problems, metadata={"problems": "\n".join(problems) or "none"})

    def outputs() -> Outputs:
        # Written only when the check passes: embeddings read this file, so a failed encoder never replaces a good one.
        path = io_manager.layout.checkpoint("masked_encoder", universe)
        checkpoint = {"config": dataclasses.asdict(model_config), "features": names, "state": result.state,
                      "train_end": train_end.isoformat(), "last_window_end": result.last_window_end.isoformat()}
        write_atomic(path, lambda temporary: torch.save(checkpoint, temporary))
        mlflow.ensure_store()
        run_id = log_model_run(
            mlflow.uri(), mlflow.experiment, f"masked_encoder|{universe}",
            config={"universe": universe, "features": ",".join(names), "train_end": train_end, **dataclasses.asdict(model_config),
                    **dataclasses.asdict(training), **device.describe()},
            metrics={"best_val_loss": float(result.curve["val_loss"].min()), "best_epoch": result.best_epoch,
                     "realised_mask_ratio": model_config.realised_mask_ratio},
            models={"masked_encoder_state": result.state}, frames={"loss_curve": result.curve},
            artifact_root=mlflow.artifact_root(),
        )
        yield dg.Output({universe: result.curve}, metadata={
            "train_span": dg.MetadataValue.json({"first_window_end": str(result.first_window_end),
                                                 "last_window_end": str(result.last_window_end), "train_end": str(train_end)}),
            "fit_windows": result.fit_windows, "validation_windows": result.validation_windows,
            "loss_curve": dg.MetadataValue.json(result.curve.with_columns(pl.selectors.float().round(6)).to_dicts()),
            "best_epoch": result.best_epoch, "mask_ratio": config.mask_ratio,
            "realised_mask_ratio": model_config.realised_mask_ratio, "masked_patches": model_config.n_masked,
            "patches": model_config.n_patches, "checkpoint": dg.MetadataValue.path(str(path)),
            "device": dg.MetadataValue.json(device.describe()), "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)


class EmbeddingsAssetConfig(dg.Config):
    batch_size: int = Field(default=1024, description="Windows encoded per forward pass.")
    min_std: float = Field(
        default=1e-6, description="At or below this std over all rows a dimension carries nothing (a collapsed "
                                  "representation: the check fails).")


@dg.asset(
    kinds={"torch"},
    **DEEP_ASSET,
    ins={"features": dg.AssetIn(partition_mapping=same_universe)},
    deps=["masked_encoder"],  # its checkpoint file, not its stored loss curve
    check_specs=[
        dg.AssetCheckSpec("embeddings_finite", asset="embeddings", blocking=True, description="Schema; no NaN or infinity."),
        dg.AssetCheckSpec("embeddings_not_collapsed", asset="embeddings", blocking=True,
                          description="Every dimension's std over the rows above the tolerance; rows not all one vector."),
        dg.AssetCheckSpec("embeddings_no_lookahead", asset="embeddings", blocking=True,
                          description="At cut dates, embeddings recomputed from features up to the date equal the stored ones."),
    ],
    output_required=False,
)
def embeddings(
    context: dg.AssetExecutionContext,
    config: EmbeddingsAssetConfig,
    features: UniverseFrames,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    torch_device: TorchDeviceResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The pre-trained encoder's pooled output of the window ending at each (date, ticker)."""
    import torch
    
    from quantlab_assets.compute.torch_runtime.embeddings import (
        build_feature_panel,
        collapse_problems,
        cut_dates,
        embed_panel,
        lookahead_problems,
        nonfinite_problems,
    )
    from quantlab_assets.compute.torch_runtime.masked_encoder import MaskedTimeSeriesEncoder

    universe = context.partition_key
    checkpoint = torch.load(io_manager.layout.checkpoint("masked_encoder", universe), map_location="cpu", weights_only=True)
    model = MaskedTimeSeriesEncoder(MaskedEncoderConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state"])
    frame, names = conform(features[universe], FeaturesSchema), checkpoint["features"]
    device = torch_device.choice().device
    result = embed_panel(model, build_feature_panel(frame, names, model.config.seq_len), config.batch_size, device)

    finite = nonfinite_problems(result)
    if failure := schema_failures(EmbeddingsSchema, result, asset="embeddings", partition=universe):
        finite.append(failure)
    checks = {
        "embeddings_finite": finite,
        "embeddings_not_collapsed": collapse_problems(result, config.min_std),
        "embeddings_no_lookahead": lookahead_problems(model, frame, names, result, cut_dates(result, LOOKAHEAD_CUTS),
                                                      config.batch_size, device, LOOKAHEAD_TOLERANCE),
    }
    results = [dg.AssetCheckResult(check_name=name, asset_key="embeddings", passed=not problems,
                                   metadata={"problems": "\n".join(problems) or "none"}) for name, problems in checks.items()]

    def outputs() -> Outputs:
        yield dg.Output({universe: result}, metadata={
            "dims": model.config.d_model, "rows": result.height, "tickers": result[c.TICKER].n_unique(),
            "first_date": str(result[c.DATE].min()), "last_date": str(result[c.DATE].max()),
            "encoder_train_end": checkpoint["train_end"], "encoder_last_window_end": checkpoint["last_window_end"],
        })
    yield from outputs_then_checks(outputs, results)


class EncoderTransferConfig(config_from("EncoderTransferFields", MaskedEncoderConfig, TrainingConfig)):
    """One architecture for both variants (the masked encoder's, seed sizes); the fine-tuning's optimisation,
    and pre-training with it for `pretrain_epochs`."""

    pretrain_epochs: int = Field(default=50, description="Epochs of the masked pre-training of the transfer variant.")


@dg.asset(
    kinds={"sklearn"},
    **DEEP_ASSET,
    ins=UNIVERSE_INS,
    check_specs=[dg.AssetCheckSpec("encoder_transfer_scorecard_honest", asset="encoder_transfer_scorecard", blocking=True,
                                   description="Schema; both variants forecast the same rows; no number where none is defined.")],
    output_required=False,
)
def encoder_transfer_scorecard(
    context: dg.AssetExecutionContext,
    config: EncoderTransferConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Forecaster from the pre-trained encoder vs from random weights, same folds, the model stack's scores."""
    from quantlab_assets.compute.torch_runtime.transfer import PRETRAINED, RANDOM, compare_encoder_transfer

    universe = context.partition_key
    panel, names = label_panel(features[universe], labels[universe], forecast_targets, config.seq_len)
    encoder = settings(config, MaskedEncoderConfig, n_features=len(names))
    finetuning = settings(config, TrainingConfig)
    pretraining = dataclasses.replace(finetuning, max_epochs=config.pretrain_epochs)
    device = torch_device.choice()
    # The forecaster of the comparison has the encoder's sizes (its patch settings do not apply).
    forecaster = settings(config, TransformerConfig, n_features=len(names))
    result = compare_encoder_transfer(panel, cv_folds[universe], encoder, forecaster, pretraining, finetuning, device)

    problems = undefined_scored_as_numbers(result.scorecard)
    random, pretrained = result.predictions[RANDOM], result.predictions[PRETRAINED]
    if not random.select(c.DATE, c.TICKER).equals(pretrained.select(c.DATE, c.TICKER)):
        problems.append("the two variants forecast different rows")
    if failure := schema_failures(ModelScorecardSchema, result.scorecard, asset="encoder_transfer_scorecard", partition=universe):
        problems.append(failure)
    overall = {row["model"]: row for row in result.scorecard.filter(pl.col(cv.FOLD_ID).is_null()).iter_rows(named=True)}
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"encoder_transfer|{universe}",
        config={"universe": universe, **dataclasses.asdict(encoder), **dataclasses.asdict(finetuning),
                "pretrain_epochs": config.pretrain_epochs, **device.describe()},
        metrics={**{f"{m}.{k}": overall[m][k] for m in overall for k in ("ic", "icir", "rank_ic")},
                 **{f"ic_difference.{k}": v for k, v in result.ic_difference.items()}},
        frames={"scorecard": result.scorecard, "pretrain_curves": result.pretrain_curves}, artifact_root=mlflow.artifact_root(),
    )
    check = dg.AssetCheckResult(check_name="encoder_transfer_scorecard_honest", asset_key="encoder_transfer_scorecard",
                                passed=not problems, metadata={"problems": "\n".join(problems) or "none"})

    def outputs() -> Outputs:
        yield dg.Output({universe: result.scorecard}, metadata={
            **{f"{m}_{k}": overall[m][k] for m in overall for k in ("ic", "icir", "rank_ic", "n_dates")},
            "ic_difference_pretrained_minus_random": dg.MetadataValue.json(result.ic_difference),
            "device": dg.MetadataValue.json(device.describe()), "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)
