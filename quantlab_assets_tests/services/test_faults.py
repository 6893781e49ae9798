"""Runs that die mid-write and files damaged on disk: what a reader sees, and how the next run repairs it."""

import json
import os
import signal
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from quantlab_assets.defs.assets.data import cleaned_bars, raw_ohlcv, universe
from quantlab_assets_tests.defs.conftest import lab_resources, range_tags
from quantlab_assets_tests.services.conftest import IN_PROCESS, REPO_ROOT, finish, start_cli

pytestmark = pytest.mark.services

KILLED_UNIVERSE = "kill_test"
MONTHS = ("2005-01-01", "2007-12-01")  # 36 partitions of 200 instruments
KILL_AFTER = 12  # partitions rewritten before the kill, so the kill lands in the middle of the run
# The second seed restates the stored history (other rows in some months), which a run may only do when allowed.
IN_PROCESS_RESTATING = ["--config-json", json.dumps(
    {**json.loads(IN_PROCESS[1]), "ops": {"raw_ohlcv": {"config": {"allow_shrinking_history": True}}}}
)]


def _universe_dir(tmp_path: Path, seed: int) -> Path:
    """A synthetic universe whose bars differ with `seed`, so each stored file says which run wrote it."""
    spec = yaml.safe_load((REPO_ROOT / "quantlab_assets" / "universes" / "synthetic.yaml").read_text())
    spec.update(name=KILLED_UNIVERSE, synthetic={**spec["synthetic"], "seed": seed, "n_instruments": 200})
    directory = tmp_path / f"universes-seed-{seed}"
    directory.mkdir(exist_ok=True)
    (directory / f"{KILLED_UNIVERSE}.yaml").write_text(yaml.safe_dump(spec))
    return directory


def _raw_ohlcv_run(tmp_path: Path, seed: int):
    return start_cli(
        ["asset", "materialize", "-m", "quantlab_assets.definitions", "--select", "raw_ohlcv", "--partition-range",
         f"{MONTHS[0]}|{KILLED_UNIVERSE}...{MONTHS[1]}|{KILLED_UNIVERSE}", *IN_PROCESS_RESTATING],
        QUANTLAB_UNIVERSE_DIR=str(_universe_dir(tmp_path, seed)), QUANTLAB_AS_OF="2007-12-31",
    )


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # renamed over at this instant
        return None


def _frames(directory: Path) -> dict[str, pl.DataFrame]:
    return {path.name: pl.read_parquet(path) for path in sorted(directory.glob("*.parquet"))}


def test_a_run_killed_mid_write_leaves_each_partition_whole_and_the_next_run_completes_it(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    stored = Path(pg_env["QUANTLAB_DATA_DIR"]) / "raw_ohlcv" / KILLED_UNIVERSE
    finish(_raw_ohlcv_run(tmp_path, seed=1))
    previous = _frames(stored)
    assert len(previous) == 36
    written_before = {path.name: path.stat().st_mtime_ns for path in stored.glob("*.parquet")}

    # Kill the second version's run (the CLI process, which runs the step) while it writes a partition, after some.
    killed = _raw_ohlcv_run(tmp_path, seed=2)
    deadline = time.monotonic() + 240
    while True:
        names = os.listdir(stored)
        rewritten = sum(1 for name in names if name in written_before and _mtime(stored / name) != written_before[name])
        if rewritten >= KILL_AFTER and any(name.endswith(".tmp") for name in names):
            break
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.001)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    left_over = sorted(name for name in os.listdir(stored) if name.endswith(".tmp"))
    after_kill = _frames(stored)  # every file reads: none is partial

    finish(_raw_ohlcv_run(tmp_path, seed=2))
    current = _frames(stored)
    assert set(after_kill) == set(current) == set(previous)
    replaced = [name for name, frame in after_kill.items() if frame.equals(current[name])]
    kept = [name for name, frame in after_kill.items() if frame.equals(previous[name])]
    assert sorted(replaced + kept) == sorted(after_kill)  # each file is one whole version, never a mix
    assert not any(previous[name].equals(current[name]) for name in current)  # the seeds made them differ
    assert len(replaced) >= KILL_AFTER and kept, "the kill did not land in the middle of the run"
    print(f"after SIGKILL: {len(replaced)} partitions new, {len(kept)} previous, {len(left_over)} stray temp file(s)")

    runs = pg_instance.get_runs()
    assert [run.status for run in runs[:1]] == [dg.DagsterRunStatus.SUCCESS]
    # Nothing marks the killed run failed without a run monitor: it stays STARTED in the run history.
    assert runs[1].status == dg.DagsterRunStatus.STARTED


def test_a_damaged_file_fails_the_reading_step_naming_asset_partition_and_file(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance
) -> None:
    data_dir = Path(pg_env["QUANTLAB_DATA_DIR"])
    resources = lab_resources(data_dir, "2005-03-31")
    assets = [universe, raw_ohlcv, cleaned_bars]
    assert dg.materialize([universe], partition_key="synthetic", instance=pg_instance, resources=resources).success
    assert dg.materialize(assets, selection=["raw_ohlcv"], instance=pg_instance, resources=resources,
                          tags=range_tags("2005-01-01", "2005-03-01", "synthetic")).success
    damaged = data_dir / "raw_ohlcv" / "synthetic" / "2005-02.parquet"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # e.g. a disk that filled up

    result = dg.materialize(assets, selection=["cleaned_bars", "rejected_bars"], instance=pg_instance,
                            resources=resources, partition_key="2005-03-01|synthetic", raise_on_error=False)

    assert not result.success
    error = result.failure_data_for_node("cleaned_bars").error
    message = error.to_string()
    assert "UnreadablePartitionError" in message
    assert f"asset raw_ohlcv, partition 2005-02-01|synthetic: stored file {damaged} cannot be read" in message
    assert not (data_dir / "cleaned_bars" / "synthetic" / "2005-03.parquet").exists()
