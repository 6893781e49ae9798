"""QUANTLAB_EXECUTOR=celery for real: a Redis broker and three Celery workers on loopback.

The workers are separate processes that share what separate machines would share: the Dagster instance
(PostgreSQL) and the data directory (QUANTLAB_DATA_DIR). A run of celery_defs.panels_job submits its steps
to the broker from its own process; the event log says which worker (Celery's name, the process id) ran
each step. Every stored file is compared byte for byte with a single-process run of the same assets.
A fourth worker listening only on the `gpu` queue takes the GPU-tagged step of celery_defs.gpu_queue_job,
and only that one.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from quantlab_assets.defs.executors import (
    CELERY_BACKEND_ENV, CELERY_BROKER_ENV, CELERY_VISIBILITY_TIMEOUT_ENV, DEFAULT_CELERY_BROKER, EXECUTOR_ENV,
    celery_executor_config, lab_executor,
)
from quantlab_assets.defs.gpu import GPU_CELERY_QUEUE
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
from quantlab_assets.defs.resources import DATA_DIR_ENV
from quantlab_assets_tests.services import celery_defs
from quantlab_assets_tests.services.conftest import REPO_ROOT
from quantlab_assets_tests.services.servers import PostgresServer

pytestmark = pytest.mark.services

WORKERS = ("w1", "w2", "w3")  # on dagster-celery's default queue only
GPU_WORKER = "g1"  # on the gpu queue only, as a GPU machine's worker
# A killed worker's step goes to another worker this long after it was first handed out. Every step
# here takes a few seconds: a step still running at this age would be started twice.
VISIBILITY_TIMEOUT_S = 10
STARTUP_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 150.0
KILLED_PANEL = "panel_b"
CELERY_WORKER_METADATA = "Celery worker"  # dagster-celery's engine event when a worker takes a step


@dataclass
class CeleryCluster:
    env: dict[str, str]
    data_dir: Path
    stall_dir: Path
    logs: Path
    instance: dg.DagsterInstance
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_offsets: dict[str, int] = field(default_factory=dict)  # where each worker's current log begins

    def start_worker(self, name: str, queues: tuple[str, ...] = ()) -> None:
        """One worker (its own session, like a machine of its own) running one step at a time in a pool
        process, consuming `queues` (default: dagster-celery's default queue only)."""
        from dagster_celery.defaults import task_default_queue  # here: without dagster-celery the suite skips

        log = self.logs / f"{name}.log"
        self.log_offsets[name] = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as output:
            self.workers[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "quantlab_assets.defs.celery_worker", "worker", "--pool=prefork", "--concurrency=1",
                 "-n", f"{name}@%h", "-Q", ",".join(queues or (task_default_queue,)), "--include", celery_defs.__name__,
                 "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO_ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait_until_ready(self, names: tuple[str, ...]) -> None:
        """Until each worker has logged that it consumes from the broker."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for name in names:
            log = self.logs / f"{name}.log"
            while not re.search(rf"{name}@\S+ ready\.", log.read_bytes()[self.log_offsets[name]:].decode(errors="replace")):
                assert self.workers[name].poll() is None, f"worker {name} exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"worker {name} not ready: {log.read_text()[-2000:]}"
                time.sleep(0.2)

    def stop_worker(self, name: str) -> None:
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def worker_of_pid(self, pid: int) -> str:
        """The worker whose process group (its session) holds the process `pid`."""
        group = os.getpgid(pid)
        return next(name for name, process in self.workers.items() if process.pid == group)

    def start_run(self, job: str = celery_defs.panels_job.name) -> subprocess.Popen[str]:
        """`dagster job execute` of a job of celery_defs: the run's own process submits the steps and waits for them."""
        for stored in self.data_dir.glob("*"):
            stored.unlink()
        return subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", celery_defs.__name__, "-j", job],
            cwd=REPO_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )


@pytest.fixture(scope="module")
def cluster(postgres: PostgresServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryCluster]:
    root = tmp_path_factory.mktemp("celery")
    database = f"dagster_{uuid.uuid4().hex[:12]}"
    postgres.create_database(database)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "resources" / "dagster.postgres.yaml", home / "dagster.yaml")
    for folder in ("data", "stall", "logs"):
        (root / folder).mkdir()
    shared = {
        **postgres.dagster_env(database), "DAGSTER_HOME": str(home), DATA_DIR_ENV: str(root / "data"),
        EXECUTOR_ENV: "celery", CELERY_BROKER_ENV: f"{redis_url}/0", CELERY_BACKEND_ENV: f"{redis_url}/1",
        CELERY_VISIBILITY_TIMEOUT_ENV: str(VISIBILITY_TIMEOUT_S), celery_defs.STALL_DIR_ENV: str(root / "stall"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in shared.items():
            patch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        cluster = CeleryCluster(env={**os.environ, **shared}, data_dir=root / "data", stall_dir=root / "stall",
                                logs=root / "logs", instance=instance)
        try:
            for name in WORKERS:
                cluster.start_worker(name)
            cluster.wait_until_ready(WORKERS)
            yield cluster
        finally:
            for process in cluster.workers.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            instance.dispose()


@pytest.fixture(scope="module")
def single_process_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The stored files of the same assets materialised in this process, Dagster's in-process executor."""
    directory = tmp_path_factory.mktemp("single_process")
    assert dg.materialize(celery_defs.ASSETS, resources={"io_manager": PartitionedParquetIOManager(base_dir=str(directory))}).success
    return _stored_files(directory)


def _stored_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.parquet"))}


def _finish(run: subprocess.Popen[str]) -> None:
    output, _ = run.communicate(timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, output[-3000:]


@pytest.fixture
def gpu_worker(cluster: CeleryCluster) -> Iterator[str]:
    """A worker that consumes the gpu queue only, for one test."""
    cluster.start_worker(GPU_WORKER, queues=(GPU_CELERY_QUEUE,))
    try:
        cluster.wait_until_ready((GPU_WORKER,))
        yield GPU_WORKER
    finally:
        cluster.stop_worker(GPU_WORKER)


def _step_placements(instance: dg.DagsterInstance, assets: list[dg.AssetsDefinition] = celery_defs.ASSETS
                     ) -> dict[str, list[tuple[str, int]]]:
    """Step key -> (Celery worker name, process id) of each time a worker started the step, in order.

    dagster-celery logs the worker's name when it takes a step; the step's own STEP_START carries the
    process that ran it.
    """
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    names: dict[str, list[str]] = {}
    pids: dict[str, list[int]] = {}
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and CELERY_WORKER_METADATA in (event.engine_event_data.metadata or {}):
            names.setdefault(event.step_key, []).append(event.engine_event_data.metadata[CELERY_WORKER_METADATA].value)
        if event.event_type == dg.DagsterEventType.STEP_START:
            pids.setdefault(event.step_key, []).append(event.pid)
    assert names.keys() == pids.keys() == {asset.key.to_user_string() for asset in assets}
    return {step: list(zip(names[step], pids[step], strict=True)) for step in names}


def test_the_celery_executor_is_selected_by_the_environment_with_a_valid_config(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config
    from dagster_celery import celery_executor

    for name in (CELERY_BROKER_ENV, CELERY_BACKEND_ENV, CELERY_VISIBILITY_TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    config = celery_executor_config()
    assert process_config(celery_executor.config_schema.config_type, config).success
    assert config["broker"] == DEFAULT_CELERY_BROKER  # loopback when the environment names no broker
    assert config["config_source"]["task_acks_late"]
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    assert lab_executor().name == "celery"


def test_a_runs_independent_steps_run_on_different_workers_and_store_what_one_process_stores(
    cluster: CeleryCluster, single_process_files: dict[str, bytes]
) -> None:
    cluster.wait_until_ready(WORKERS)  # a worker killed by another test is replaced
    _finish(cluster.start_run())

    placements = _step_placements(cluster.instance)
    assert all(len(starts) == 1 for starts in placements.values()), placements
    panel_starts = [placements[panel][0] for panel in celery_defs.PANEL_SEEDS]
    # The three independent panels ran at once, one on each worker, each in that worker's process.
    assert sorted(name.split("@")[0] for name, _ in panel_starts) == sorted(WORKERS)
    assert all(cluster.worker_of_pid(pid) == name.split("@")[0] for name, pid in panel_starts)
    assert os.getpid() not in {pid for starts in placements.values() for _, pid in starts}
    assert _stored_files(cluster.data_dir) == single_process_files


def test_a_worker_killed_mid_write_has_its_step_rerun_by_another_and_no_half_written_partition_is_seen(
    cluster: CeleryCluster, single_process_files: dict[str, bytes]
) -> None:
    (cluster.stall_dir / f"{KILLED_PANEL}.request").touch()
    marker = cluster.stall_dir / f"{KILLED_PANEL}.stalled"
    run = cluster.start_run()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not marker.exists():
            assert run.poll() is None and time.monotonic() < deadline, "the panel never reached its write"
            time.sleep(0.05)
        killed_pid = json.loads(marker.read_text())[celery_defs.PID]  # the worker's pool process
        killed = cluster.worker_of_pid(killed_pid)
        partition = cluster.data_dir / f"{KILLED_PANEL}.parquet"
        [half_written] = cluster.data_dir.glob(f".{KILLED_PANEL}.parquet.{killed_pid}.*.tmp")
        assert 0 < half_written.stat().st_size < len(single_process_files[partition.name])
        assert not partition.exists()

        os.killpg(cluster.workers[killed].pid, signal.SIGKILL)  # the worker and its pool, as if its machine died
        cluster.workers[killed].wait()
        seen: set[bytes] = set()  # every version of the partition a reader finds while the run goes on
        while run.poll() is None:
            assert time.monotonic() < deadline, "the run did not finish: the killed worker's step was never rerun"
            if partition.exists():
                seen.add(partition.read_bytes())
            time.sleep(0.01)
        _finish(run)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        (cluster.stall_dir / f"{KILLED_PANEL}.request").unlink()

    assert seen <= {single_process_files[partition.name]}
    first, retry = _step_placements(cluster.instance)[KILLED_PANEL]
    assert first[0].split("@")[0] == killed and first[1] == killed_pid
    assert retry[0].split("@")[0] != killed and retry[1] != killed_pid
    # The killed writer's temporary stays (no process is left to remove it); no reader opens it.
    assert half_written.exists()
    assert _stored_files(cluster.data_dir) == single_process_files
    cluster.start_worker(killed)  # a replacement, for the tests that want three workers


def test_a_gpu_tagged_step_runs_on_the_gpu_queue_worker_and_a_cpu_step_on_a_default_queue_worker(
    cluster: CeleryCluster, gpu_worker: str
) -> None:
    cluster.wait_until_ready(WORKERS)
    _finish(cluster.start_run(celery_defs.gpu_queue_job.name))

    placements = _step_placements(cluster.instance, celery_defs.GPU_QUEUE_ASSETS)
    [(gpu_step_worker, gpu_step_pid)] = placements[celery_defs.gpu_fit.key.to_user_string()]
    [(cpu_step_worker, cpu_step_pid)] = placements[celery_defs.cpu_features.key.to_user_string()]
    # Celery's name of the worker that took each task, and the process group the step's process was in.
    assert gpu_step_worker.split("@")[0] == cluster.worker_of_pid(gpu_step_pid) == gpu_worker
    assert cpu_step_worker.split("@")[0] == cluster.worker_of_pid(cpu_step_pid)
    assert cluster.worker_of_pid(cpu_step_pid) in WORKERS
