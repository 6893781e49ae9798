"""Test-only code location for the Celery executor: independent steps stored through the lab's IO manager.

Three independent seeded panels and a summary that reads them back from the data directory, all stored by
the lab's PartitionedParquetIOManager (compute/storage.py's atomic write) under QUANTLAB_DATA_DIR, with the
lab's executor choice (QUANTLAB_EXECUTOR). Each step records the process that ran it in its metadata.

A panel named by a file `<asset>.request` in $QUANTLAB_TEST_STALL_DIR stalls halfway through writing its
partition the first time it runs (it leaves `<asset>.stalled` holding its pid), so a test can kill its
worker in the middle of the write; run again, it writes as usual.

gpu_queue_job: a CPU step and a GPU-tagged step (defs/gpu.py's tags, as the training assets carry) that
fits on its output, to show which Celery queue, hence which worker, each one goes to.
"""

import io
import json
import os
import time
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from quantlab_assets.compute.storage import StorageLayout, write_atomic
from quantlab_assets.defs.executors import lab_executor
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.io_managers import PartitionedParquetIOManager
from quantlab_assets.defs.resources import data_dir

STALL_DIR_ENV = "QUANTLAB_TEST_STALL_DIR"
PANEL_SEEDS = {"panel_a": 11, "panel_b": 12, "panel_c": 13}
PANEL_ROWS = 50_000
# Long enough that the three panels all run at once, each on its own worker.
STEP_SECONDS = 1.0
PID = "pid"


def seeded_panel(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "instrument": rng.integers(0, 500, PANEL_ROWS),
        "day": rng.integers(0, 5000, PANEL_ROWS),
        "ret": rng.standard_normal(PANEL_ROWS) * 0.01,
    })


def _write_half_then_stall(frame: pl.DataFrame, marker: Path, temporary: Path) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=True)
    with open(temporary, "wb") as handle:
        handle.write(buffer.getvalue()[: buffer.tell() // 2])
        handle.flush()
        os.fsync(handle.fileno())
    marker.write_text(json.dumps({PID: os.getpid()}))
    time.sleep(600)  # until the test kills this worker


def _stall_on_first_run_if_requested(name: str, frame: pl.DataFrame) -> None:
    stall_dir = Path(os.environ.get(STALL_DIR_ENV, "/nonexistent"))
    marker = stall_dir / f"{name}.stalled"
    if (stall_dir / f"{name}.request").exists() and not marker.exists():
        write_atomic(StorageLayout(data_dir()).unpartitioned_file(name),
                     lambda temporary: _write_half_then_stall(frame, marker, temporary))


def _panel_asset(name: str, seed: int) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def panel(context: dg.AssetExecutionContext) -> pl.DataFrame:
        frame = seeded_panel(seed)
        time.sleep(STEP_SECONDS)
        _stall_on_first_run_if_requested(name, frame)
        context.add_output_metadata({PID: os.getpid()})
        return frame

    return panel


PANELS = [_panel_asset(name, seed) for name, seed in PANEL_SEEDS.items()]


@dg.asset(ins={name: dg.AssetIn() for name in PANEL_SEEDS})
def panel_summary(context: dg.AssetExecutionContext, panel_a: pl.DataFrame, panel_b: pl.DataFrame,
                  panel_c: pl.DataFrame) -> pl.DataFrame:
    context.add_output_metadata({PID: os.getpid()})
    return (pl.concat([panel_a, panel_b, panel_c]).group_by("instrument")
            .agg(pl.col("ret").mean().alias("mean_ret"), pl.len().alias("rows")).sort("instrument"))


ASSETS = [*PANELS, panel_summary]
panels_job = dg.define_asset_job("panels_job", selection=dg.AssetSelection.assets(*ASSETS))


@dg.asset
def cpu_features() -> pl.DataFrame:
    return seeded_panel(PANEL_SEEDS["panel_a"])


@dg.asset(pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def gpu_fit(cpu_features: pl.DataFrame) -> pl.DataFrame:
    return cpu_features.group_by("instrument").agg(pl.col("ret").std().alias("ret_std")).sort("instrument")


GPU_QUEUE_ASSETS = [cpu_features, gpu_fit]
gpu_queue_job = dg.define_asset_job("gpu_queue_job", selection=dg.AssetSelection.assets(*GPU_QUEUE_ASSETS))
defs = dg.Definitions(assets=[*ASSETS, *GPU_QUEUE_ASSETS], jobs=[panels_job, gpu_queue_job], executor=lab_executor(),
                      resources={"io_manager": PartitionedParquetIOManager(base_dir=str(data_dir()))})
