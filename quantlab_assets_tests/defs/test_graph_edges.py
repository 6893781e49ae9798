"""Every read is an edge of the graph, and a missing prerequisite names the asset and partition to materialise.

Real materialisations on a temporary instance through the lab's IO manager."""

from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager, UniverseFrames, optional_input
from quantlab_assets.defs.partitions import bars_key, universe_partitions
from quantlab_assets_tests.defs.conftest import backfill_bars, lab_resources, range_tags


def _error_of_failed_step(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    return str(next(event for event in result.all_events if event.is_step_failure).step_failure_data.error)


def test_the_lab_graph_shows_the_inputs_its_assets_read() -> None:
    from quantlab_assets.definitions import defs

    graph = defs.resolve_asset_graph()

    def parents(asset: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(asset)).parent_keys}

    assert {"regime_labels", "tbm_classifier"} <= parents("target_weights")
    assert "regime_labels" in parents("backtest_report")
    # The heavy tracks' trials: optional inputs of the metrics, whose trial registry counts them once stored.
    assert {"forecaster_transformer", "forecaster_tft", "forecaster_quantile", "tbm_classifier", "supcon_probe",
            "rl_evaluation"} <= parents("backtest_metrics")
    assert "masked_encoder" in parents("embeddings")
    assert "supcon_encoder" in parents("supcon_probe")


# Two tiny universe-partitioned assets: `reader` needs `needed` and may read `maybe`.
@dg.asset(partitions_def=universe_partitions)
def needed(context: dg.AssetExecutionContext) -> UniverseFrames:
    return {context.partition_key: pl.DataFrame({"value": [1, 2]})}


@dg.asset(partitions_def=universe_partitions)
def maybe(context: dg.AssetExecutionContext) -> UniverseFrames:
    return {context.partition_key: pl.DataFrame({"value": [10]})}


@dg.asset(partitions_def=universe_partitions, ins={"needed": dg.AssetIn(), "maybe": optional_input()})
def reader(context: dg.AssetExecutionContext, needed: UniverseFrames, maybe: UniverseFrames) -> UniverseFrames:
    extra = maybe[context.partition_key]["value"].sum() if context.partition_key in maybe else 0
    return {context.partition_key: needed[context.partition_key].with_columns(pl.col("value") + extra)}


def _run(selection: list[str], instance: dg.DagsterInstance, data_dir: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize([needed, maybe, reader], selection=selection, partition_key="synthetic", instance=instance,
                          resources={"io_manager": PartitionedParquetIOManager(base_dir=str(data_dir))}, raise_on_error=False)


def test_an_optional_input_is_read_when_stored_and_absent_otherwise(instance: dg.DagsterInstance, data_dir: Path) -> None:
    assert _run(["needed"], instance, data_dir).success
    assert _run(["reader"], instance, data_dir).success
    assert pl.read_parquet(data_dir / "reader" / "synthetic.parquet")["value"].to_list() == [1, 2]
    assert _run(["maybe", "reader"], instance, data_dir).success
    assert pl.read_parquet(data_dir / "reader" / "synthetic.parquet")["value"].to_list() == [11, 12]


def test_a_required_input_that_is_not_stored_names_the_asset_and_partition(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    assert "materialise needed [synthetic] first" in _error_of_failed_step(_run(["reader"], instance, data_dir))


def test_cleaning_before_the_universe_is_materialised_says_materialise_the_universe_first(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = lab_resources(data_dir, "2006-12-29")
    assets = [universe, raw_ohlcv, cleaned_bars]
    # raw_ohlcv does not read the universe asset (it reads the source); cleaning does.
    assert dg.materialize(assets, selection=["raw_ohlcv"], instance=instance, resources=resources,
                          tags=range_tags("2006-01-01", "2006-03-01", "synthetic")).success
    result = dg.materialize(assets, selection=["cleaned_bars", "rejected_bars"], instance=instance, resources=resources,
                            partition_key=bars_key("2006-03-01", "synthetic"), raise_on_error=False)
    assert "materialise universe [synthetic] first" in _error_of_failed_step(result)


def test_features_of_months_whose_bars_are_not_stored_name_the_months_to_materialise(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = lab_resources(data_dir, "2006-12-29")
    assets = [universe, raw_ohlcv, cleaned_bars, ffd_orders, features]
    assert dg.materialize(assets, selection=["universe"], partition_key="synthetic", instance=instance,
                          resources=resources).success
    result = dg.materialize(assets, selection=["features"], instance=instance, resources=resources,
                            partition_key=bars_key("2006-03-01", "synthetic"), raise_on_error=False)
    error = _error_of_failed_step(result)
    assert "is not materialised" in error and "first" in error
    assert "ColumnNotFoundError" not in error



def test_cleaning_months_without_their_stored_history_fails_a_check_that_names_the_months_to_materialise(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    # A backfill of 2006-01..03 on a fresh instance: the raw months before it were never stored, so every
    # row lacks the history the cleaning rules need. That month must not be stored empty behind passing checks.
    result = backfill_bars(instance, data_dir, "2006-12-29", "2006-01-01", "2006-03-01")
    check = next(e for e in result.get_asset_check_evaluations()
                 if e.check_name == "cleaned_bars_not_emptied" and e.partition is None)  # the run's, not a month's
    assert not check.passed
    why = check.metadata["why"].value
    assert "every raw row of 2006-01" in why and "materialise raw_ohlcv [2004-11..2005-12|synthetic] first" in why
    assert not (data_dir / "cleaned_bars" / "synthetic" / "2006-01.parquet").exists()


def test_the_first_month_of_a_source_cleaned_alone_is_stored_empty_behind_a_passing_check(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    # A backfill may clean a source's first month in a run of its own (it requests a partition as soon as its
    # parents are stored). No instrument has a year of history yet, and the source holds nothing before: the
    # month is rightly empty, whichever months share its run.
    result = backfill_bars(instance, data_dir, "2005-12-30", "2005-01-01", "2005-01-01")
    check = next(e for e in result.get_asset_check_evaluations()
                 if e.check_name == "cleaned_bars_not_emptied" and e.partition is None)
    assert result.success and check.passed
    assert check.metadata["source_starts_in_run"].value == ["synthetic"]
    assert pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2005-01.parquet").height == 0
