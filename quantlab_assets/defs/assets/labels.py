"""Labels: forward, industry-relative, direction and triple-barrier labels from cleaned bars."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import cross_section_rows
from quantlab_assets.compute.data.month_coverage import month_coverage_failures, rows_by_month
from quantlab_assets.compute.labels.compute import LabelParams, compute_labels
from quantlab_assets.compute.labels.quality import label_window_violations
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.data import CleanedBarsSchema
from quantlab_assets.compute.schemas.features import LabelsSchema
from quantlab_assets.defs.checks import Outputs, outputs_then_checks, per_partition_check, stored_months, withheld
from quantlab_assets.defs.executors import UNBLOCKING_STEP_TAGS
from quantlab_assets.defs.groups import CORE_RESEARCH
from quantlab_assets.defs.io_managers import StoredHistory, UniverseFrames
from quantlab_assets.defs.partitions import (
    LOOKBACK_MONTHS,
    bars_key,
    bars_partitions,
    bars_with_lookback_and_lookahead,
    months_window,
    months_by_universe,
    same_universe,
)

GROUP = CORE_RESEARCH


@dg.asset(
    kinds={"polars"},
    partitions_def=bars_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    op_tags=UNBLOCKING_STEP_TAGS,
    output_required=False,
    ins={
        "cleaned_bars": dg.AssetIn(partition_mapping=bars_with_lookback_and_lookahead),
        "universe": dg.AssetIn(partition_mapping=same_universe),
    },
    check_specs=[
        dg.AssetCheckSpec("labels_schema", asset="labels", blocking=True,
                          description="Labels satisfy LabelsSchema."),
        dg.AssetCheckSpec("labels_use_only_their_window", asset="labels", blocking=True,
                          description="Every label at t ends at t+k trading days and is null where the future is short."),
        dg.AssetCheckSpec("labels_months_complete", asset="labels", blocking=True, partitions_def=bars_partitions,
                          description="Per month: a row for every tradable member's bar of the month, and a lookback "
                                      "not cut short by cleaned_bars months missing while raw_ohlcv holds them. A "
                                      "failing month keeps its stored version; the run's other months are written."),
    ],
)
def labels(
    context: dg.AssetExecutionContext, cleaned_bars: UniverseFrames, universe: UniverseFrames
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Forward returns (1-63d), industry-relative 21d/63d labels, direction and triple-barrier labels.

    Months whose 63-day future is not stored yet carry null labels at their end; the daily refresh
    recomputes them as the future arrives.
    """
    frames, counts, failures, window_problems, incomplete = {}, {}, [], [], {}
    for name, months in months_by_universe(list(context.partition_keys)).items():
        first_day, last_day = months_window(months)
        bars = conform(cleaned_bars[name], CleanedBarsSchema)
        window = compute_labels(bars, universe[name]).filter(pl.col(c.DATE).is_between(first_day, last_day, closed="both"))
        partition = f"{months[0]}..{months[-1]}|{name}"
        if failure := schema_failures(LabelsSchema, window, asset="labels", partition=partition):
            failures.append(failure)
        window_problems += label_window_violations(bars, window, LabelParams())
        frames[name] = window
        incomplete.update({bars_key(month, name): why for month, why in month_coverage_failures(
            months, rows_by_month(window), rows_by_month(cross_section_rows(bars, universe[name])),
            stored_months(context, "cleaned_bars", name), stored_months(context, "raw_ohlcv", name),
            upstream="cleaned_bars", source="raw_ohlcv", universe=name, before=LOOKBACK_MONTHS,
        ).items()})
        counts[name] = {"rows": window.height, "null_share_label_21d": _null_share(window, "label_21d"),
                        "null_share_tb_label": _null_share(window, "tb_label")}
    checks = [
        dg.AssetCheckResult(check_name="labels_schema", passed=not failures,
                            metadata={"failures": "\n".join(failures) or "none"}),
        dg.AssetCheckResult(check_name="labels_use_only_their_window", passed=not window_problems,
                            metadata={"problems": "\n".join(window_problems[:20]) or "none"}),
    ]
    coverage = per_partition_check(context, "labels", "labels_months_complete", context.partition_keys, incomplete)

    def outputs() -> Outputs:
        if len(incomplete) < len(context.partition_keys):
            yield dg.Output(StoredHistory(frames, withheld=withheld(incomplete), allow_shrinking=True),
                            metadata={"by_universe": dg.MetadataValue.json(counts)})
    yield from outputs_then_checks(outputs, checks)
    yield coverage


def _null_share(frame: pl.DataFrame, column: str) -> float:
    return round(frame[column].null_count() / frame.height, 6) if frame.height else 0.0
