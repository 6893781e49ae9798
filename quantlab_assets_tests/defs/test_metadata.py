"""Materialisations carry dagster/row_count per partition and dagster/column_schema from the pandera models."""

from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.features import FeaturesSchema
from quantlab_assets.defs.metadata import COLUMN_SCHEMA, ROW_COUNT, table_schema
from quantlab_assets_tests.defs.conftest import backfill_bars


def test_a_pandera_model_becomes_the_column_table_with_types_nullability_and_descriptions() -> None:
    columns = {column.name: column for column in table_schema(CleanedBarsSchema).columns}
    model = CleanedBarsSchema.to_schema().columns
    assert list(columns) == list(model)
    assert columns["date"].type == "Date" and columns["date"].constraints.nullable is False
    assert columns["open"].constraints.nullable is True and "Adjusted open" in columns["open"].description
    features = {column.name: column for column in table_schema(FeaturesSchema).columns}
    assert any(column.description and column.description.startswith("every column matching") for column in features.values())


def test_each_month_of_a_one_run_backfill_carries_its_own_row_count_and_the_schema(
    instance: dg.DagsterInstance, data_dir: Path
) -> None:
    result = backfill_bars(instance, data_dir, "2006-06-30", "2005-01-01", "2006-03-01")
    assert result.success
    materialisations = [event for event in result.asset_materializations_for_node("cleaned_bars")
                        if event.asset_key == dg.AssetKey("cleaned_bars")]
    assert len(materialisations) == 15
    for event in materialisations:
        month = str(event.partition).split("|")[0][:7]
        stored = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / f"{month}.parquet")
        assert event.metadata[ROW_COUNT].value == stored.height
        assert [column.name for column in event.metadata[COLUMN_SCHEMA].schema.columns] == list(
            CleanedBarsSchema.to_schema().columns)
    assert len({event.metadata[ROW_COUNT].value for event in materialisations}) > 1  # not the run's total on each


def test_every_asset_of_the_lab_names_its_kinds() -> None:
    from quantlab_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    kinds = {key.to_user_string(): graph.get(key).kinds for key in graph.get_all_asset_keys()}
    assert [asset for asset, named in kinds.items() if not named] == []
    assert "clarabel" in kinds["target_weights"] and "xgboost" in kinds["barrier_probabilities"]
    assert "torch" in kinds["tbm_classifier"] and "polars" in kinds["cleaned_bars"]
