"""Which executor runs the lab's steps: Dagster's default on one machine, one pod per step on a cluster.

QUANTLAB_EXECUTOR=k8s (set for every run pod by resources/k8s/dagster-instance.yaml) selects
dagster-k8s's `k8s_job_executor`: each step becomes a Kubernetes Job that takes the image, namespace,
secrets and volumes of the instance's K8sRunLauncher, plus the step's own `dagster-k8s/config` tag
(a GPU for steps tagged with defs/gpu.py's GPU_OP_TAGS).
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "QUANTLAB_EXECUTOR"
# At most this many step pods of one run at once; the gpu pool still admits one GPU step at a time.
K8S_EXECUTOR_CONFIG = {"max_concurrent": 8}
# One machine: CPU steps of a run in parallel, GPU-tagged steps (defs/gpu.py) one at a time per run.
GPU_EXECUTOR_CONFIG = {"max_concurrent": 2, "tag_concurrency_limits": [{"key": "device", "value": "gpu", "limit": 1}]}


def lab_executor() -> dg.ExecutorDefinition | None:
    """The executor QUANTLAB_EXECUTOR names; None (Dagster's default) when it is unset."""
    choice = os.environ.get(EXECUTOR_ENV, "")
    if not choice:
        return None
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor  # the `k8s` extra: only cluster images install it

        return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG, name="k8s")
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected 'k8s' or unset")
