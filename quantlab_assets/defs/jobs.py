"""Named selections (the core research path, the heavy tracks) and the jobs of one partitions definition each."""

# No `from __future__ import annotations`: the op's config class must stay a class, not a string, for Dagster.
import datetime as dt

import dagster as dg

from pydantic import Field

from quantlab_assets.defs.executors import GPU_EXECUTOR_CONFIG, lab_executor
from quantlab_assets.defs.groups import CORE_RESEARCH, DEEP_LEARNING, HEDGING, REINFORCEMENT_LEARNING, TUNING

# The named selections: the core research path (what command 1 and the UI's one-click backfill run) and each
# heavy track. Their assets span several partitions definitions, so they are launched as one asset backfill
# (quantlab_assets/pipeline.py, or the UI), not as an asset job, which must share one partitions definition.
SELECTIONS: dict[str, dg.AssetSelection] = {
    name: dg.AssetSelection.groups(name) for name in (CORE_RESEARCH, DEEP_LEARNING, REINFORCEMENT_LEARNING, HEDGING, TUNING)
}


class SelectionBackfillConfig(dg.Config):
    """What the launchpad of `launch_backfill` asks for: a named selection, a universe and a month range."""

    selection: str = Field(default=CORE_RESEARCH, description=f"one of {sorted(SELECTIONS)}")
    universe: str = Field(default="synthetic", description="the universe whose partitions to materialise")
    first_month: str = Field(default="2005-01-01", description="first month of the month-partitioned assets")
    last_month: str = Field(default="", description="last month (YYYY-MM-01); empty: the current month")


@dg.op
def submit_selection_backfill(context: dg.OpExecutionContext, config: SelectionBackfillConfig) -> None:
    """Record one asset backfill of the selection (the daemon of `dagster dev` then runs it; Overview -> Backfills)."""
    # Imported when the op runs: the definitions import this module, and the backfill machinery (Dagster's
    # daemon modules) would add 5 % to every run process's import of the definitions (-X importtime).
    from quantlab_assets.definitions import defs
    from quantlab_assets.defs.backfill import backfill_title, selection_subset, submit_backfill

    last_month = config.last_month or dt.date.today().replace(day=1).isoformat()
    subset = selection_subset(defs.resolve_asset_graph(), SELECTIONS[config.selection], config.universe,
                              config.first_month, last_month)
    title = backfill_title(config.selection, config.universe, config.first_month, last_month)
    backfill_id = submit_backfill(context.instance, subset, title)
    context.log.info(f"backfill {backfill_id} ({title}): {subset.num_partitions_and_non_partitioned_assets} asset-partitions")


# The UI's route to the same backfill as `python -m quantlab_assets.pipeline`: the UI's own Materialize button
# offers a mixed selection only as a backfill of every partition (all universes, every month since 1990).
@dg.job(description="Launch one asset backfill of a named selection (default: core_research) for one universe and "
                    "a month range; the run ends once the backfill is recorded, the daemon then runs it.")
def launch_backfill() -> None:
    submit_selection_backfill()


# Every asset partitioned by month x universe; static-partitioned ones (the universe table) run in
# their own job, since a job's assets must share one partitions definition.
monthly_selection = dg.AssetSelection.assets("raw_ohlcv", "cleaned_bars", "rejected_bars", "features", "labels")
monthly_selection |= dg.AssetSelection.assets("market_state")

main_job = dg.define_asset_job(
    "main_job",
    selection=monthly_selection,
    description="Raw bars -> cleaned bars (+ quarantine) -> labels for a range of months of one universe.",
)
universe_job = dg.define_asset_job(
    "universe_job", selection=dg.AssetSelection.assets("universe"), description="Refresh the universe tables."
)
# Fit on the training span of cleaned bars; run after the main job has stored that span.
training_span_job = dg.define_asset_job(
    "training_span_job", selection=dg.AssetSelection.assets("ffd_orders"),
    description="Estimators fitted once per universe on its training span (FFD orders).",
)

# Model 2, per universe after the main job: cv_folds and, once every oof_predictions
# partition of the universe is stored, stacked_alpha and model_scorecard; oof_predictions in its own
# job (partitions model_horizon x universe, one model of one horizon per run).
model_job = dg.define_asset_job(
    "model_job", selection=dg.AssetSelection.assets("cv_folds", "stacked_alpha", "model_scorecard", "meta_labels", "live_alpha", "barrier_probabilities"),
    description="Model 2 per universe: purged CV folds, then (after oof_job) the stacked alpha, the scorecard, the meta-labels, the live alpha and the triple-barrier classifier.",
)
oof_job = dg.define_asset_job(
    "oof_job", selection=dg.AssetSelection.assets("oof_predictions", "base_model_fits"),
    description="Out-of-fold predictions of one base model x horizon of one universe (partition 'xgboost_21d|synthetic').",
)

