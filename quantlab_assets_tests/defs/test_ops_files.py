"""dagster.yaml, workspace.yaml and docker-compose.yml say what they must (no Docker engine here)."""

from pathlib import Path

import dagster as dg
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def _yaml(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def test_dagster_yaml_is_a_valid_sqlite_instance_config(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()


def test_the_postgres_variant_in_dagster_yaml_matches_the_containers_config() -> None:
    commented = [
        line.removeprefix("# ") for line in (REPO_ROOT / "dagster.yaml").read_text().splitlines()
        if line.startswith("# ") and ("storage:" in line or line.startswith("#   "))
    ]
    variant = yaml.safe_load("\n".join(commented))
    containers = _yaml("resources/dagster.postgres.yaml")
    assert variant["storage"] == containers["storage"]
    assert set(containers["storage"]["postgres"]["postgres_db"]) == {"username", "password", "hostname", "db_name", "port", "scheme"}


def test_workspace_loads_the_one_definitions_module() -> None:
    (entry,) = _yaml("workspace.yaml")["load_from"]
    assert entry["python_module"]["module_name"] == "quantlab_assets.definitions"


def test_compose_runs_postgres_dagster_webserver_daemon_and_mlflow_consistently() -> None:
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"postgres", "dagster-webserver", "dagster-daemon", "mlflow"}
    postgres_env = services["postgres"]["environment"]
    for name in ("dagster-webserver", "dagster-daemon"):
        service = services[name]
        env = service["environment"]
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert env["DAGSTER_PG_USERNAME"] == postgres_env["POSTGRES_USER"]
        assert env["DAGSTER_PG_DB"] == postgres_env["POSTGRES_DB"]
        assert env["DAGSTER_PG_PASSWORD"] == postgres_env["POSTGRES_PASSWORD"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "workspace.yaml" in service["command"]
        assert (REPO_ROOT / service["build"]["dockerfile"]).is_file()
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    mlflow = services["mlflow"]["command"]
    assert mlflow[:2] == ["mlflow", "server"]
    assert any(arg.startswith("--backend-store-uri=postgresql") and arg.endswith("@postgres:5432/mlflow") for arg in mlflow)
    for volume in services["postgres"]["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (REPO_ROOT / host).is_file(), host
    assert "CREATE DATABASE mlflow" in (REPO_ROOT / "resources/postgres-init.sql").read_text()


def test_no_credentials_in_the_repo_only_their_names() -> None:
    compose_text = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in compose_text  # required from the environment, no default
    example = dict(
        line.split("=", 1) for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["POSTGRES_PASSWORD"] == ""
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def test_the_image_copies_files_that_exist() -> None:
    for line in (REPO_ROOT / "resources/Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), source
