"""Model 2 (seed 004): purged CV folds, out-of-fold base models, the stacked calibrated alpha and its scorecard.

Run order for a universe u (each step reads every stored month of u):
  cv_folds[u] -> oof_predictions[<model>_<h>d|u] (6 partitions, each re-runnable alone)
  -> stacked_alpha[u] -> model_scorecard[u], meta_labels[u]
  each oof_predictions partition also stores base_model_fits[<model>_<h>d|u]: the model fitted once on every
  labelled row; base_model_fits[*|u] + oof_predictions[*|u] + features + labels -> live_alpha[u] (the newest
  date: predicted by the stored fits, stacked; no base model is fitted twice)
Every fitted model, the fold scores and the importances are logged to MLflow (`MlflowTrackingResource`).
"""

import time
from collections.abc import Iterator
from typing import get_args

import dagster as dg
import polars as pl
from pydantic import Field

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.models import cv
from quantlab_assets.compute.models.base_models import BaseModelParams, XGBoostParams, model_rows
from quantlab_assets.compute.models.barrier import PROBABILITY as BARRIER_PROBABILITY
from quantlab_assets.compute.models.barrier import barrier_panel, fit_barrier_classifier
from quantlab_assets.compute.models.classifier import ClassifierResult
from quantlab_assets.compute.models.live import (
    constant_alphas,
    fit_frame,
    fit_from_frame,
    fit_key,
    fit_known_rows,
    fit_live_alpha,
)
from quantlab_assets.compute.models.meta_labels import PROBABILITY, fit_meta_labels, meta_label_panel
from quantlab_assets.compute.models.metrics import (
    PREDICTION,
    degeneracy_problems,
    score_predictions,
    undefined_scored_as_numbers,
)
from quantlab_assets.compute.models.oof import design_panel, fit_oof
from quantlab_assets.compute.models.scorecard import build_scorecard
from quantlab_assets.compute.models.stacking import StackParams, stack_and_combine
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.models.classifier import TunedParams
from quantlab_assets.compute.models.tuning import tuned_params
from quantlab_assets.compute.portfolio.strategies import AlphaColumn, StrategyParams
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.features import FeaturesSchema, LabelsSchema
from quantlab_assets.compute.schemas.models import (
    BarrierProbabilitiesSchema,
    CvFoldsSchema,
    MetaLabelsSchema,
    ModelScorecardSchema,
    OofPredictionsSchema,
    StackedAlphaSchema,
)
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.config import config_from, settings
from quantlab_assets.defs.executors import UNBLOCKING_STEP_TAGS
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import KeyedFrames, MissingUpstreamPartitionError, UniverseFrames, optional_input
from quantlab_assets.defs.partitions import (
    MODEL_HORIZONS,
    all_months_of_universe,
    oof_partitions,
    same_universe,
    split_model_horizon_key,
    universe_partitions,
)
from quantlab_assets.defs.resources import MlflowTrackingResource

GROUP = CORE_RESEARCH


