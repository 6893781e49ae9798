"""One asset backfill of a named selection, for one universe and a range of months, driven at a short tick.

An asset backfill is Dagster's one action that spans several partitions definitions (month x universe bars,
per-universe models, model x universe and strategy x universe fan-outs): it runs the selection as several
runs in dependency order, each launched by the instance's run coordinator and launcher, all of it recorded
in the instance (the UI's Overview -> Backfills shows it). The daemon advances backfills every 30 s, which
over a dozen dependency levels adds minutes; `drive_backfill` calls the same iteration functions as the
daemon (backfill, then the run queue) as soon as a run of the backfill ends or one of its steps succeeds.

Everything here that is not public Dagster API (the backfill record, the daemon's iteration functions) is
pinned to dagster 1.13.27 and kept in this module; quantlab_assets_tests/defs/test_backfill.py exercises it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.events import DagsterEventType
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus, PartitionBackfill
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._time import get_current_timestamp

from quantlab_assets.defs.executors import lab_executor
from quantlab_assets.defs.partitions import MONTH, UNIVERSE

# With Dagster's default executor, each run's steps run in the run's own process: a run's steps follow one
# another in dependency order anyway, and a step process would pay the definitions' import again. The
# parallel work (six base models, seven strategies) is separate runs, which max_concurrent_runs bounds.
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}
FINISHED_RUN_STATUSES = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
IDLE_ITERATION_SECONDS = 2.0


def partition_keys_for(partitions_def: dg.PartitionsDefinition | None, universe: str, first_month: str,
                       last_month: str) -> list[str | None]:
    """The partitions of one asset that belong to `universe` and, where partitioned by month, lie in
    first_month..last_month ([None] for an unpartitioned asset)."""
    if partitions_def is None:
        return [None]
    keys = partitions_def.get_partition_keys()
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dimensions = {dimension.name for dimension in partitions_def.partitions_defs}
        if UNIVERSE not in dimensions:
            raise ValueError(f"partitions {sorted(dimensions)} have no {UNIVERSE!r} dimension")
        return [
            key for key in keys
            if key.keys_by_dimension[UNIVERSE] == universe
            and (MONTH not in dimensions or first_month <= key.keys_by_dimension[MONTH] <= last_month)
        ]
    if universe not in keys:
        raise ValueError(f"universe {universe!r} is not a partition of {keys[:5]}...")
    return [universe]


def selection_subset(asset_graph: BaseAssetGraph, selection: dg.AssetSelection, universe: str, first_month: str,
                     last_month: str) -> AssetGraphSubset:
    """Every asset-partition of `selection` for one universe and a month range."""
    asset_partitions = {
        AssetKeyPartitionKey(key, partition)
        for key in selection.resolve(asset_graph)
        for partition in partition_keys_for(asset_graph.get(key).partitions_def, universe, first_month, last_month)
    }
    return AssetGraphSubset.from_asset_partition_set(asset_partitions, asset_graph)


def backfill_title(selection: str, universe: str, first_month: str, last_month: str) -> str:
    return f"{selection} {universe} {first_month[:7]}..{last_month[:7]}"


def submit_backfill(instance: dg.DagsterInstance, subset: AssetGraphSubset, title: str) -> str:
    """Record an asset backfill of `subset` on the instance (status REQUESTED); its id."""
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=get_current_timestamp(),
        tags={},
        dynamic_partitions_store=instance,
        asset_graph_subset=subset,
        title=title,
        description=None,
        run_config=IN_PROCESS_RUN_CONFIG if lab_executor() is None else None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


@dataclass(frozen=True)
class BackfillRun:
    """One run of a backfill as the launcher reports it."""

    run_id: str
    status: DagsterRunStatus
    assets: tuple[str, ...]
    partition: str
    start: float | None
    end: float | None
    ranged: bool  # one run over a range of partitions (a single-run backfill policy: months of bars)


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[BackfillRun]:
    """The runs of a backfill, oldest first (one query: the driver asks at every tick)."""
    result = []
    for record in instance.get_run_records(filters=RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}), ascending=True):
        run = record.dagster_run
        tags = run.tags
        start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
        partition = tags.get("dagster/partition") or (f"{start}...{end}" if start else "")
        result.append(BackfillRun(
            run_id=run.run_id, status=run.status,
            assets=tuple(sorted(key.to_user_string() for key in run.asset_selection or ())), partition=partition,
            start=record.start_time, end=record.end_time, ranged=bool(start),
        ))
    return result


def backfill_progress(instance: dg.DagsterInstance, runs: list[BackfillRun]) -> tuple[int, int] | None:
    """Runs of the backfill that ended, and steps that succeeded in those still going; None while a run over
    a range of months is storing a step's months.

    Dagster's backfill requests a partition once its parents' materialisations are stored, also by a run
    still in progress: the CV folds start once the labels are stored, the base models once the CV folds are,
    while the features, the regimes and the barrier classifier go on. A step over a range of months, though,
    stores its months one after the other; an iteration while it does (on another run's end) sees some months
    stored and splits their children over several runs, each paying the process start-up (a fresh clone's
    first backfill once split the market state into dozens of runs).
    """
    if any(run.ranged and run.status == DagsterRunStatus.STARTED and _storing(instance, run.run_id) for run in runs):
        return None
    ended = sum(run.status in FINISHED_RUN_STATUSES for run in runs)
    steps = sum(
        len(instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_SUCCESS).records)
        for run in runs if run.status == DagsterRunStatus.STARTED
    )
    return ended, steps


STEP_EVENTS = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
               DagsterEventType.ASSET_MATERIALIZATION}


def _storing(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a run is storing a step's outputs: its last step event is a materialisation (a step's
    materialisations come after its computation and before its success)."""
    last = instance.get_records_for_run(run_id, of_type=STEP_EVENTS, limit=1, ascending=False).records
    return bool(last) and last[0].event_log_entry.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION


def _drain(iterator: Iterable[object] | None) -> None:
    for _ in iterator or ():
        pass


def drive_backfill(context: WorkspaceProcessContext, backfill_id: str, on_change: Callable[[list[BackfillRun]], None],
                   tick_seconds: float = 0.5) -> BulkActionStatus:
    """Advance the backfill until it ends: an iteration of the backfill whenever one of its runs ended or one
    of its steps succeeded, unless a run over a range of months is storing its months (it requests the runs
    whose parents are now stored), then the run queue;
    `on_change` sees the runs after every change. Returns the backfill's final status."""
    instance = context.instance
    logger = logging.getLogger("quantlab_assets.backfill")
    queue = QueuedRunCoordinatorDaemon(interval_seconds=tick_seconds) if isinstance(
        instance.run_coordinator, QueuedRunCoordinator) else None
    seen: list[BackfillRun] | None = None
    progress_before = None
    last_iteration = 0.0
    try:
        while True:
            runs = backfill_runs(instance, backfill_id)
            progress = backfill_progress(instance, runs)
            # With nothing in progress the backfill moves only by iterations: one every few seconds even
            # without a new run end (the iteration after the last run marks the backfill completed).
            idle = all(run.status in FINISHED_RUN_STATUSES for run in runs)
            iterate = progress is not None and (
                progress != progress_before or (idle and time.monotonic() - last_iteration > IDLE_ITERATION_SECONDS))
            if iterate:
                _drain(execute_backfill_iteration(context, logger))
                progress_before, last_iteration = progress, time.monotonic()
            launch = queue is not None and any(run.status == DagsterRunStatus.QUEUED for run in runs)
            if launch:
                _drain(queue.run_iteration(context))
            if iterate or launch:
                runs = backfill_runs(instance, backfill_id)
            if runs != seen:
                on_change(runs)
                seen = runs
            # Only an iteration changes the backfill's status; reading the record (its whole asset subset)
            # at every tick cost more CPU than the rest of the tick.
            if iterate:
                backfill = instance.get_backfill(backfill_id)
                if backfill is not None and backfill.status in BULK_ACTION_TERMINAL_STATUSES:
                    return backfill.status
            time.sleep(tick_seconds)
    finally:
        if queue:
            queue.__exit__(None, None, None)


@dataclass(frozen=True)
class Failure:
    """Why a run of the backfill failed: the step (or the run itself), the error's first line, and the step's
    captured stderr where the instance keeps compute logs on disk."""

    run_id: str
    step: str
    message: str
    log_path: str | None


def run_failures(instance: dg.DagsterInstance, run_id: str) -> list[Failure]:
    """The failed steps of a run; the run's own failure when no step failed (e.g. its process did not start)."""
    log_paths: dict[str, str] = {}
    manager = instance.compute_log_manager
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED):
        data = entry.dagster_event.logs_captured_data
        if hasattr(manager, "get_captured_local_path"):
            for step in data.step_keys:
                log_paths[step] = manager.get_captured_local_path([run_id, "compute_logs", data.file_key], "err")
    failures = [
        Failure(run_id, entry.dagster_event.step_key or "", _first_line(entry.dagster_event.step_failure_data.error),
                log_paths.get(entry.dagster_event.step_key or ""))
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    if failures:
        return failures
    # A run that failed before its steps (its process could not load the definitions, ...): the engine's errors.
    engine_errors = [
        _first_line(entry.dagster_event.engine_event_data.error)
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if entry.dagster_event.engine_event_data and entry.dagster_event.engine_event_data.error
    ]
    return [Failure(run_id, "(run)", "; ".join([entry.message, *engine_errors]), None)
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]


def _first_line(error: object) -> str:
    """The start of the innermost cause's message, on one line (Dagster wraps a step's exception in its own)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = " ".join((getattr(error, "message", "") or "").split())
    return message[:300] or "(no message)"


def workspace_context(instance: dg.DagsterInstance, workspace_file: str) -> WorkspaceProcessContext:
    """The code location of `workspace_file` (a gRPC server process, as `dagster dev` starts it)."""
    return WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[workspace_file]))
