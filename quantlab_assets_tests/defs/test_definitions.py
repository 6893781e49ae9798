"""The Definitions load, and every asset has the partition scheme docs/architecture.md states."""

import dagster as dg

from quantlab_assets.definitions import defs
from quantlab_assets.defs.assets.data import CHECKS
from quantlab_assets.compute.portfolio.names import STRATEGY_NAMES
from quantlab_assets.defs.partitions import (
    LOOKBACK_MONTHS,
    MONTH,
    UNIVERSE,
    bars_partitions,
    strategy_partitions,
    universe_partitions,
)

REGIME_ASSETS = {"market_state", "regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"}
REGIME_CHECKS = {"market_state_schema", "market_state_no_lookahead", "market_state_months_complete", "regime_hmm_schema",
                 "regime_hmm_filter_uses_only_the_past", "regime_clusters_schema", "regime_labels_schema",
                 "regime_labels_known_crises"}
# Checks that report without stopping the run (a missed crisis is a finding about the model, not bad data).
NON_BLOCKING_CHECKS = {"regime_labels_known_crises"}
DESK_ASSETS = {"target_portfolio", "orders", "decision_ledger", "live_track_record"}


def test_definitions_load_with_the_expected_assets_checks_jobs_and_schedule() -> None:
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "universe", "raw_ohlcv", "cleaned_bars", "rejected_bars", "labels", "ffd_orders", "features",
        "cv_folds", "oof_predictions", "base_model_fits", "stacked_alpha", "model_scorecard", "meta_labels", "live_alpha",
        "barrier_probabilities",
        "target_weights", "backtest", "backtest_positions", "backtest_trades", "backtest_metrics", "backtest_report",
        "forecaster_transformer", "training_diagnostics", "forecaster_tft", "tft_diagnostics", "tft_interpretation",
        "hyperparameter_search",
    } | REGIME_ASSETS | HEDGING_ASSETS | RL_ASSETS | ISSUE_10_ASSETS | EMBEDDING_ASSETS | DESK_ASSETS
    checks = {key.name for key in graph.asset_check_keys}
    assert checks == {f"cleaned_bars_{name}" for name in CHECKS} | {
        "labels_schema", "labels_use_only_their_window", "labels_months_complete", "features_schema", "features_no_lookahead",
        "features_months_complete",
        "cv_folds_hygiene", "oof_predictions_not_degenerate", "stacked_alpha_schema", "meta_labels_not_degenerate", "live_alpha_valid", "barrier_probabilities_not_degenerate",
        "model_scorecard_honest",
        "target_weights_valid", "target_weights_feasible", "backtest_accounting",
        "forecaster_transformer_not_degenerate", "training_diagnostics_no_collapse",
        "forecaster_tft_not_degenerate", "tft_diagnostics_no_collapse", "tft_interpretation_weights_valid",
        "hyperparameter_search_research_span_only",
    } | REGIME_CHECKS | HEDGING_CHECKS | RL_CHECKS | ISSUE_10_CHECKS | EMBEDDING_CHECKS | {
        "target_portfolio_valid", "orders_valid", "decision_ledger_untouched", "live_track_record_valid"}
    assert all(graph.get_check_spec(key).blocking != (key.name in NON_BLOCKING_CHECKS) for key in graph.asset_check_keys)
    assert defs.resolve_job_def("main_job") is not None
    assert defs.resolve_schedule_def("daily_refresh_schedule").job_name == "main_job"


def test_partition_schemes_are_month_by_universe_with_a_lookback() -> None:
    graph = defs.resolve_asset_graph()
    for name in ("raw_ohlcv", "cleaned_bars", "rejected_bars", "labels", "features", "market_state"):
        assert graph.get(dg.AssetKey(name)).partitions_def == bars_partitions
    for name in ("universe", "ffd_orders", "regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"):
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    assert {d.name for d in bars_partitions.partitions_defs} == {MONTH, UNIVERSE}
    assert {"synthetic", "sp500_sample"} <= set(universe_partitions.get_partition_keys())

    cleaned = graph.get(dg.AssetKey("cleaned_bars"))
    upstream = cleaned.partition_mappings[dg.AssetKey("raw_ohlcv")].get_upstream_mapped_partitions_result_for_partitions(
        bars_partitions.empty_subset().with_partition_keys(["2024-06-01|synthetic"]), bars_partitions, bars_partitions
    )
    months = sorted(key.split("|")[0] for key in upstream.partitions_subset.get_partition_keys())
    assert len(months) == LOOKBACK_MONTHS + 1
    assert months[0] == "2023-04-01" and months[-1] == "2024-06-01"


