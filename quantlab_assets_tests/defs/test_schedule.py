"""The daily refresh: the schedule asks for the newest months, and its run brings the newest day in."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.labels import labels
from quantlab_assets.defs.schedules import RANGE_END, RANGE_START, daily_refresh_schedule
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars, labels]
BARS = ["raw_ohlcv", "cleaned_bars", "rejected_bars", "labels"]


def _requests(when: dt.datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return list(daily_refresh_schedule(context))


def test_the_schedule_requests_the_month_in_progress_and_the_four_before_it_once_per_day() -> None:
    first, second = _requests(dt.datetime(2024, 3, 14, 22, 30, tzinfo=dt.UTC)), _requests(
        dt.datetime(2024, 3, 15, 22, 30, tzinfo=dt.UTC)
    )
    for requests in (first, second):
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
            ("2023-11-01|synthetic", "2024-03-01|synthetic")
        ]
    assert first[0].run_key != second[0].run_key  # a new day is a new run, not deduplicated away
    assert daily_refresh_schedule.cron_schedule == "30 22 * * 1-5"


def test_the_scheduled_run_refreshes_only_the_newest_months(instance: dg.DagsterInstance, data_dir: Path) -> None:
    # History as the initial backfill left it on 2024-03-14, then the next evening's scheduled run.
    assert dg.materialize([universe], partition_key="synthetic", instance=instance,
                          resources=lab_resources(data_dir, "2024-03-14")).success
    assert dg.materialize(ASSETS, selection=BARS, instance=instance, resources=lab_resources(data_dir, "2024-03-14"),
                          tags=range_tags("2023-01-01", "2024-03-01", "synthetic")).success
    october = (data_dir / "cleaned_bars" / "synthetic" / "2023-10.parquet").read_bytes()
    march_before = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")
    february_labels_before = pl.read_parquet(data_dir / "labels" / "synthetic" / "2024-02.parquet")

    (request,) = _requests(dt.datetime(2024, 3, 15, 22, 30, tzinfo=dt.UTC))
    refreshed = dg.materialize(ASSETS, selection=BARS, instance=instance, tags=request.tags,
                               resources=lab_resources(data_dir, "2024-03-15"))

    assert refreshed.success
    march = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")
    assert march_before[c.DATE].max() == dt.date(2024, 3, 14)
    assert march[c.DATE].max() == dt.date(2024, 3, 15)
    # The days already stored are unchanged (the synthetic market is prefix-stable) ...
    assert march.filter(pl.col(c.DATE) <= dt.date(2024, 3, 14)).equals(march_before)
    # ... February's labels gained one more day of future ...
    february_labels = pl.read_parquet(data_dir / "labels" / "synthetic" / "2024-02.parquet")
    assert february_labels["label_21d"].null_count() < february_labels_before["label_21d"].null_count()
    # ... and months older than the refresh window were not rewritten.
    assert (data_dir / "cleaned_bars" / "synthetic" / "2023-10.parquet").read_bytes() == october