def _check(name: str, problems: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=not problems, metadata={"problems": "\n".join(problems[:20]) or "none"})


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={"labels": dg.AssetIn(partition_mapping=same_universe)},
    check_specs=[dg.AssetCheckSpec(
        "cv_folds_hygiene", asset="cv_folds", blocking=True,
        description="Schema; every train/test pair >= 63 trading dates apart; no training label window reaches a test date.",
    )],
)
def cv_folds(context: dg.AssetExecutionContext, labels: UniverseFrames) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Purged walk-forward (5 splits) and combinatorial purged CV folds per horizon, as date segments."""
    params, frames, problems, summary = cv.CvParams(), {}, [], {}
    for name in context.partition_keys:
        label_frame = conform(labels[name], LabelsSchema)
        folds = cv.make_folds(label_frame, params)
        problems += [f] if (f := schema_failures(CvFoldsSchema, folds, asset="cv_folds", partition=name)) else []
        problems += cv.fold_violations(folds, label_frame, params.embargo_days)
        frames[name] = folds
        summary[name] = folds.group_by(cv.SCHEME, cv.HORIZON_DAYS, cv.ROLE).agg(pl.col(cv.N_DATES).sum()).sort(
            cv.SCHEME, cv.HORIZON_DAYS, cv.ROLE).to_dicts()
    check = _check("cv_folds_hygiene", problems)

    def outputs() -> Outputs:
        yield dg.Output(frames, metadata={"dates_by_role": dg.MetadataValue.json(summary),
                                          "embargo_days": params.embargo_days})
    yield from outputs_then_checks(outputs, check)


class OofConfig(config_from("OofFields", BaseModelParams)):
    """The base models' parameters (compute/models/base_models.py: ridge_*, xgboost_*, lightgbm_*); production
    defaults are seed 004's, tests lower the tree counts. The degeneracy thresholds are seed 001's lesson."""

    # Labels are log returns with a std of a few percent: a prediction std below 1e-6 is a constant.
    min_prediction_std: float = Field(
        default=1e-6, description="Predictions whose std is at or below this are a constant (a failed check).")
    min_distinct_share: float = Field(
        default=0.5, description="Share of a date's instruments that must get distinct predictions (median date).")

    def model_params(self) -> BaseModelParams:
        return settings(self, BaseModelParams)


@dg.multi_asset(
    outs={
        "oof_predictions": dg.AssetOut(kinds={"xgboost", "lightgbm", "sklearn"}, is_required=False, group_name=GROUP,
                                       description="One base model's out-of-fold predictions of one horizon."),
        "base_model_fits": dg.AssetOut(kinds={"xgboost", "lightgbm", "sklearn"}, is_required=False, group_name=GROUP,
                                       description="The same model fitted on every labelled row, for the live alpha."),
    },
    partitions_def=oof_partitions,
    ins={
        "features": dg.AssetIn(partition_mapping=all_months_of_universe),
        "labels": dg.AssetIn(partition_mapping=all_months_of_universe),
        "cv_folds": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "oof_predictions_not_degenerate", asset="oof_predictions", blocking=True,
        description="Predictions vary: pooled std above a tolerance, enough distinct values per date (seed 001).",
    )],
)
def oof_predictions(
    context: dg.AssetExecutionContext,
    config: OofConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One base model's out-of-fold predictions of one horizon over the purged walk-forward folds, and the
    same model fitted once on every labelled row (the live alpha's base model: fitted here, in parallel with
    the other model x horizon partitions, so that live_alpha fits none)."""
    key = context.partition_key
    model, horizon, universe = split_model_horizon_key(key)
    # Taken out of the inputs and dropped once joined: the design panel holds every column the models read,
    # and at 500 instruments x 20 years the features frame is another 1.6 GB this process need not keep.
    feature_frame = conform(features.pop(universe), FeaturesSchema)
    as_of = feature_frame[c.DATE].max()
    panel = design_panel(feature_frame, conform(labels[universe], LabelsSchema), horizon)
    del feature_frame
    params = config.model_params()
    rows = model_rows(panel.frame, panel.inputs, model, params.per_date_trees)
    result = fit_oof(panel, cv_folds[universe], model, horizon, params, rows)
    problems = degeneracy_problems(result.predictions, config.min_prediction_std, config.min_distinct_share)
    problems += [f] if (f := schema_failures(OofPredictionsSchema, result.predictions, asset="oof_predictions", partition=key)) else []
    overall = score_predictions(result.predictions).row(0, named=True)
    started = time.perf_counter()
    all_rows = fit_known_rows(panel, model, horizon, as_of, params, rows)
    all_rows_seconds = time.perf_counter() - started
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"{model}_{horizon}d|{universe}",
        config={"model": model, "horizon_days": horizon, "universe": universe, **params.as_dict(model),
                "cv": str(cv.CvParams()), "features": ",".join(result.feature_names), "rows": panel.frame.height},
        metrics={**{f"oof.{k}": v for k, v in overall.items()},
                 **{f"fold{r[cv.FOLD_ID]}.{k}": v for r in result.fold_scores.to_dicts() for k, v in r.items() if k != cv.FOLD_ID}},
        models={**{f"{model}_{horizon}d_fold{i}": estimator for i, estimator in enumerate(result.estimators)},
                f"{model}_{horizon}d_all_rows": all_rows.estimator},
        frames={"fold_scores": result.fold_scores, "feature_importance": result.importance},
        artifact_root=mlflow.artifact_root(),
    )
    check = _check("oof_predictions_not_degenerate", problems)
    top = result.importance.group_by("feature").agg(pl.col("importance").mean()).sort("importance", descending=True).head(10)

    def outputs() -> Outputs:
        yield dg.Output({key: result.predictions}, output_name="oof_predictions", metadata={
            "fold_scores": dg.MetadataValue.json(_rounded(result.fold_scores)),
            "oof_ic": overall["ic"], "oof_rank_ic": overall["rank_ic"], "prediction_std": overall["prediction_std"],
            "top_features": dg.MetadataValue.json(dict(top.iter_rows())),
            "fit_seconds": [round(s, 2) for s in result.fit_seconds], "mlflow_run_id": run_id,
        })
        yield dg.Output({key: fit_frame(all_rows)}, output_name="base_model_fits", metadata={
            "as_of": str(all_rows.as_of), "training_rows": all_rows.training_rows,
            "labels_ended_by": str(all_rows.labels_ended_by), "fit_seconds": round(all_rows_seconds, 2),
            "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)


class StackConfig(config_from("StackFields", StackParams)):
    """Seed 004: style neutralisation (beta, size, momentum) only when the configuration asks for it."""


@dg.asset(
    kinds={"sklearn"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    op_tags=UNBLOCKING_STEP_TAGS,
    ins={
        "oof_predictions": dg.AssetIn(partition_mapping=same_universe),
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "stacked_alpha_schema", asset="stacked_alpha", blocking=True,
        description="Seed 004's schema; every alpha finite and within [-1000, 1000] bp; variances positive.",
    )],
    output_required=False,
)
def stacked_alpha(
    context: dg.AssetExecutionContext,
    config: StackConfig,
    oof_predictions: KeyedFrames,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Nested Ridge stack of the base models per horizon, centred isotonic bp calibration cross-fitted on inner
    out-of-fold meta scores, inverse-variance combination."""
    universe = context.partition_key
    params = settings(config, StackParams)
    result = stack_and_combine(_by_horizon(oof_predictions), cv_folds[universe], conform(labels[universe], LabelsSchema),
                               features[universe], params)
    problems = [f] if (f := schema_failures(StackedAlphaSchema, result.alpha, asset="stacked_alpha", partition=universe)) else []
    scores = {h: score_predictions(frame).row(0, named=True) for h, frame in result.per_horizon.items()}
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"stacked_alpha|{universe}", config={"universe": universe, **vars(params)},
        metrics={f"stacked_{h}d.{k}": v for h, s in scores.items() for k, v in s.items()},
        models={f"{part}_{fit.horizon}d_fold{fit.fold_id}": getattr(fit, part) for fit in result.fits for part in ("meta", "calibrator")},
        artifact_root=mlflow.artifact_root(),
    )
    check = _check("stacked_alpha_schema", problems)

    def outputs() -> Outputs:
        yield dg.Output({universe: result.alpha}, metadata={
            "rows": result.alpha.height, "clipped_rows": result.clipped_rows, "mlflow_run_id": run_id,
            "stacked_rank_ic": dg.MetadataValue.json({f"{h}d": s["rank_ic"] for h, s in scores.items()}),
            "meta_coefficients": dg.MetadataValue.json(
                {f"{f.horizon}d_fold{f.fold_id}": [round(float(w), 4) for w in f.meta.coef_] for f in result.fits}),
            "residual_var_bp2": dg.MetadataValue.json({f"{f.horizon}d_fold{f.fold_id}": round(f.residual_var, 2) for f in result.fits}),
            "calibration_rows": dg.MetadataValue.json({f"{f.horizon}d_fold{f.fold_id}": f.calibration_rows for f in result.fits}),
        })
    yield from outputs_then_checks(outputs, check)


@dg.asset(
    kinds={"polars"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "oof_predictions": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "model_scorecard_honest", asset="model_scorecard", blocking=True,
        description="Schema; no IC, rank IC, ICIR or calibration slope reported for predictions without dispersion.",
    )],
)
def model_scorecard(
    context: dg.AssetExecutionContext, oof_predictions: KeyedFrames, stacked_alpha: UniverseFrames, labels: UniverseFrames
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Per model x horizon x fold (and all folds): IC, rank IC, ICIR, hit rate, std, quintile spread, calibration."""
    universe = context.partition_key
    card = build_scorecard(_by_horizon(oof_predictions), stacked_alpha[universe], conform(labels[universe], LabelsSchema))
    problems = undefined_scored_as_numbers(card)
    problems += [f] if (f := schema_failures(ModelScorecardSchema, card, asset="model_scorecard", partition=universe)) else []
    check = _check("model_scorecard_honest", problems)
    overall = card.filter(pl.col(cv.FOLD_ID).is_null()).select("model", cv.HORIZON_DAYS, "ic", "rank_ic", "prediction_std")

    def outputs() -> Outputs:
        yield dg.Output({universe: card}, metadata={"overall": dg.MetadataValue.json(_rounded(overall))})
    yield from outputs_then_checks(outputs, check)


class LiveAlphaConfig(StackConfig):
    """The stack's parameters; the base models' are those their oof_predictions partitions were fitted with."""

    min_prediction_std: float = Field(
        default=1e-6, description="A combined alpha whose std across the cross-section is at or below this is a constant.")


@dg.asset(
    kinds={"sklearn"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
        "oof_predictions": dg.AssetIn(partition_mapping=same_universe),
        "base_model_fits": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "live_alpha_valid", asset="live_alpha", blocking=True,
        description="Seed 004's schema and bounds; every alpha a book can trade (alpha_21d, alpha_combined) varies "
                    "across the cross-section (not a constant).",
    )],
)
def live_alpha(
    context: dg.AssetExecutionContext,
    config: LiveAlphaConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    oof_predictions: KeyedFrames,
    base_model_fits: KeyedFrames,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The stacked alpha of the newest date: the stored all-rows base-model fits predict it, the stack is
    fitted on the out-of-fold predictions whose labels ended by then."""
    universe = context.partition_key
    stack_params = settings(config, StackParams)
    fits = {fit_key(fit.model, fit.horizon): fit for fit in map(fit_from_frame, base_model_fits.values())}
    result = fit_live_alpha(conform(features[universe], FeaturesSchema), conform(labels[universe], LabelsSchema),
                            _by_horizon(oof_predictions), fits, stack_params=stack_params)
    problems = [f] if (f := schema_failures(StackedAlphaSchema, result.alpha, asset="live_alpha", partition=universe)) else []
    # Every column a book can trade (StrategyParams.alpha) must rank the names.
    problems += constant_alphas(result.alpha, get_args(AlphaColumn), config.min_prediction_std)
    horizon_fits = {
        f"{fit.horizon}d": {"base_training_rows": fit.base_training_rows, "stack_training_rows": fit.stack_training_rows,
                            "calibration_rows": fit.calibration_rows, "labels_ended_by": str(fit.labels_ended_by), "residual_var_bp2": round(fit.residual_var, 2),
                            "meta_coefficients": [round(w, 4) for w in fit.meta_coefficients]} for fit in result.fits}
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"live_alpha|{universe}",
        config={"universe": universe, "as_of": str(result.as_of), **vars(stack_params)},
        metrics={f"{h}.{k}": v for h, fit in horizon_fits.items() for k, v in fit.items() if isinstance(v, int | float)},
        models={}, artifact_root=mlflow.artifact_root(),
    )
    check = _check("live_alpha_valid", problems)

    def outputs() -> Outputs:
        # Ranked by the column the books trade by default.
        traded = StrategyParams().alpha
        ranked = result.alpha.sort(traded, descending=True).select(c.TICKER, pl.col(traded).round(1))
        yield dg.Output({universe: result.alpha}, metadata={
            "as_of": str(result.as_of), "instruments": result.alpha.height, "fits": dg.MetadataValue.json(horizon_fits),
            "ranked_by": traded,
            "top_5_bp": dg.MetadataValue.json(dict(ranked.head(5).iter_rows())),
            "bottom_5_bp": dg.MetadataValue.json(dict(ranked.tail(5).iter_rows())), "mlflow_run_id": run_id,
        })
    yield from outputs_then_checks(outputs, check)


class _ClassifierConfig(config_from("ClassifierFields", XGBoostParams)):
    """Seed 004's XGBoost parameters for the classifiers too (auditor, barrier); tests lower the tree count."""

    def params(self) -> XGBoostParams:
        return settings(self, XGBoostParams)


class MetaLabelConfig(_ClassifierConfig):
    """As the barrier classifier, on every core: the meta-labels are the one step running when the base
    models are done, and every strategy waits for them (XGBoost's hist gives the same model on 1 or 2 threads)."""

    n_jobs: int = Field(default=2, description="Threads per fit (2: the step runs alone, strategies wait for it).")


class BarrierClassifierConfig(_ClassifierConfig):
    """Seed 004's XGBoost parameters, or (use_tuned_params) the best trial of the universe's stored hyperparameter_search
    (an optional input) for the rows dated after the span it was tuned on; earlier rows keep the fields above."""

    use_tuned_params: bool = Field(
        default=False,
        description="Predict the rows after the tuned span with the best trial of this universe's stored "
                    "hyperparameter_search (an optional input), earlier rows with the fields above; false: the fields above.")


def _barrier_params(config: BarrierClassifierConfig, hyperparameter_search: UniverseFrames,
                    universe: str) -> XGBoostParams | TunedParams:
    if not config.use_tuned_params:
        return config.params()
    if universe not in hyperparameter_search:
        raise MissingUpstreamPartitionError(
            f"barrier_probabilities: use_tuned_params but input hyperparameter_search [{universe}] is not "
            f"materialised: materialise hyperparameter_search [{universe}] first")
    return tuned_params(hyperparameter_search[universe], config.params())


def _classifier_output(
    asset: str, universe: str, result: ClassifierResult, probability: str, schema: type, mlflow: MlflowTrackingResource,
    params: XGBoostParams | TunedParams,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Checks, MLflow run and output of an out-of-fold classifier asset (meta_labels, barrier_probabilities)."""
    tuning: dict[str, object] = {}
    if isinstance(params, TunedParams):
        tuning = {"tuned_through": str(params.tuned_through),
                  "rows_with_tuned_params": result.predictions.filter(pl.col(c.DATE) > params.tuned_through).height}
        logged = {**vars(params.default), **{f"tuned.{k}": v for k, v in vars(params.tuned).items()},
                  "tuned_through": tuning["tuned_through"]}
    else:
        logged = vars(params)
    problems = degeneracy_problems(result.predictions.rename({probability: PREDICTION}), 1e-6, 0.5)
    problems += [f] if (f := schema_failures(schema, result.predictions, asset=asset, partition=universe)) else []
    mlflow.ensure_store()
    run_id = log_model_run(
        mlflow.uri(), mlflow.experiment, f"{asset}|{universe}", config={"universe": universe, **logged},
        metrics={f"fold{r['fold_id']}.{k}": v for r in result.fold_scores.to_dicts() for k, v in r.items() if k != "fold_id"},
        models={f"{asset}_fold{i}": e for i, e in enumerate(result.estimators)},
        frames={"fold_scores": result.fold_scores}, artifact_root=mlflow.artifact_root(),
    )
    check = _check(f"{asset}_not_degenerate", problems)

    def outputs() -> Outputs:
        yield dg.Output({universe: result.predictions}, metadata={
            "fold_scores": dg.MetadataValue.json(_rounded(result.fold_scores)), "mlflow_run_id": run_id,
            "probability_quantiles": dg.MetadataValue.json({
                f"q{int(q * 100)}": round(float(result.predictions[probability].quantile(q)), 4) for q in (0.01, 0.5, 0.99)}),
            "share_at_least_0.75": round(float((result.predictions[probability] >= 0.75).mean()), 5), **tuning,
        })
    yield from outputs_then_checks(outputs, check)


@dg.asset(
    kinds={"xgboost"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    op_tags=UNBLOCKING_STEP_TAGS,
    output_required=False,
    ins={
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[dg.AssetCheckSpec(
        "meta_labels_not_degenerate", asset="meta_labels", blocking=True,
        description="Schema; probabilities vary (std above 1e-6, distinct values on the median date).",
    )],
)
def meta_labels(
    context: dg.AssetExecutionContext,
    config: MetaLabelConfig,
    stacked_alpha: UniverseFrames,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Out-of-fold XGBoost probability that the stacked alpha's trade hits its triple-barrier profit target."""
    universe = context.partition_key
    panel = meta_label_panel(stacked_alpha[universe], conform(features[universe], FeaturesSchema),
                             conform(labels[universe], LabelsSchema))
    result = fit_meta_labels(panel, cv_folds[universe], config.params())
    yield from _classifier_output("meta_labels", universe, result, PROBABILITY, MetaLabelsSchema, mlflow, config.params())


@dg.asset(
    kinds={"xgboost"},
    partitions_def=universe_partitions,
    group_name=GROUP,
    output_required=False,
    ins={
        "features": dg.AssetIn(partition_mapping=same_universe),
        "labels": dg.AssetIn(partition_mapping=same_universe),
        # Read only with use_tuned_params; an edge either way, so a new search marks the classifier stale.
        "hyperparameter_search": optional_input(),
    },
    check_specs=[dg.AssetCheckSpec(
        "barrier_probabilities_not_degenerate", asset="barrier_probabilities", blocking=True,
        description="Schema; probabilities vary (std above 1e-6, distinct values on the median date).",
    )],
)
def barrier_probabilities(
    context: dg.AssetExecutionContext,
    config: BarrierClassifierConfig,
    features: UniverseFrames,
    labels: UniverseFrames,
    cv_folds: UniverseFrames,
    hyperparameter_search: UniverseFrames,
    mlflow: MlflowTrackingResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Out-of-fold XGBoost probability that the upper triple barrier is touched first (seed 002's primary model)."""
    universe = context.partition_key
    params = _barrier_params(config, hyperparameter_search, universe)
    design = barrier_panel(conform(features[universe], FeaturesSchema), conform(labels[universe], LabelsSchema))
    result = fit_barrier_classifier(design, cv_folds[universe], params)
    yield from _classifier_output("barrier_probabilities", universe, result, BARRIER_PROBABILITY,
                                  BarrierProbabilitiesSchema, mlflow, params)


def _by_horizon(oof: KeyedFrames) -> dict[int, dict[str, pl.DataFrame]]:
    """{horizon: {model: predictions}} from oof_predictions frames keyed 'model_<h>d|universe'."""
    grouped: dict[int, dict[str, pl.DataFrame]] = {h: {} for h in MODEL_HORIZONS}
    for key, frame in oof.items():
        model, horizon, _ = split_model_horizon_key(key)
        grouped[horizon][model] = frame
    return grouped


def _rounded(frame: pl.DataFrame) -> list[dict[str, object]]:
    return frame.with_columns(pl.selectors.float().round(5)).to_dicts()
