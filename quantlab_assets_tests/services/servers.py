"""Throwaway PostgreSQL, MLflow and Redis servers on loopback, as docker-compose.yml configures the first two.

No Docker engine runs on the development and CI machines, so the services suite starts the same
services from Debian's `postgresql` and `redis-server` packages and PyPI's `mlflow`, each in a temporary
directory, on 127.0.0.1 and a free port, with a random password that reaches clients only through the
environment. Redis is the broker of the Celery executor (defs/executors.py) and its workers run here too.
`python -m quantlab_assets_tests.services.servers` (scripts/services.sh) starts both for a shell.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quantlab_assets.defs.resources import MLFLOW_TRACKING_URI_ENV

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; Debian's package creates this system user for it.
POSTGRES_OS_USER = "postgres"


class ServiceUnavailable(RuntimeError):
    """A service cannot be started on this machine (the message says what is missing)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server installed by Debian's packages (initdb is not on PATH there)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    on_path = shutil.which("initdb")
    if candidates:
        return candidates[-1].parent
    if on_path:
        return Path(on_path).parent
    raise ServiceUnavailable("no PostgreSQL server found (apt-get install postgresql; .ci/run does)")


@dataclass(frozen=True)
class PostgresServer:
    port: int
    password: str
    directory: Path

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{database}"

    def dagster_env(self, database: str) -> dict[str, str]:
        """The variables resources/dagster.postgres.yaml reads (docker-compose.yml sets the same)."""
        return {
            "DAGSTER_PG_USERNAME": SUPERUSER,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": HOST,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
        }

    def create_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def query(self, database: str, sql: str, parameters: tuple = ()) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(self.url(database))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall()
        finally:
            connection.close()


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise ServiceUnavailable("running as root without runuser: cannot start PostgreSQL as its own user")
    return ["runuser", "-u", POSTGRES_OS_USER, "--", *command]


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster in a temporary directory, password-protected, listening on 127.0.0.1 only."""
    bin_dir = postgres_bin_dir()
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="quantlab-pg-"))
    password = secrets.token_urlsafe(18)
    (directory / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(directory, POSTGRES_OS_USER)
        shutil.chown(directory / "pwfile", POSTGRES_OS_USER)
    port = free_port()
    data = directory / "data"

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_postgres_user(command), capture_output=True, text=True, timeout=120, check=False)

    try:
        init = run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "scram-sha-256",
                    f"--pwfile={directory / 'pwfile'}", "--no-sync"])
        if init.returncode:
            raise ServiceUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        options = f"-p {port} -k {directory} -c listen_addresses={HOST} -c fsync=off"
        start = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"])
        if start.returncode:
            log = (directory / "log").read_text() if (directory / "log").exists() else ""
            raise ServiceUnavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log[-500:]}")
        try:
            yield PostgresServer(port=port, password=password, directory=directory)
        finally:
            run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_mlflow(backend_store_uri: str, artifacts_dir: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 and a free port; yields its tracking URI once /health answers."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = artifacts_dir.parent / "mlflow-server.log"
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        # Its own session: the server forks job consumers that must stop with it.
        server = subprocess.Popen(
            [str(mlflow), "server", "--host", HOST, "--port", str(port), "--workers", "1",
             "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(artifacts_dir)],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    uri = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise ServiceUnavailable(f"mlflow server exited {server.returncode}: {log.read_text()[-800:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"mlflow server did not answer within {timeout_s} s: {log.read_text()[-800:]}")
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextlib.contextmanager
def running_code_server(module: str, working_directory: Path, timeout_s: float = 120.0) -> Iterator[int]:
    """`dagster api grpc` serving `module` on 127.0.0.1 (what the webserver and daemon load); yields its port.

    Started and stopped here, in its own session with its run workers, rather than by Dagster's
    workspace registry, whose servers outlive a test that ends early.
    """
    from dagster._grpc.client import DagsterGrpcClient

    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    server = subprocess.Popen(
        [str(dagster), "api", "grpc", "-m", module, "--host", HOST, "--port", str(port),
         "--working-directory", str(working_directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        client = DagsterGrpcClient(host=HOST, port=port)
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise ServiceUnavailable(f"dagster code server for {module} exited {server.returncode}")
            try:
                client.ping("ready")
                break
            except Exception:  # noqa: BLE001 - any failure to answer means: not up yet
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"dagster code server for {module} did not answer within {timeout_s} s")
                time.sleep(0.5)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextlib.contextmanager
def running_redis(timeout_s: float = 30.0) -> Iterator[str]:
    """`redis-server` on 127.0.0.1 and a free port, password-protected, nothing saved to disk; yields its URL
    without a database number (the broker and the result backend each append their own)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("no Redis server found (apt-get install redis-server; .ci/run does)")
    port = free_port()
    password = secrets.token_urlsafe(18)
    directory = Path(tempfile.mkdtemp(prefix="quantlab-redis-"))
    # The password goes in through stdin (a config file read from "-"), not the command line `ps` shows.
    settings = f"port {port}\nbind {HOST}\nrequirepass {password}\nsave \"\"\nappendonly no\ndir {directory}\n"
    with open(directory / "log", "wb") as output:
        server = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    assert server.stdin is not None
    server.stdin.write(settings.encode())
    server.stdin.close()
    try:
        deadline = time.monotonic() + timeout_s
        while not _redis_answers(port, password):
            if server.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable(f"redis-server did not answer: {(directory / 'log').read_text()[-800:]}")
            time.sleep(0.2)
        yield f"redis://:{password}@{HOST}:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _redis_answers(port: int, password: str) -> bool:
    """AUTH then PING in Redis's wire protocol: True once the server says PONG."""
    command = f"AUTH {password}\r\nPING\r\n".encode()
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2) as connection:
        connection.sendall(command)
        reply = b""
        while b"PONG" not in reply and len(reply) < 200:
            chunk = connection.recv(200)
            if not chunk:
                break
            reply += chunk
        return b"+PONG" in reply
    return False


def main() -> None:
    """Start PostgreSQL and MLflow (PostgreSQL backend) for a shell session; Ctrl-C stops both."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Explicit handlers: a shell's background job ignores SIGINT, and SIGTERM would skip the cleanup.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with running_postgres() as postgres:
        postgres.create_database("dagster")
        postgres.create_database("mlflow")
        with running_mlflow(postgres.url("mlflow", "postgresql+psycopg2"), postgres.directory / "mlflow-artifacts") as uri:
            exports = {**postgres.dagster_env("dagster"), MLFLOW_TRACKING_URI_ENV: uri}
            print("\n".join(f"export {name}={value}" for name, value in exports.items()), flush=True)
            print("# DAGSTER_HOME needs resources/dagster.postgres.yaml as its dagster.yaml; Ctrl-C stops", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()


if __name__ == "__main__":
    main()
