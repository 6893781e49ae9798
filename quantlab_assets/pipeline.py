"""Run a named selection of the lab (defs/jobs.py: SELECTIONS) as one asset backfill, from the shell.

    python -m quantlab_assets.pipeline core_research --universe synthetic --first 2005-01-01 --last 2026-12-01

Records the backfill on the instance of $DAGSTER_HOME (the UI's Overview -> Backfills lists it, with its
runs), advances it until it ends, prints each run as it starts and ends, and exits 1 naming every failed
run, step, error and log file. The code location is workspace.yaml's, as `dagster dev` loads it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from quantlab_assets.defs.backfill import (
    FINISHED_RUN_STATUSES,
    BackfillRun,
    backfill_runs,
    backfill_title,
    drive_backfill,
    run_failures,
    selection_subset,
    submit_backfill,
    workspace_context,
)
from quantlab_assets.defs.jobs import SELECTIONS


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m quantlab_assets.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("selection", choices=sorted(SELECTIONS), help="a named selection (an asset group)")
    parser.add_argument("--universe", default="synthetic")
    parser.add_argument("--first", required=True, help="first month, YYYY-MM-01")
    parser.add_argument("--last", required=True, help="last month, YYYY-MM-01")
    parser.add_argument("--workspace", default="workspace.yaml", help="the code location (default: %(default)s)")
    return parser.parse_args(argv)


class _Progress:
    """Prints a line when a run of the backfill starts and when it ends, seconds since submission first."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.printed: dict[str, str] = {}

    def __call__(self, runs: list[BackfillRun]) -> None:
        for run in runs:
            phase = "ended" if run.status in FINISHED_RUN_STATUSES else "started" if run.start else ""
            if not phase or self.printed.get(run.run_id) == phase:
                continue
            self.printed[run.run_id] = phase
            took = f" {run.status.value} in {run.end - run.start:.0f} s" if phase == "ended" and run.start and run.end else ""
            print(f"[{time.monotonic() - self.began:5.0f} s] {phase:7s} {', '.join(run.assets)} [{run.partition}]"
                  f" run {run.run_id[:8]}{took}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    with dg.DagsterInstance.get() as instance, workspace_context(instance, args.workspace) as context:
        asset_graph = context.create_request_context().asset_graph
        subset = selection_subset(asset_graph, SELECTIONS[args.selection], args.universe, args.first, args.last)
        title = backfill_title(args.selection, args.universe, args.first, args.last)
        backfill_id = submit_backfill(instance, subset, title)
        print(f"backfill {backfill_id} ({title}): {subset.num_partitions_and_non_partitioned_assets} asset-partitions",
              flush=True)
        status = drive_backfill(context, backfill_id, _Progress())
        failed = [run.run_id for run in backfill_runs(instance, backfill_id) if run.status != dg.DagsterRunStatus.SUCCESS]
        for failure in (failure for run_id in failed for failure in run_failures(instance, run_id)):
            print(f"FAILED run {failure.run_id} step {failure.step}: {failure.message}"
                  + (f"\n  log: {failure.log_path}" if failure.log_path else ""), flush=True)
        print(f"backfill {backfill_id}: {status.value}", flush=True)
        return 0 if status == BulkActionStatus.COMPLETED_SUCCESS and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