# Portfolio and backtest, per universe after the model job: one run per strategy partition
# ('qp_optimal|synthetic'), then the metrics and the report over all strategies of the universe.
backtest_job = dg.define_asset_job(
    "backtest_job", selection=dg.AssetSelection.assets("target_weights", "backtest", "backtest_positions", "backtest_trades"),
    description="Target weights and the backtest of one strategy of one universe (partition 'qp_optimal|synthetic').",
)
backtest_report_job = dg.define_asset_job(
    "backtest_report_job", selection=dg.AssetSelection.assets("backtest_metrics", "backtest_report"),
    description="Metrics (PSR, DSR over the strategy set) and the HTML report of one universe, after backtest_job.",
)
# Regime models fitted per universe on its stored market state; run after the main job has stored it.
regime_job = dg.define_asset_job(
    "regime_job", selection=dg.AssetSelection.assets("regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"),
    description="Regime HMM (filtered), clusters and labels per universe, from every stored month of market_state.",
)

# GPU training: its own job, whose multiprocess executor runs at most one `device: gpu` step at
# a time (defs/gpu.py's tag), besides the instance-wide `gpu` pool. On a cluster QUANTLAB_EXECUTOR=k8s
# replaces the executor and the same tag's dagster-k8s/config asks for a GPU node (docs/architecture.md).
gpu_training_job = dg.define_asset_job(
    "gpu_training_job", selection=dg.AssetSelection.assets(
        "forecaster_transformer", "training_diagnostics", "forecaster_tft", "tft_diagnostics", "tft_interpretation",
        "masked_encoder", "embeddings", "encoder_transfer_scorecard"),
    description="The transformer and TFT forecasters out of fold per universe (GPU when present), after model_job's cv_folds; the masked encoder, its embeddings and the transfer scorecard.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)

# Hyper-parameter search, per universe after the main job: Optuna on purged folds of the research
# span; its best parameters reach barrier_probabilities as its optional input, used with its `use_tuned_params` config.
hyperparameter_search_job = dg.define_asset_job(
    "hyperparameter_search_job", selection=dg.AssetSelection.assets("hyperparameter_search"),
    description="Optuna search of the triple-barrier classifier's parameters on purged folds up to validation_end.",
)

# --- invariant deep-hedging study (seed 000) ---------------------------------------------------
# Three jobs, one per partitions definition: the environments (one run per environment), the policies
# (one run per 'method_strength_seedN'; erm partitions before irm_head ones, which read them), and the
# scorecard + figures of one study configuration (partition: the preset) over its stored policies.
# Training steps carry the GPU tag, so the policies' job serialises them on one GPU like gpu_training_job.
hedging_environments_job = dg.define_asset_job(
    "hedging_environments_job", selection=dg.AssetSelection.assets("hedging_environments"),
    description="Simulate one hedging environment (partition 'low', ..., 'crisis', 'stress_jumps', 'stress_squeeze').",
)
hedging_job = dg.define_asset_job(
    "hedging_job", selection=dg.AssetSelection.assets("hedge_policy"),
    description="Train one hedging policy (partition 'erm_0_seed0', 'irm_head_0.1_seed0', 'vrex_5_seed0', ...) on the GPU when present.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)
hedging_study_job = dg.define_asset_job(
    "hedging_study_job", selection=dg.AssetSelection.assets("hedging_scorecard", "hedging_figures"),
    description="Scorecard (files, MLflow runs, success criterion) and figures of one study configuration "
                "(partition 'study' or 'smoke') over the stored hedging policies of that preset.",
)

# RL portfolio allocation, per universe after model_job's stacked_alpha and regime_job's labels: one
# run per policy variant ('ppo_aware_seed0|synthetic'; GPU-tagged steps, one at a time), then the evaluation.
rl_training_job = dg.define_asset_job(
    "rl_training_job", selection=dg.AssetSelection.assets("rl_policy"),
    description="Train one RL policy variant of one universe (partition 'ppo_aware_seed0|synthetic'), GPU when present.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)
rl_evaluation_job = dg.define_asset_job(
    "rl_evaluation_job", selection=dg.AssetSelection.assets("rl_evaluation"),
    description="Backtest every RL policy of a universe beside the baselines on train / validation / test, after rl_training_job.",
)

# --- seed 001's quantile forecaster and seed 002's sequence classifier, each its own GPU job
# (the same executor as gpu_training_job) ---------------------------------------------------------------
quantile_training_job = dg.define_asset_job(
    "quantile_training_job", selection=dg.AssetSelection.assets("forecaster_quantile", "quantile_diagnostics"),
    description="Seed 001's multi-horizon quantile forecaster out of fold per universe (GPU when present), after model_job's cv_folds.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)
tbm_training_job = dg.define_asset_job(
    "tbm_training_job", selection=dg.AssetSelection.assets("tbm_classifier"),
    description="Seed 002's triple-barrier classifier on sequence windows (focal loss) per universe, after model_job's cv_folds.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)

# --- seed 002's SupCon encoder and linear probe (after tbm_training_job: the probe is compared
# with tbm_classifier on its stored rows) -----------------------------------------------------------------
supcon_training_job = dg.define_asset_job(
    "supcon_training_job", selection=dg.AssetSelection.assets("supcon_encoder", "supcon_probe"),
    description="Seed 002's SupCon encoder per walk-forward fold and its linear probe per universe, compared with tbm_classifier on the same folds; after tbm_training_job.",
    executor_def=lab_executor() or dg.multiprocess_executor.configured(GPU_EXECUTOR_CONFIG),
)
