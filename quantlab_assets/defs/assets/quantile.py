"""Seed 001's multi-horizon quantile forecaster, trained out of fold on the GPU when there is
one, and its training diagnostics; plain logic in compute/torch_runtime/quantile*.py.

forecaster_quantile[u] and quantile_diagnostics[u] come from one step. Horizons 1, 5, 10, 20 days;
quantiles 0.1 / 0.5 / 0.9 with pinball loss plus the seed's RankIC (0.5), cross-sectional IC (0.25)
and variance-penalty (0.1) terms; warm-up 5 epochs, gradient clipping 0.5, lr 1e-4 (its phase 3).
The median is the point forecast, scored per horizon by the model stack's scorecard.

The collapse of seed 001 is reproduced by `head_init: zero` (both layers of every head start at 0):
the hidden activations are GELU(0) = 0, so no gradient reaches the head's weights or the encoder and
only the output bias learns; every horizon predicts one constant. Measured on the synthetic universe
(2005-01..2008-06, 14,674 windows, 19 features; d_model 16, 1 layer, seq_len 21, 3 epochs, 16 dates per
batch, the seed's loss weights and lr; last epoch of each of the 2 folds with enough training dates):
collapsed, the median's validation std is 5e-12..1.2e-10 per horizon (float rounding of a constant),
the heads' weight-gradient norm and the encoder's gradient norm are exactly 0 while the whole head's
is 0.008-0.009 (its output bias), the loss falls (0.274226 -> 0.274211), and the scorecard's IC and
rank IC are null on all 212 test dates of every horizon. With 10x the aux weights, the same. Healthy
(torch's default init), median std 0.022-0.110, weight-gradient norms 0.068-0.169, encoder 0.26-0.35.
The blocking check `quantile_diagnostics_no_collapse` fails the first and passes the second.
"""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.metrics import score_predictions
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import schema_failures
from quantlab_assets.compute.schemas.deep import QuantileDiagnosticsSchema, QuantilePredictionsSchema
# Only the torch-free configs here; the torch code is imported in the asset function (deep_training.py says why).
from quantlab_assets.compute.torch_runtime.configs import HORIZONS, QuantileConfig, QuantileTrainingConfig
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.deep_training import DEEP_ASSET, UNIVERSE_INS, config_from, label_panel, settings
from quantlab_assets.defs.io_managers import UniverseFrames
from quantlab_assets.defs.resources import MlflowTrackingResource, TorchDeviceResource

NOT_DEGENERATE = "forecaster_quantile_not_degenerate"
NO_COLLAPSE = "quantile_diagnostics_no_collapse"


class QuantileAssetConfig(config_from("QuantileFields", QuantileConfig, QuantileTrainingConfig,
                                      exclude=frozenset({"horizons"}))):
    """Seed 003's encoder sizes, seed 001 phase 3's heads, loss weights and optimisation (compute's QuantileConfig
    and QuantileTrainingConfig; head_init "zero" is seed 001's collapse, kept as a fixture); tests shrink them."""

    min_prediction_std: float = Field(
        default=1e-6, description="Targets are z-scores (std 1 per date): a median std below this is a constant.")
    min_grad_norm: float = Field(
        default=1e-10, description="A head whose weight gradients are below this learns nothing that can make its "
                                   "predictions differ.")


