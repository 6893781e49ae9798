"""Dagster's run history, event log and asset-check results live in PostgreSQL (dagster-postgres)."""

from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from quantlab_assets.defs.assets.data import CHECKS, cleaned_bars, raw_ohlcv, universe
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags
from quantlab_assets_tests.services.servers import PostgresServer

pytestmark = pytest.mark.services

BAR_ASSETS = ["raw_ohlcv", "cleaned_bars", "rejected_bars"]
AS_OF = "2006-01-31"


def test_runs_materialisations_and_check_results_are_read_back_from_postgres(
    postgres: PostgresServer, pg_env: dict[str, str], pg_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    data_dir = Path(pg_env["QUANTLAB_DATA_DIR"])
    resources = lab_resources(data_dir, AS_OF)
    tables = dg.materialize([universe], partition_key="synthetic", instance=pg_instance, resources=resources)
    assert tables.success
    bars = dg.materialize([universe, raw_ohlcv, cleaned_bars], selection=BAR_ASSETS, instance=pg_instance,
                         resources=resources, tags=range_tags("2005-01-01", "2006-01-01", "synthetic"))
    assert bars.success

    # A second instance, built from the same dagster.yaml and environment, sees only what PostgreSQL holds.
    reader = dg.DagsterInstance.from_config(pg_env["DAGSTER_HOME"])
    try:
        records = reader.get_run_records()
        assert [record.dagster_run.run_id for record in records] == [bars.run_id, tables.run_id]  # newest first
        assert [record.dagster_run.status for record in records] == [dg.DagsterRunStatus.SUCCESS] * 2
        months = reader.get_materialized_partitions(dg.AssetKey("cleaned_bars"))
        assert len(months) == 13 and "2006-01-01|synthetic" in months
        (latest,) = reader.fetch_materializations(dg.AssetKey("cleaned_bars"), limit=1).records
        assert latest.run_id == bars.run_id
        check_keys = [dg.AssetCheckKey(dg.AssetKey("cleaned_bars"), f"cleaned_bars_{name}") for name in CHECKS]
        executions = reader.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
        assert set(executions) == set(check_keys)
        assert {execution.run_id for execution in executions.values()} == {bars.run_id}
        assert {execution.status.value for execution in executions.values()} == {"SUCCEEDED"}
    finally:
        reader.dispose()

    # The same facts straight from the tables, so no SQLite file elsewhere could have answered.
    database = pg_env["DAGSTER_PG_DB"]
    assert sorted(run_id for (run_id,) in postgres.query(database, "select run_id from runs")) == sorted(
        record.dagster_run.run_id for record in records
    )
    stored_checks = postgres.query(
        database, "select check_name, execution_status from asset_check_executions where run_id = %s", (bars.run_id,)
    )
    # one execution per check and month of the run (the UI's per-month status), and the run's own
    assert sorted(set(stored_checks)) == sorted((f"cleaned_bars_{name}", "SUCCEEDED") for name in CHECKS)
    assert len(stored_checks) == len(CHECKS) * (len(months) + 1)
    assert not list(Path(pg_env["DAGSTER_HOME"]).rglob("*.db"))