def test_strategy_assets_are_strategy_by_universe_and_the_report_per_universe() -> None:
    graph = defs.resolve_asset_graph()
    for name in ("target_weights", "backtest", "backtest_positions", "backtest_trades"):
        assert graph.get(dg.AssetKey(name)).partitions_def == strategy_partitions
    for name in ("backtest_metrics", "backtest_report"):
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    metrics = graph.get(dg.AssetKey("backtest_metrics"))
    upstream = metrics.partition_mappings[dg.AssetKey("backtest")].get_upstream_mapped_partitions_result_for_partitions(
        universe_partitions.empty_subset().with_partition_keys(["synthetic"]), universe_partitions, strategy_partitions
    )
    assert sorted(upstream.partitions_subset.get_partition_keys()) == sorted(f"{s}|synthetic" for s in STRATEGY_NAMES)


# --- invariant deep-hedging study (seed 000) ---------------------------------------------------
HEDGING_ASSETS = {"hedging_environments", "hedge_policy", "hedging_scorecard", "hedging_figures"}
HEDGING_CHECKS = {"hedge_policy_crisis_unseen", "hedging_scorecard_finite", "hedging_scorecard_crisis_unseen",
                  "hedging_scorecard_extractor_frozen"}


def test_hedging_assets_partitions_jobs_and_gpu_tags() -> None:
    from quantlab_assets.defs.gpu import DEVICE_TAG, GPU_POOL
    from quantlab_assets.defs.partitions import (
        hedge_policy_partitions,
        hedging_environment_partitions,
        hedging_study_partitions,
    )

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("hedging_environments")).partitions_def == hedging_environment_partitions
    assert graph.get(dg.AssetKey("hedge_policy")).partitions_def == hedge_policy_partitions
    for study_asset in ("hedging_scorecard", "hedging_figures"):
        assert graph.get(dg.AssetKey(study_asset)).partitions_def == hedging_study_partitions
    policy = defs.resolve_assets_def("hedge_policy")
    assert policy.op.tags[DEVICE_TAG] == "gpu" and policy.op.pool == GPU_POOL
    for job in ("hedging_environments_job", "hedging_job", "hedging_study_job"):
        assert defs.resolve_job_def(job) is not None
# RL portfolio allocation.
RL_ASSETS = {"rl_policy", "rl_evaluation"}
RL_CHECKS = {"rl_policy_weights_valid", "rl_policy_matches_engine", "rl_policy_no_lookahead",
             "rl_evaluation_finite_with_intervals"}


def test_gpu_steps_and_only_they_go_to_the_gpu_celery_queue() -> None:
    from dagster_celery.defaults import task_default_queue
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    from quantlab_assets.defs.gpu import CELERY_QUEUE_TAG, GPU_CELERY_QUEUE, GPU_POOL

    assert CELERY_QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG and GPU_CELERY_QUEUE != task_default_queue
    # The queue dagster-celery's executor picks for each step: its tag, else the default queue.
    queue_of_op = {asset.op.name: (asset.op.pool, asset.op.tags.get(CELERY_QUEUE_TAG, task_default_queue))
                   for asset in defs.resolve_asset_graph().assets_defs}
    gpu_ops = {op for op, (pool, _) in queue_of_op.items() if pool == GPU_POOL}
    assert {"hedge_policy", "rl_policy", "forecaster_tft"} <= gpu_ops
    assert {op for op, (_, queue) in queue_of_op.items() if queue == GPU_CELERY_QUEUE} == gpu_ops
    assert {queue for op, (_, queue) in queue_of_op.items() if op not in gpu_ops} == {task_default_queue}


