"""Test-only code location: two GPU-tagged steps (as training assets will be) and a plain one.

Each step writes when it ran to $QUANTLAB_STEP_LOG_DIR/<asset>.json, so a test can check overlaps.
"""

import json
import os
import time
from pathlib import Path

import dagster as dg

from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL

STEP_SECONDS = 3.0


def _hold_and_log(name: str) -> None:
    started = time.time()
    time.sleep(STEP_SECONDS)
    log = Path(os.environ["QUANTLAB_STEP_LOG_DIR"]) / f"{name}.json"
    log.write_text(json.dumps({"start": started, "end": time.time()}))


@dg.asset(pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def gpu_step_a() -> None:
    _hold_and_log("gpu_step_a")


@dg.asset(pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def gpu_step_b() -> None:
    _hold_and_log("gpu_step_b")


@dg.asset
def cpu_step_a() -> None:
    _hold_and_log("cpu_step_a")


defs = dg.Definitions(assets=[gpu_step_a, gpu_step_b, cpu_step_a])
