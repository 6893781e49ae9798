"""Hyper-parameter search: the triple-barrier classifier's XGBoost space tuned with Optuna on
purged, embargoed walk-forward folds of the research span (dates up to the universe's validation_end),
never its test span. Plain logic in compute/models/tuning.py.

The trials are the asset (one row per configuration tried, pruned ones included): `barrier_probabilities`
reads them as an optional input and trains with the best trial's parameters when its `use_tuned_params`
config is on. The best parameters and the honesty summary also go to a JSON file (path in the metadata)
for people, and to MLflow.
"""

from collections.abc import Iterator

import dagster as dg

from quantlab_assets.compute.models.barrier import barrier_panel
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.models.tuning import TuningParams, search_barrier_classifier, tuned_params_json
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.features import FeaturesSchema, LabelsSchema
from quantlab_assets.compute.schemas.models import HyperparameterTrialsSchema
from quantlab_assets.compute.storage import write_text_atomic
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.config import config_from, settings
from quantlab_assets.defs.groups import TUNING
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager, UniverseFrames
from quantlab_assets.defs.partitions import same_universe, universe_partitions
from quantlab_assets.defs.resources import MarketDataResource, MlflowTrackingResource

GROUP = TUNING


class HyperparameterSearchConfig(config_from("HyperparameterSearchFields", TuningParams)):
    """The search's budget and shape (compute/models/tuning.py: TuningParams)."""


@dg.asset(
    kinds={"optuna", "xgboost"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "hyperparameter_search_research_span_only", asset="hyperparameter_search", blocking=True,
        description="Schema; the tuning folds end on or before the universe's validation_end (no test-span row).",
    )],
)
def hyperparameter_search(
    context: dg.AssetExecutionContext,
    config: HyperparameterSearchConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    market_data: MarketDataResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Optuna TPE over the barrier classifier's space, each trial scored on the purged tuning folds."""
    universe = context.partition_key
    validation_end = market_data.universe(universe).split.validation_end
    label_frame = conform(labels[universe], LabelsSchema)
    design = barrier_panel(conform(features[universe], FeaturesSchema), label_frame)
    params = settings(config, TuningParams)
    result = search_barrier_classifier(design, label_frame, validation_end, params)
    problems = [f] if (f := schema_failures(HyperparameterTrialsSchema, result.trials, asset="hyperparameter_search",
                                            partition=universe)) else []
    last_tuning_date = result.folds["end"].max()
    if last_tuning_date > validation_end:
        problems.append(f"tuning folds reach {last_tuning_date}, after validation_end {validation_end}")
    check = dg.AssetCheckResult(check_name="hyperparameter_search_research_span_only", passed=not problems,
                                metadata={"problems": "\n".join(problems) or "none",
                                          "last_tuning_date": str(last_tuning_date), "validation_end": str(validation_end)})

    def outputs() -> Outputs:
        path = write_text_atomic(tuned_params_json(result, universe, validation_end),
                                 io_manager.layout.artifact("hyperparameter_search", f"{universe}.json"))
        mlflow.ensure_store()
        run_id = log_model_run(
            mlflow.uri(), mlflow.experiment, f"hyperparameter_search|{universe}",
            config={"universe": universe, "validation_end": str(validation_end), **vars(params),
                    **{f"best.{k}": v for k, v in vars(result.best).items()}},
            metrics={k: float(v) for k, v in result.summary.items() if isinstance(v, int | float)},
            models={}, frames={"trials": result.trials, "tuning_folds": result.folds}, artifact_root=mlflow.artifact_root(),
        )
        yield dg.Output({universe: result.trials}, metadata={
            "tuned_params_file": dg.MetadataValue.path(str(path)), "summary": dg.MetadataValue.json(result.summary),
            "configurations_tried": result.summary["configurations_tried"], "evidence": result.summary["evidence"],
            "skill": result.summary["skill"],
            "best_params": dg.MetadataValue.json(vars(result.best)), "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)
