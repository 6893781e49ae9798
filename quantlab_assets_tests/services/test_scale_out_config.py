"""resources/k8s/: the cluster configuration is valid for dagster-k8s and maps GPU-tagged steps to a GPU.

No cluster runs here: the files are checked against dagster-k8s's own config schemas, and the step tags
through dagster-k8s's own tag parser, the one its executor uses to build each step's pod.
"""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import Shape, process_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.executor import _K8S_EXECUTOR_CONFIG_SCHEMA
from dagster_k8s.job import get_user_defined_k8s_config

from quantlab_assets.defs.executors import EXECUTOR_ENV, K8S_EXECUTOR_CONFIG, lab_executor
from quantlab_assets.defs.gpu import DEVICE_TAG, GPU_POOL
from quantlab_assets_tests.services.conftest import REPO_ROOT
from quantlab_assets_tests.services.gpu_pool_defs import cpu_step_a, gpu_step_a

pytestmark = pytest.mark.services

INSTANCE = REPO_ROOT / "resources" / "k8s" / "dagster-instance.yaml"


def test_the_cluster_instance_config_is_valid_for_dagster_and_dagster_k8s(tmp_path: Path) -> None:
    config = yaml.safe_load(INSTANCE.read_text())
    launcher = process_config(Shape(K8sRunLauncher.config_type()), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert f"{EXECUTOR_ENV}=k8s" in config["run_launcher"]["config"]["env_vars"]
    # Same storage and limits as the single-host PostgreSQL deployment (docker-compose.yml).
    single_host = yaml.safe_load((REPO_ROOT / "resources" / "dagster.postgres.yaml").read_text())
    assert config["storage"] == single_host["storage"]
    assert config["concurrency"] == single_host["concurrency"]
    # dagster.yaml's own schema, with the launcher left out (building it needs a cluster to talk to).
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "run_launcher"}))
    from dagster._core.instance.config import dagster_instance_config

    processed, _ = dagster_instance_config(str(home))
    assert processed["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_the_k8s_executor_config_is_valid_and_selected_only_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert process_config(_K8S_EXECUTOR_CONFIG_SCHEMA, K8S_EXECUTOR_CONFIG).success
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert lab_executor() is None  # one machine: Dagster's default executor
    # A fresh interpreter, as a run pod starts: the lab's jobs then run each step as a Kubernetes Job.
    probe = "from quantlab_assets.definitions import defs; print(defs.resolve_job_def('main_job').executor_def.name)"
    shown = subprocess.run([sys.executable, "-c", probe], env={"PATH": "", EXECUTOR_ENV: "k8s"},
                           capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert shown.stdout.strip() == "k8s"


def test_gpu_tagged_steps_ask_their_pod_for_a_gpu_and_other_steps_do_not() -> None:
    gpu_config = get_user_defined_k8s_config(gpu_step_a.op.tags)
    assert gpu_config.container_config["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert gpu_config.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu_step_a.op.tags[DEVICE_TAG] == "gpu" and gpu_step_a.op.pool == GPU_POOL
    assert get_user_defined_k8s_config(cpu_step_a.op.tags).container_config == {}


def test_every_asset_of_the_lab_in_the_gpu_pool_carries_the_gpu_request() -> None:
    from quantlab_assets.definitions import defs

    for asset in defs.resolve_asset_graph().assets_defs:
        if asset.op.pool == GPU_POOL:
            config = get_user_defined_k8s_config(asset.op.tags)
            assert config.container_config["resources"]["limits"]["nvidia.com/gpu"], asset.key