def test_rl_policy_is_variant_by_universe_and_the_evaluation_reads_every_variant() -> None:
    from quantlab_assets.compute.rl.names import VARIANT_NAMES
    from quantlab_assets.defs.partitions import rl_partitions

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("rl_policy")).partitions_def == rl_partitions
    assert graph.get(dg.AssetKey("rl_evaluation")).partitions_def == universe_partitions
    assert "ppo_aware_seed0|synthetic" in rl_partitions.get_partition_keys()
    evaluation = graph.get(dg.AssetKey("rl_evaluation"))
    upstream = evaluation.partition_mappings[dg.AssetKey("rl_policy")].get_upstream_mapped_partitions_result_for_partitions(
        universe_partitions.empty_subset().with_partition_keys(["synthetic"]), universe_partitions, rl_partitions
    )
    assert sorted(upstream.partitions_subset.get_partition_keys()) == sorted(f"{v}|synthetic" for v in VARIANT_NAMES)
    assert {defs.resolve_job_def(name).name for name in ("rl_training_job", "rl_evaluation_job")} == {
        "rl_training_job", "rl_evaluation_job"}
# --- seed 001's quantile forecaster, seed 002's sequence classifier ---------------------------
ISSUE_10_ASSETS = {"forecaster_quantile", "quantile_diagnostics", "tbm_classifier"}
ISSUE_10_CHECKS = {"forecaster_quantile_not_degenerate", "quantile_diagnostics_no_collapse", "tbm_classifier_not_degenerate"}


def test_issue_10_models_are_per_universe_in_their_gpu_jobs() -> None:
    graph = defs.resolve_asset_graph()
    for name in ISSUE_10_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    assert defs.resolve_job_def("quantile_training_job") is not None and defs.resolve_job_def("tbm_training_job") is not None


# --- Masked encoder and embeddings (seed 003 phase 3) ---------------------------------------
EMBEDDING_ASSETS = {"masked_encoder", "embeddings", "encoder_transfer_scorecard"}
EMBEDDING_CHECKS = {"masked_encoder_training_span", "embeddings_finite", "embeddings_not_collapsed",
                    "embeddings_no_lookahead", "encoder_transfer_scorecard_honest"}


def test_the_encoder_and_embeddings_are_per_universe_and_read_every_month_of_the_features() -> None:
    graph = defs.resolve_asset_graph()
    for name in EMBEDDING_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    node = graph.get(dg.AssetKey("embeddings"))
    assert dg.AssetKey("masked_encoder") in node.parent_keys
    upstream = node.partition_mappings[dg.AssetKey("features")].get_upstream_mapped_partitions_result_for_partitions(
        universe_partitions.empty_subset().with_partition_keys(["synthetic"]), universe_partitions, bars_partitions
    )
    keys = upstream.partitions_subset.get_partition_keys()
    assert all(key.endswith("|synthetic") for key in keys) and len(keys) == len(bars_partitions.get_partition_keys()) // len(
        universe_partitions.get_partition_keys())


# --- seed 002's SupCon encoder and linear probe ------------------------------------------------
# Added to the sets above in place (appended, so the expected-assets test above needs no edit).
SUPCON_ASSETS = {"supcon_encoder", "supcon_probe"}
SUPCON_CHECKS = {"supcon_encoder_curves_valid", "supcon_probe_not_degenerate"}
ISSUE_10_ASSETS |= SUPCON_ASSETS
ISSUE_10_CHECKS |= SUPCON_CHECKS


def test_supcon_assets_are_per_universe_gpu_steps_that_read_the_stored_tbm_classifier() -> None:
    graph = defs.resolve_asset_graph()
    for name in SUPCON_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    assert {dg.AssetKey("supcon_encoder"), dg.AssetKey("tbm_classifier")} <= graph.get(dg.AssetKey("supcon_probe")).parent_keys
    job = defs.resolve_job_def("supcon_training_job")
    assert {n.name for n in job.graph.node_defs} == SUPCON_ASSETS
    for name in SUPCON_ASSETS:
        op = defs.resolve_assets_def(name).op
        assert op.tags["device"] == "gpu" and op.pool == "gpu"
