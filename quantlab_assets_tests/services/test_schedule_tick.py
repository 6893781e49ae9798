"""The daemon's path for the daily schedule, driven at a chosen time: tick -> queued run -> launched run.

The scheduler and run-queue daemons are the ones `dagster-daemon run` runs; here each does one
iteration against a code server spawned from `quantlab_assets.definitions`, with the clock frozen at
the tick, so the test does not wait for 22:30 on a weekday.
"""

import datetime as dt
import logging
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._scheduler.scheduler import launch_scheduled_runs

from quantlab_assets.compute import columns as c
from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.assets.features import features, ffd_orders
from quantlab_assets.defs.schedules import RANGE_END, RANGE_START
from quantlab_assets_tests.defs.conftest import REPO_ROOT, lab_resources, range_tags
from quantlab_assets_tests.services.servers import HOST, running_code_server

pytestmark = pytest.mark.services

TICK = dt.datetime(2006, 1, 31, 22, 30, tzinfo=dt.UTC)  # a Tuesday
HISTORY_AS_OF = "2006-01-30"  # what the previous evening's refresh had stored
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _store_history(instance: dg.DagsterInstance, data_dir: Path) -> None:
    resources = lab_resources(data_dir, HISTORY_AS_OF)
    assets = [universe, raw_ohlcv, cleaned_bars, ffd_orders, features]
    assert dg.materialize([universe], partition_key="synthetic", instance=instance, resources=resources).success
    assert dg.materialize(assets, selection=["raw_ohlcv", "cleaned_bars", "rejected_bars"], instance=instance,
                          resources=resources, tags=range_tags("2005-01-01", "2006-01-01", "synthetic")).success
    assert dg.materialize(assets, selection=["ffd_orders"], partition_key="synthetic", instance=instance,
                          resources=resources).success
    # the features of the months before the refresh's, as the main pipeline leaves them: the market state's
    # lookback reads two of them
    assert dg.materialize(assets, selection=["features"], instance=instance, resources=resources,
                          tags=range_tags("2005-01-01", "2005-08-01", "synthetic")).success


def test_the_daily_tick_queues_and_launches_a_run_that_stores_the_newest_day(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = Path(pg_env["QUANTLAB_DATA_DIR"])
    _store_history(pg_instance, data_dir)
    monkeypatch.setenv("QUANTLAB_AS_OF", TICK.date().isoformat())  # read by the code server and its run workers
    logger = logging.getLogger("services.daemon")
    with (
        running_code_server("quantlab_assets.definitions", REPO_ROOT) as port,
        create_test_daemon_workspace_context(
            GrpcServerTarget(host=HOST, port=port, socket=None, location_name="quantlab_assets"), pg_instance
        ) as workspace,
    ):
        location = workspace.create_request_context().get_code_location("quantlab_assets")
        schedule = location.get_repository("__repository__").get_schedule("daily_refresh_schedule")
        with freeze_time(TICK - dt.timedelta(hours=1)):
            pg_instance.start_schedule(schedule)
        with freeze_time(TICK + dt.timedelta(seconds=30)):
            list(launch_scheduled_runs(workspace, logger, TICK + dt.timedelta(seconds=30), iteration_times={}))
        (ticks,) = [pg_instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)]
        assert [tick.status.value for tick in ticks] == ["SUCCESS"]
        (run,) = pg_instance.get_runs()[:1]
        assert run.job_name == "main_job" and run.status == dg.DagsterRunStatus.QUEUED
        assert (run.tags[RANGE_START], run.tags[RANGE_END]) == ("2005-09-01|synthetic", "2006-01-01|synthetic")
        assert run.tags["dagster/schedule_name"] == "daily_refresh_schedule"

        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))
        deadline = time.monotonic() + 240
        while (status := pg_instance.get_run_by_id(run.run_id).status) not in TERMINAL:
            assert time.monotonic() < deadline, f"run {run.run_id} still {status}"
            time.sleep(1)
    assert status == dg.DagsterRunStatus.SUCCESS
    january = pl.read_parquet(data_dir / "cleaned_bars" / "synthetic" / "2006-01.parquet")
    assert january[c.DATE].max() == TICK.date()
    records = pg_instance.fetch_materializations(dg.AssetKey("features"), limit=100).records
    assert sorted(record.partition_key for record in records if record.run_id == run.run_id) == [
        f"{month}|synthetic" for month in ("2005-09-01", "2005-10-01", "2005-11-01", "2005-12-01", "2006-01-01")
    ]
