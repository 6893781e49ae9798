"""The regime assets materialise end to end on a small synthetic history: market state per month, then
the filtered HMM, its parameters, the clusters and the labels per universe, with their checks."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.assets.regimes import market_state, regime_clusters, regime_hmm, regime_labels
from quantlab_assets.defs.partitions import bars_partitions, features_with_market_lookback
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, ffd_orders, features, market_state, regime_hmm, regime_clusters, regime_labels]
TRAIN_END = dt.date(2014, 12, 31)  # the synthetic universe's split
REGIME_ASSETS = ["regime_hmm", "regime_hmm_params", "regime_clusters", "regime_labels"]


def test_regime_assets_fit_before_train_end_and_filter_after(instance: dg.DagsterInstance, data_dir: Path) -> None:
    resources = lab_resources(data_dir, as_of="2015-09-30")
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    bars = dg.materialize(ASSETS, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=resources, tags=range_tags("2012-01-01", "2015-09-01", "synthetic"))
    assert bars.success
    assert dg.materialize(ASSETS, selection=["ffd_orders"], partition_key="synthetic", instance=instance,
                          resources=resources).success
    # the features of the two months the market state's first month looks back on
    assert dg.materialize(ASSETS, selection=["features"], instance=instance, resources=resources,
                          tags=range_tags("2012-11-01", "2012-12-01", "synthetic")).success
    monthly = dg.materialize(ASSETS, selection=["features", "market_state"], instance=instance, resources=resources,
                             tags=range_tags("2013-01-01", "2015-09-01", "synthetic"))
    assert monthly.success
    assert {e.check_name: e.passed for e in monthly.get_asset_check_evaluations() if e.check_name.startswith("market")} == {
        "market_state_schema": True, "market_state_no_lookahead": True, "market_state_months_complete": True,
    }
    state = pl.read_parquet(data_dir / "market_state" / "synthetic" / "2015-06.parquet")
    assert state[c.DATE].is_unique().all() and state["market_vol_21d"].null_count() == 0

    run_config = {"ops": {"regime_hmm": {"config": {"refit_months": 3}}}}
    result = dg.materialize(ASSETS, selection=REGIME_ASSETS, partition_key="synthetic", instance=instance,
                            resources=resources, run_config=run_config)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "regime_hmm_schema": True, "regime_hmm_filter_uses_only_the_past": True, "regime_clusters_schema": True,
        "regime_labels_schema": True, "regime_labels_known_crises": True,
    }
    # Real-world crisis dates say nothing about a synthetic market: the check says so instead of failing.
    crises = next(e for e in result.get_asset_check_evaluations() if e.check_name == "regime_labels_known_crises")
    assert crises.metadata["not_applicable"].value == "synthetic" and crises.metadata["episodes"].value == {}
    probabilities = pl.read_parquet(data_dir / "regime_hmm" / "synthetic.parquet")
    parameters = pl.read_parquet(data_dir / "regime_hmm_params" / "synthetic.parquet")
    labels = pl.read_parquet(data_dir / "regime_labels" / "synthetic.parquet")
    clusters = pl.read_parquet(data_dir / "regime_clusters" / "synthetic.parquet")
    # Fitted up to train_end, applied after it; refits every 3 months on the expanding window.
    assert probabilities[c.DATE].min() > TRAIN_END and (probabilities["fit_end"] < probabilities[c.DATE]).all()
    assert parameters.group_by("refit").agg(pl.col("applies_from").first()).sort("refit")["applies_from"].to_list() == [
        dt.date(2015, 1, 1), dt.date(2015, 4, 1), dt.date(2015, 7, 1),
    ]
    assert parameters.filter(pl.col("refit") == 0)["fit_end"].max() <= TRAIN_END
    assert labels.select(c.DATE).equals(probabilities.select(c.DATE))
    assert clusters[c.DATE].min() > TRAIN_END and clusters.height == probabilities.height


def test_market_state_reads_two_months_of_features_before_its_own() -> None:
    upstream = features_with_market_lookback.get_upstream_mapped_partitions_result_for_partitions(
        bars_partitions.empty_subset().with_partition_keys(["2024-03-01|synthetic"]), bars_partitions, bars_partitions
    )
    assert sorted(upstream.partitions_subset.get_partition_keys()) == [
        "2024-01-01|synthetic", "2024-02-01|synthetic", "2024-03-01|synthetic",
    ]