@dg.multi_asset(
    **DEEP_ASSET,
    can_subset=False,
    outs={
        "forecaster_quantile": dg.AssetOut(is_required=False, kinds={"torch"}, description="Out-of-fold q10/q50/q90 per horizon (1, 5, 10, 20d)."),
        "quantile_diagnostics": dg.AssetOut(is_required=False, kinds={"torch"}, description="Per fold x epoch x horizon: median std, coverage, grad norms, activations."),
    },
    ins=UNIVERSE_INS,
    check_specs=[
        dg.AssetCheckSpec(NOT_DEGENERATE, asset="forecaster_quantile", blocking=True,
                          description="Schema; each horizon's median varies; no IC reported over constant predictions."),
        dg.AssetCheckSpec(NO_COLLAPSE, asset="quantile_diagnostics", blocking=True,
                          description="Schema; at every fold's last epoch each horizon's median std, head weight gradients and encoder activations are above tolerance."),
    ],
)
def forecaster_quantile(
    context: dg.AssetExecutionContext,
    config: QuantileAssetConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Train seed 001's quantile forecaster per walk-forward fold; forecast each fold's test dates."""
    from quantlab_assets.compute.torch_runtime.quantile_training import (
        HORIZON,
        cross_sectional_targets,
        fit_oof_quantile,
        quantile_collapse_problems,
        quantile_forecast_problems,
        quantile_scorecard,
    )

    universe = context.partition_key
    panel, names = label_panel(features[universe], labels[universe],
                               lambda frame: cross_sectional_targets(frame, HORIZONS), config.seq_len)
    model_config = settings(config, QuantileConfig, n_features=len(names))
    training = settings(config, QuantileTrainingConfig)
    device = torch_device.choice()
    context.log.info(f"training on {device.describe()}: {panel.starts.shape[0]} windows, {len(names)} features")
    result = fit_oof_quantile(panel, cv_folds[universe], model_config, training, device)

    forecast_problems = quantile_forecast_problems(result.predictions, config.min_prediction_std, 0.5)
    if failure := schema_failures(QuantilePredictionsSchema, result.predictions, asset="forecaster_quantile", partition=universe):
        forecast_problems.append(failure)
    collapse = quantile_collapse_problems(result.diagnostics, config.min_prediction_std, config.min_grad_norm)
    diagnostics_schema_failure = schema_failures(QuantileDiagnosticsSchema, result.diagnostics,
                                                 asset="quantile_diagnostics", partition=universe)
    collapse += [diagnostics_schema_failure] if diagnostics_schema_failure else []
    scorecard = quantile_scorecard(result.predictions)
    scores = dg.MetadataValue.json(scorecard.with_columns(pl.selectors.float().round(6)).to_dicts())
    by_fold = score_predictions(result.predictions, by=[HORIZON, cv.FOLD_ID])
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"forecaster_quantile|{universe}",
        config={"universe": universe, "features": ",".join(names), **dataclasses.asdict(model_config),
                **dataclasses.asdict(training), **device.describe()},
        metrics={f"oof.{row[HORIZON]}d.{k}": v for row in scorecard.iter_rows(named=True) for k, v in row.items() if k != HORIZON},
        models={f"quantile_fold{f}_state": state for f, state in result.states.items()},
        frames={"scorecard": scorecard, "fold_scores": by_fold, "quantile_diagnostics": result.diagnostics},
        artifact_root=mlflow.artifact_root(),
    )
    checks = [
        dg.AssetCheckResult(check_name=NOT_DEGENERATE, asset_key="forecaster_quantile", passed=not forecast_problems,
                            metadata={"problems": "\n".join(forecast_problems) or "none", "scorecard": scores}),
        dg.AssetCheckResult(check_name=NO_COLLAPSE, asset_key="quantile_diagnostics", passed=not collapse,
                            metadata={"problems": "\n".join(collapse) or "none"}),
    ]
    # The diagnostics are stored whenever they are well-formed, a collapsed run's too (they say why it
    # failed); the forecasts only when both checks pass.
    if diagnostics_schema_failure is None:
        yield dg.Output({universe: result.diagnostics}, output_name="quantile_diagnostics",
                        metadata={"rows": result.diagnostics.height, "collapsed": bool(collapse)})

    def outputs() -> Outputs:
        yield dg.Output({universe: result.predictions}, output_name="forecaster_quantile", metadata={
            "device": dg.MetadataValue.json(device.describe()), "windows": int(panel.starts.shape[0]),
            "features": len(names), "scorecard": scores, "best_epochs": dg.MetadataValue.json(result.best_epochs),
            "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, checks)
