"""Fixtures of the services suite: a real PostgreSQL cluster and Dagster instances stored in it, and a
Redis server as the Celery executor's broker.

Where PostgreSQL (or dagster-postgres, Redis, dagster-celery) is missing the suite is skipped with the reason; with
QUANTLAB_REQUIRE_SERVICES=1 (set by .ci/run) the same condition fails instead, so CI cannot skip it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest

from quantlab_assets_tests.services.servers import (
    PostgresServer, ServiceUnavailable, running_mlflow, running_postgres, running_redis,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES_ENV = "QUANTLAB_REQUIRE_SERVICES"
T = TypeVar("T")


def services_unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1: the services suite must run here)", pytrace=False)
    pytest.skip(f"services suite: {reason}")


def _serving(client_package: str, extra: str, server: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    """What `server()` yields while it runs; unavailable (skip, or fail where required) without the
    Dagster integration `client_package` (the lab's extra `extra`) or when the server cannot start."""
    try:
        importlib.import_module(client_package)
    except ImportError:
        services_unavailable(f"{client_package.replace('_', '-')} is not installed (pip install -e '.[{extra}]')")
    try:
        with server() as handle:
            yield handle
    except ServiceUnavailable as error:
        services_unavailable(str(error))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    yield from _serving("dagster_postgres", "postgres", running_postgres)


@pytest.fixture
def pg_env(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh database and a DAGSTER_HOME holding resources/dagster.postgres.yaml, exported like compose does.

    The lab's data directory is tmp_path/data (QUANTLAB_DATA_DIR), so subprocesses (the CLI, the code
    server, run workers) store where the test reads.
    """
    database = f"dagster_{uuid.uuid4().hex[:12]}"
    postgres.create_database(database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "resources" / "dagster.postgres.yaml", home / "dagster.yaml")
    env = {**postgres.dagster_env(database), "DAGSTER_HOME": str(home), "QUANTLAB_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def pg_instance(pg_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    instance = dg.DagsterInstance.from_config(pg_env["DAGSTER_HOME"])
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture(scope="session")
def mlflow_server(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` with its tracking store in PostgreSQL and a local artifact root (docker-compose.yml's mlflow)."""
    postgres.create_database("mlflow")
    try:
        with running_mlflow(postgres.url("mlflow", "postgresql+psycopg2"), tmp_path_factory.mktemp("mlflow") / "artifacts") as uri:
            yield uri
    except ServiceUnavailable as error:
        services_unavailable(str(error))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server on loopback (the Celery broker and result backend), as `redis://:password@host:port`."""
    yield from _serving("dagster_celery", "celery", running_redis)


DAGSTER_CLI = Path(sys.executable).with_name("dagster")


def start_cli(args: list[str], cwd: Path = REPO_ROOT, **env: str) -> subprocess.Popen[str]:
    """`dagster ARGS` in its own process group (so a test can SIGKILL it with its step processes).

    It inherits the test's environment: the PostgreSQL instance of `pg_env` and the data directory.
    """
    return subprocess.Popen(
        [str(DAGSTER_CLI), *args], cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout_s: float = 300) -> str:
    """Wait for a CLI process; its output, with the exit code checked."""
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output[-3000:]
    return output


# Steps in the CLI's own process: a step process per asset would re-import the lab (seconds each).
IN_PROCESS = ["--config-json", '{"execution": {"config": {"in_process": {}}}}']
