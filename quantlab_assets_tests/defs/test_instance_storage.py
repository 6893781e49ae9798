"""The repository's instance storage: Dagster's SQLite files, its event log written through pooled connections."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import event
from sqlalchemy.pool import Pool

from quantlab_assets.defs import instance_storage
from quantlab_assets.defs.checks import per_partition_check
from quantlab_assets.defs.instance_storage import MAX_OPEN_SHARDS, PooledSqliteEventLogStorage

REPO_ROOT = Path(__file__).resolve().parents[2]
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2020-01-01", end_date="2021-01-01")


@dg.asset(partitions_def=MONTHS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("has_rows", asset="monthly")])
def monthly(context):  # noqa: ANN001 (Dagster reads the annotation at definition time)
    yield dg.MaterializeResult()
    yield per_partition_check(context, "monthly", "has_rows", context.partition_keys, {})


@pytest.fixture
def repository_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        yield instance


@contextmanager
def _connections_opened() -> Iterator[list[object]]:
    """The DBAPI connections every SQLAlchemy pool opens inside the block."""
    opened: list[object] = []

    def count(dbapi_connection: object, record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Pool, "connect", count)


def test_run_processes_rebuild_the_pooled_event_log_from_the_instance_reference(repository_instance: dg.DagsterInstance) -> None:
    assert isinstance(repository_instance.event_log_storage, PooledSqliteEventLogStorage)
    rebuilt = dg.DagsterInstance.from_ref(repository_instance.get_ref())
    assert isinstance(rebuilt.event_log_storage, PooledSqliteEventLogStorage)


def test_dagster_dev_without_a_dagster_home_keeps_the_pooled_storage_in_its_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `dagster dev` with no $DAGSTER_HOME reads ./dagster.yaml and stores under a temporary folder.
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path), config_dir=str(REPO_ROOT))) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        assert Path(storage._base_dir) == tmp_path / "history" / "runs"


def _run_over_twelve_months(instance: dg.DagsterInstance) -> tuple[str, int]:
    """The run's id, and the database connections opened while it stored its events."""
    with _connections_opened() as opened:
        result = dg.materialize([monthly], instance=instance, tags={"dagster/asset_partition_range_start": "2020-01-01",
                                                                    "dagster/asset_partition_range_end": "2020-12-01"})
    assert result.success
    return result.run_id, len(opened)


def test_a_run_over_twelve_months_opens_a_fraction_of_the_connections_and_stays_readable_by_dagsters_own_storage(
    repository_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    (tmp_path / "stock").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "stock")) as stock:
        _, stock_connections = _run_over_twelve_months(stock)
    run_id, pooled_connections = _run_over_twelve_months(repository_instance)
    # Dagster's own event log opens a connection per event and file: 12 materialisations and 12 check
    # results, each written to the run's file and the index, and the run's own events.
    assert pooled_connections * 4 < stock_connections

    plain = SqliteEventLogStorage(str(tmp_path / "history" / "runs"))
    assert plain.get_materialized_partitions(dg.AssetKey("monthly")) == set(MONTHS.get_partition_keys())
    assert len(plain.get_logs_for_run(run_id)) == len(repository_instance.all_logs(run_id))


def test_engines_are_bounded_and_never_shared_with_a_forked_process(
    repository_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = repository_instance.event_log_storage
    for shard in [f"run{i}" for i in range(MAX_OPEN_SHARDS + 3)]:
        with storage.run_connection(shard):
            pass
    assert len(storage._engines) == MAX_OPEN_SHARDS
    parents = dict(storage._engines)
    monkeypatch.setattr(instance_storage.os, "getpid", lambda: -1)
    with storage.run_connection("run3"):
        pass
    assert list(storage._engines) == ["run3"] and storage._engines["run3"] is not parents.get("run3")
