"""The labels asset reads LOOKBACK_MONTHS months back and 4 months ahead of cleaned bars, and fills in as the future arrives."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.partitions import bars_key
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels]
MONTHLY = ["raw_ohlcv", "cleaned_bars", "rejected_bars", "labels"]


def test_labels_of_a_month_fill_in_once_its_future_is_stored(instance: dg.DagsterInstance, data_dir: Path) -> None:
    as_of = "2006-09-29"
    assert dg.materialize([universe], partition_key="synthetic", instance=instance,
                          resources=lab_resources(data_dir, as_of)).success
    result = dg.materialize(ASSETS, selection=MONTHLY, instance=instance, resources=lab_resources(data_dir, as_of),
                            tags=range_tags("2005-01-01", "2006-06-01", "synthetic"))
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    june = pl.read_parquet(data_dir / "labels" / "synthetic" / "2006-06.parquet")
    # Nothing after June is stored yet: the last days of June have no 21-day future.
    last_day = june.filter(pl.col(c.DATE) == june[c.DATE].max())
    assert last_day["label_21d"].null_count() == last_day.height

    # Store the next three months, then recompute June's labels alone: they now reach into July-September.
    assert dg.materialize(ASSETS, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=lab_resources(data_dir, as_of),
                          tags=range_tags("2006-07-01", "2006-09-01", "synthetic")).success
    refreshed = dg.materialize(ASSETS, selection=["labels"], instance=instance, resources=lab_resources(data_dir, as_of),
                               partition_key=bars_key("2006-06-01", "synthetic"))
    assert refreshed.success
    june = pl.read_parquet(data_dir / "labels" / "synthetic" / "2006-06.parquet")
    last_day = june.filter(pl.col(c.DATE) == june[c.DATE].max())
    assert last_day["label_21d"].null_count() == 0
    assert last_day["label_end_21d"].max() > dt.date(2006, 7, 1)
    assert last_day["label_end_63d"].null_count() == 0  # 63 trading days after June 30 lie within September
