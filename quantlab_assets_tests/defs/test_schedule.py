"""The daily refresh: the schedule asks for the month in progress, and its run brings the newest day in."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.schedules import daily_refresh_schedule
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags

ASSETS = [universe, raw_ohlcv, cleaned_bars]
BARS = ["raw_ohlcv", "cleaned_bars", "rejected_bars"]


def _requests(when: dt.datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return list(daily_refresh_schedule(context))


def test_the_schedule_requests_the_month_in_progress_once_per_day() -> None:
    first, second = _requests(dt.datetime(2024, 3, 14, 22, 30, tzinfo=dt.UTC)), _requests(
        dt.datetime(2024, 3, 15, 22, 30, tzinfo=dt.UTC)
    )
    assert [r.partition_key for r in first] == ["2024-03-01|synthetic"]
    assert [r.partition_key for r in second] == ["2024-03-01|synthetic"]
    assert first[0].run_key != second[0].run_key  # a new day is a new run, not deduplicated away
    assert daily_refresh_schedule.cron_schedule == "30 22 * * 1-5"


def test_the_scheduled_run_refreshes_only_the_newest_month(instance: dg.DagsterInstance, data_dir: Path) -> None:
    # History as the initial backfill left it on 2024-03-14, then the next evening's scheduled run.
    assert dg.materialize([universe], partition_key="synthetic", instance=instance,
                          resources=lab_resources(data_dir, "2024-03-14")).success
    assert dg.materialize(ASSETS, selection=BARS, instance=instance, resources=lab_resources(data_dir, "2024-03-14"),
                          tags=range_tags("2023-01-01", "2024-03-01", "synthetic")).success
    february = (data_dir / "cleaned_bars" / "synthetic" / "2024-02.parquet").read_bytes()
    march_before = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")

    (request,) = _requests(dt.datetime(2024, 3, 15, 22, 30, tzinfo=dt.UTC))
    refreshed = dg.materialize(ASSETS, selection=BARS, instance=instance, partition_key=request.partition_key,
                               tags=request.tags, resources=lab_resources(data_dir, "2024-03-15"))

    assert refreshed.success
    march = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2024-03.parquet")
    assert march_before[c.DATE].max() == dt.date(2024, 3, 14)
    assert march[c.DATE].max() == dt.date(2024, 3, 15)
    # The days already stored are unchanged (the synthetic market is prefix-stable) ...
    assert march.filter(pl.col(c.DATE) <= dt.date(2024, 3, 14)).equals(march_before)
    # ... and older months were not rewritten.
    assert (data_dir / "cleaned_bars" / "synthetic" / "2024-02.parquet").read_bytes() == february
