"""How an asset says it runs on the GPU (training assets use both, e.g. `@dg.asset(pool=GPU_POOL, op_tags=GPU_OP_TAGS)`).

- `pool="gpu"`: the instance allows one step of the pool at a time across all runs (dagster.yaml,
  `concurrency: pools: default_limit: 1`), so two backfills never train on one GPU at once.
- `device: gpu` tag: what a run's multiprocess executor can limit with `tag_concurrency_limits`.
- `dagster-k8s/config`: on a cluster (resources/k8s/), the Kubernetes executor gives the step's pod a GPU.
- `dagster-celery/queue: gpu`: with QUANTLAB_EXECUTOR=celery, the step's task goes to the Celery queue
  `gpu`, which only the workers of GPU machines consume
  (`celery -A quantlab_assets.defs.celery_worker worker -Q gpu`, or `-Q gpu,dagster` for a GPU machine
  that also takes CPU steps); every other step goes to dagster-celery's default queue `dagster`.
"""

from __future__ import annotations

GPU_POOL = "gpu"
DEVICE_TAG = "device"
# dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, spelled out: dagster-celery is an optional extra and every
# GPU asset imports this module (a test checks the two agree).
CELERY_QUEUE_TAG = "dagster-celery/queue"
GPU_CELERY_QUEUE = "gpu"
GPU_K8S_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {
        "node_selector": {"quantlab/accelerator": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
GPU_OP_TAGS = {DEVICE_TAG: "gpu", "dagster-k8s/config": GPU_K8S_CONFIG, CELERY_QUEUE_TAG: GPU_CELERY_QUEUE}
