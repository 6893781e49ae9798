"""The Celery app of the lab's workers: `celery -A quantlab_assets.defs.celery_worker worker -Q dagster`.

`-Q` names the queues a worker takes steps from: `dagster` (dagster-celery's default queue) holds every
step but the GPU-tagged ones, which go to `gpu` (defs/gpu.py: GPU_CELERY_QUEUE). Start a GPU machine's
worker with `-Q gpu` (or `-Q gpu,dagster` to let it take CPU steps too), the others with `-Q dagster`.

Built from the same settings as the run's `celery_executor` (defs/executors.py), so the workers listen
to the broker the runs submit to and acknowledge a step only when it has finished. A worker needs the
run's environment: DAGSTER_HOME (an instance every worker can reach, e.g. PostgreSQL), the lab's data
directory (QUANTLAB_DATA_DIR on storage every worker mounts) and the QUANTLAB_CELERY_* variables.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from quantlab_assets.defs.executors import celery_executor_config

app = make_app(CeleryExecutor.for_cli(**celery_executor_config()).app_args())
execute_plan = create_task(app)
