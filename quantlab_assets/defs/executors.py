"""Which executor runs the lab's steps: Dagster's default on one machine, workers elsewhere when asked.

QUANTLAB_EXECUTOR=k8s (set for every run pod by resources/k8s/dagster-instance.yaml) selects
dagster-k8s's `k8s_job_executor`: each step becomes a Kubernetes Job that takes the image, namespace,
secrets and volumes of the instance's K8sRunLauncher, plus the step's own `dagster-k8s/config` tag
(a GPU for steps tagged with defs/gpu.py's GPU_OP_TAGS).

QUANTLAB_EXECUTOR=celery selects dagster-celery's `celery_executor`: the run submits each step as a
Celery task to a broker (Redis), and whichever worker takes it runs the step against the same Dagster
instance and the same data directory (`celery -A quantlab_assets.defs.celery_worker worker`, started on
each machine with this environment). A worker that dies mid-step has not acknowledged its task, so the
broker hands the task to another worker once the visibility timeout has passed. Steps tagged with
defs/gpu.py's GPU_OP_TAGS go to the Celery queue `gpu`, consumed only by workers started with `-Q gpu`
(GPU machines); the others to dagster-celery's default queue `dagster`.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

EXECUTOR_ENV = "QUANTLAB_EXECUTOR"
# Steps whose output other runs of a backfill wait on (the labels for the CV folds; the stacked alpha and
# meta-labels for every strategy): a run's ready steps start highest `dagster/priority` first, and the
# backfill requests the waiting runs as soon as these are stored, while the rest of the run goes on.
UNBLOCKING_STEP_TAGS = {"dagster/priority": "1"}
# At most this many step pods of one run at once; the gpu pool still admits one GPU step at a time.
K8S_EXECUTOR_CONFIG = {"max_concurrent": 8}
# One machine: CPU steps of a run in parallel, GPU-tagged steps (defs/gpu.py) one at a time per run.
GPU_EXECUTOR_CONFIG = {"max_concurrent": 2, "tag_concurrency_limits": [{"key": "device", "value": "gpu", "limit": 1}]}

CELERY_BROKER_ENV = "QUANTLAB_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "QUANTLAB_CELERY_BACKEND_URL"
CELERY_VISIBILITY_TIMEOUT_ENV = "QUANTLAB_CELERY_VISIBILITY_TIMEOUT_S"
# Loopback defaults: a Redis server on this machine, tasks in database 0, step results in database 1.
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_CELERY_BACKEND = "redis://127.0.0.1:6379/1"
# Redis hands an unacknowledged task to another worker after this many seconds. It must exceed the
# longest step: a step still running when it expires is started a second time elsewhere.
DEFAULT_CELERY_VISIBILITY_TIMEOUT_S = 7200.0
# How often a worker looks for tasks whose visibility timeout has passed (kombu's default is every
# 100 s: its 10 s interval times its throttle of 10); never more often than once a second.
MAX_RESTORE_INTERVAL_S = 10.0


def celery_settings() -> dict[str, Any]:
    """Celery settings shared by the run (which submits steps) and the workers (which run them).

    acks_late: a worker acknowledges a step's task only when the step has finished, so a worker killed
    mid-step leaves the task with the broker, which hands it to another worker after the visibility
    timeout (without it a prefork worker acknowledges on start, the task dies with the worker and the
    run waits forever). A pool process killed alone (the kernel's OOM killer) is left to Celery's
    default: the run fails, naming WorkerLostError, rather than the task being put back, since a step
    that runs out of memory would do so again on every worker. Prefetch 1: a busy worker holds no task
    an idle one could run.
    """
    visibility_timeout_s = float(os.environ.get(CELERY_VISIBILITY_TIMEOUT_ENV, DEFAULT_CELERY_VISIBILITY_TIMEOUT_S))
    return {
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": max(1.0, min(MAX_RESTORE_INTERVAL_S, visibility_timeout_s / 4)),
            "unacked_restore_throttle": 1,
            # dagster-celery's defaults for publishing (its config_source replaces them as a whole).
            "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
        },
    }


def celery_executor_config() -> dict[str, Any]:
    """The `celery_executor` config: broker and result backend from the environment, loopback by default."""
    return {
        "broker": os.environ.get(CELERY_BROKER_ENV, DEFAULT_CELERY_BROKER),
        "backend": os.environ.get(CELERY_BACKEND_ENV, DEFAULT_CELERY_BACKEND),
        "config_source": celery_settings(),
    }


def lab_executor() -> dg.ExecutorDefinition | None:
    """The executor QUANTLAB_EXECUTOR names; None (Dagster's default) when it is unset."""
    choice = os.environ.get(EXECUTOR_ENV, "")
    if not choice:
        return None
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor  # the `k8s` extra: only cluster images install it

        return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG, name="k8s")
    if choice == "celery":
        from dagster_celery import celery_executor  # the `celery` extra

        return celery_executor.configured(celery_executor_config(), name="celery")
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected 'k8s', 'celery' or unset")
