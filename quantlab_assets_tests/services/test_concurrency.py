"""Several people at once: overlapping backfills, and GPU steps that must take turns across runs."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets.defs.gpu import GPU_POOL
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags
from quantlab_assets_tests.services.conftest import IN_PROCESS, finish, start_cli

pytestmark = pytest.mark.services

AS_OF = "2006-12-29"
BAR_ASSETS = ["raw_ohlcv", "cleaned_bars", "rejected_bars"]
GPU_SLOTS = 1


def _bars_run(first: str, last: str):
    return start_cli(["asset", "materialize", "-m", "quantlab_assets.definitions", "--select", ",".join(BAR_ASSETS),
                      "--partition-range", f"{first}|synthetic...{last}|synthetic", *IN_PROCESS], QUANTLAB_AS_OF=AS_OF)


def test_two_overlapping_backfills_at_once_leave_every_partition_whole_and_as_one_run_would(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    data_dir = Path(pg_env["QUANTLAB_DATA_DIR"])
    resources = lab_resources(data_dir, AS_OF)
    assets = [universe, raw_ohlcv, cleaned_bars]
    assert dg.materialize([universe], partition_key="synthetic", instance=pg_instance, resources=resources).success
    # The stored history covers both runs' lookback (from 2005-03). Without 2006-01..03, the later run
    # would depend on the earlier one's progress: it fails on the hole if it reads before they are written
    # (test_data_assets: a hole in the lookback fails the cleaning).
    assert dg.materialize(assets, selection=["raw_ohlcv"], instance=pg_instance, resources=resources,
                          tags=range_tags("2005-01-01", "2006-03-01", "synthetic")).success
    # The reference: one run over the union, into its own directory (with the same stored history).
    reference_dir = tmp_path / "reference"
    for source in (data_dir / "raw_ohlcv").rglob("*.parquet"):
        target = reference_dir / source.relative_to(data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (reference_dir / "universe").mkdir()
    (reference_dir / "universe" / "synthetic.parquet").write_bytes((data_dir / "universe" / "synthetic.parquet").read_bytes())
    (tmp_path / "reference_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "reference_home")) as reference_instance:
        assert dg.materialize(assets, selection=BAR_ASSETS, instance=reference_instance,
                              resources=lab_resources(reference_dir, AS_OF),
                              tags=range_tags("2006-01-01", "2006-12-01", "synthetic")).success

    runs = [_bars_run("2006-01-01", "2006-09-01"), _bars_run("2006-04-01", "2006-12-01")]  # both start now
    for run in runs:
        finish(run)

    records = pg_instance.get_run_records()[:2]
    assert [record.dagster_run.status for record in records] == [dg.DagsterRunStatus.SUCCESS] * 2
    later, earlier = sorted(records, key=lambda record: record.start_time, reverse=True)
    assert later.start_time < earlier.end_time, "the two runs did not overlap in time"
    for asset in BAR_ASSETS:
        files = sorted((reference_dir / asset / "synthetic").glob("2006-*.parquet"))
        assert len(files) == 12
        for expected in files:
            stored = pl.read_parquet(data_dir / asset / "synthetic" / expected.name)
            assert stored.equals(pl.read_parquet(expected)), f"{asset} {expected.name}"
        assert not list((data_dir / asset / "synthetic").glob(".*.tmp"))
    overlap = {record.partition_key for record in pg_instance.fetch_materializations(
        dg.AssetKey("cleaned_bars"), limit=100).records if record.run_id == later.dagster_run.run_id}
    assert len(overlap) == 9  # each run recorded its own months, the shared ones twice in all


def _intervals(log_dir: Path) -> dict[str, tuple[float, float]]:
    return {path.stem: tuple(json.loads(path.read_text()).values()) for path in log_dir.glob("*.json")}


def test_the_gpu_pool_runs_gpu_tagged_steps_of_concurrent_runs_one_at_a_time(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    log_dir = tmp_path / "steps"
    log_dir.mkdir()
    # As a deployment does once (`dagster instance concurrency set gpu 1`): left to `default_limit`, the
    # pool's row is created by the first run that needs it, and two runs starting together can both try
    # (seen here: a UniqueViolation on concurrency_limits that failed one of the runs).
    pg_instance.event_log_storage.set_concurrency_slots(GPU_POOL, GPU_SLOTS)
    code = str(Path(__file__).with_name("gpu_pool_defs.py"))
    runs = [start_cli(["asset", "materialize", "-f", code, "--select", f"gpu_step_{x}"],
                      QUANTLAB_STEP_LOG_DIR=str(log_dir)) for x in ("a", "b")]
    for run in runs:
        finish(run)

    spans = _intervals(log_dir)
    assert set(spans) == {"gpu_step_a", "gpu_step_b"}
    (a_start, a_end), (b_start, b_end) = spans["gpu_step_a"], spans["gpu_step_b"]
    assert a_end <= b_start or b_end <= a_start, f"GPU steps overlapped: {spans}"
    # The runs themselves were concurrent: the pool, not the run queue, kept the GPU steps apart.
    records = pg_instance.get_run_records()
    assert len(records) == 2
    assert max(r.start_time for r in records) < min(r.end_time for r in records)
