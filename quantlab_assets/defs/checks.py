"""The one way an asset withholds its output when a blocking check fails.

Dagster stores an output (through the IO manager) as soon as the asset yields it, before it sees any
check result, so a failed blocking check can stop downstream steps but cannot undo the write: the asset
itself must not yield the output then. Every asset with blocking checks ends the same way:

    def outputs() -> Outputs:
        write_checkpoint(...)            # anything published with the output happens here too
        yield dg.Output(frame, metadata=...)

    yield from outputs_then_checks(outputs, checks)

`outputs` runs only when every check passed, so a failed run leaves the stored output, its checkpoint
files and MLflow runs as the last good run left them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import dagster as dg

from quantlab_assets.defs.partitions import months_by_universe

Outputs = Iterator[dg.Output]


def outputs_then_checks(
    outputs: Callable[[], Iterable[dg.Output]],
    checks: dg.AssetCheckResult | Sequence[dg.AssetCheckResult],
    *,
    advisory: Sequence[dg.AssetCheckResult] = (),
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The outputs of `outputs()` if every check in `checks` passed (else `outputs` is never called), then
    every check result. `advisory` checks (non-blocking, WARN severity) are reported but withhold nothing."""
    gating = [checks] if isinstance(checks, dg.AssetCheckResult) else list(checks)
    if all(check.passed for check in gating):
        yield from outputs()
    yield from gating
    yield from advisory


def log_partition_evaluations(
    context: dg.AssetExecutionContext,
    asset_key: str,
    check_name: str,
    partition_keys: Sequence[str],
    failures: Mapping[str, str],
) -> None:
    """Record a check's evaluation on each partition of a run that covers several months.

    Dagster takes one check result per step and records it against the run's partition only when the run
    has a single partition key; a single-run backfill over many months would otherwise show one result
    for all of them. failures: partition key -> why it failed; partitions absent from it passed.
    """
    if context.has_partition_key and len(partition_keys) == 1:
        return  # the step's own result is recorded against its one partition
    for key in partition_keys:
        why = failures.get(key)
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset_key), check_name=check_name, passed=why is None, partition=key,
            metadata={"why": dg.MetadataValue.text(why or "passed")},
        ))


def per_partition_check(
    context: dg.AssetExecutionContext,
    asset_key: str,
    check_name: str,
    partition_keys: Sequence[str],
    failures: Mapping[str, str],
) -> dg.AssetCheckResult:
    """A check evaluated per partition: each partition's evaluation recorded (log_partition_evaluations),
    and the run's result, which fails when any partition failed and says why for each."""
    log_partition_evaluations(context, asset_key, check_name, partition_keys, failures)
    return dg.AssetCheckResult(
        check_name=check_name, asset_key=asset_key, passed=not failures,
        metadata={"failed_partitions": dg.MetadataValue.json(sorted(failures)),
                  "why": "\n".join(failures[key] for key in sorted(failures)) or "every partition passed"},
    )


def withheld(failed_partitions: Iterable[str]) -> dict[str, frozenset[str]]:
    """universe -> month keys to leave as stored (StoredHistory.withheld), from failed bars partition keys."""
    return {universe: frozenset(months) for universe, months in months_by_universe(list(failed_partitions)).items()}


def stored_months(context: dg.AssetExecutionContext, asset_key: str, universe: str) -> set[str]:
    """The month keys of a (month x universe)-partitioned asset that the instance holds for one universe."""
    keys = context.instance.get_materialized_partitions(dg.AssetKey(asset_key))
    months = set()
    for key in keys:
        month, _, name = str(key).partition("|")
        if name == universe:
            months.add(month)
    return months
