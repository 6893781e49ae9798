"""The default MLflow store (SQLite under the data dir) created by runs in parallel: run_main's two OOF
processes raced on MLflow's schema migration ('duplicate column name: step') before the lock."""

from __future__ import annotations

import multiprocessing
from pathlib import Path



def _log_one(data_dir: str, name: str) -> None:
    import os

    os.environ["QUANTLAB_DATA_DIR"] = data_dir
    from quantlab_assets.compute.models.tracking import log_model_run
    from quantlab_assets.defs.resources import MlflowTrackingResource

    store = MlflowTrackingResource()
    store.ensure_store()
    log_model_run(store.uri(), store.experiment, name, config={"name": name}, metrics={"x": 1.0},
                  artifact_root=store.artifact_root())


def test_parallel_runs_create_one_store_and_log_every_run(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_log_one, args=(str(tmp_path), f"run{i}")) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(240)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quantlab_model2").experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["run0", "run1", "run2"]
