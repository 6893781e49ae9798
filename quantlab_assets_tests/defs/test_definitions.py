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
REGIME_CHECKS = {"market_state_schema", "market_state_no_lookahead", "regime_hmm_schema",
                 "regime_hmm_filter_uses_only_the_past", "regime_clusters_schema", "regime_labels_schema",
                 "regime_labels_known_crises"}
# Checks that report without stopping the run (a missed crisis is a finding about the model, not bad data).
NON_BLOCKING_CHECKS = {"regime_labels_known_crises"}


def test_definitions_load_with_the_expected_assets_checks_jobs_and_schedule() -> None:
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "universe", "raw_ohlcv", "cleaned_bars", "rejected_bars", "labels", "ffd_orders", "features",
        "cv_folds", "oof_predictions", "stacked_alpha", "model_scorecard", "meta_labels", "live_alpha", "barrier_probabilities",
        "target_weights", "backtest", "backtest_positions", "backtest_trades", "backtest_metrics", "backtest_report",
        "forecaster_transformer", "training_diagnostics", "forecaster_tft", "tft_diagnostics", "tft_interpretation",
    } | REGIME_ASSETS | ISSUE_10_ASSETS
    checks = {key.name for key in graph.asset_check_keys}
    assert checks == {f"cleaned_bars_{name}" for name in CHECKS} | {
        "labels_schema", "labels_use_only_their_window", "features_schema", "features_no_lookahead",
        "cv_folds_hygiene", "oof_predictions_not_degenerate", "stacked_alpha_schema", "meta_labels_not_degenerate", "live_alpha_valid", "barrier_probabilities_not_degenerate",
        "model_scorecard_honest",
        "target_weights_valid", "target_weights_feasible", "backtest_accounting",
        "forecaster_transformer_not_degenerate", "training_diagnostics_no_collapse",
        "forecaster_tft_not_degenerate", "tft_diagnostics_no_collapse", "tft_interpretation_weights_valid",
    } | REGIME_CHECKS | ISSUE_10_CHECKS
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
    assert months[0] == "2023-05-01" and months[-1] == "2024-06-01"


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


# --- issue 10: seed 001's quantile forecaster, seed 002's sequence classifier ---------------------------
ISSUE_10_ASSETS = {"forecaster_quantile", "quantile_diagnostics", "tbm_classifier"}
ISSUE_10_CHECKS = {"forecaster_quantile_not_degenerate", "quantile_diagnostics_no_collapse", "tbm_classifier_not_degenerate"}


def test_issue_10_models_are_per_universe_in_their_gpu_jobs() -> None:
    graph = defs.resolve_asset_graph()
    for name in ISSUE_10_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == universe_partitions
    assert defs.resolve_job_def("quantile_training_job") is not None and defs.resolve_job_def("tbm_training_job") is not None
